import CLZ4
import CZstd
public import NIOCore

/// Compression of a batch's `records` bytes, numbered as in `Compression` of
/// proto/sluice/v1/records.proto and carried in bits 0-2 of `RecordBatch.attributes`.
///
/// The compressed bytes are one standard frame, so any language's stock library reads them:
/// - `zstd` (1): one Zstandard frame (RFC 8878, magic 0xFD2FB528) written by
///   `ZSTD_compress`, which records Frame_Content_Size. Readers also accept frames
///   without a content size and several frames back to back.
/// - `lz4` (2): one LZ4 frame (LZ4 Frame Format 1.6, magic 0x184D2204) written by
///   `LZ4F_compressFrame` with Content Size set, linked 64 KiB blocks and no LZ4
///   checksums (the batch's CRC32C already covers the compressed bytes).
///
/// Decompression is bounded: it stops with `RecordCompressionError.tooLarge` as soon as
/// the output passes `maxBytes`, whatever the frame header claims, so a small "bomb"
/// cannot make a reader allocate more than about twice the limit.
///
/// This file is the thin conversion layer over the CZstd and CLZ4 shims: C pointers
/// and contexts never leave its functions.
public enum RecordCompression: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0
    case zstd = 1
    case lz4 = 2

    /// Attribute bits 0-2.
    public static let attributeMask: UInt32 = 0b111

    /// The codec named by a batch's attributes; nil for a number no codec has (3-7).
    public init?(attributes: UInt32) {
        self.init(rawValue: attributes & Self.attributeMask)
    }

    /// "none", "zstd" or "lz4" (what the CLI and docs call them).
    public init?(name: String) {
        guard let found = Self.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = found
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .zstd: "zstd"
        case .lz4: "lz4"
        }
    }

    /// The level used when none is given: zstd's default (3) and lz4's fast mode (0).
    public var defaultLevel: Int {
        switch self {
        case .none: 0
        case .zstd: Int(ZSTD_defaultCLevel())
        case .lz4: 0
        }
    }

    /// The levels the codec accepts; others are clamped into this range. zstd: its negative
    /// "fast" levels up to 22; lz4: 0 (fast) up to 12 (high compression, LZ4HC_CLEVEL_MAX).
    public var levels: ClosedRange<Int> {
        switch self {
        case .none: 0...0
        case .zstd: Int(ZSTD_minCLevel())...Int(ZSTD_maxCLevel())
        case .lz4: 0...12
        }
    }

    /// `input` compressed as one frame. `.none` returns `input` unchanged.
    public func compress(_ input: ByteBuffer, level: Int? = nil) throws(RecordCompressionError) -> ByteBuffer {
        let level = min(max(level ?? defaultLevel, levels.lowerBound), levels.upperBound)
        let result: Result<ByteBuffer, RecordCompressionError> = input.withUnsafeReadableBytes { source in
            switch self {
            case .none: .success(input)
            case .zstd: Self.zstdCompress(source, level: level)
            case .lz4: Self.lz4Compress(source, level: level)
            }
        }
        return try result.get()
    }

    /// `input` decompressed, refusing output above `maxBytes`. Corrupt or truncated input is
    /// `RecordCompressionError.corrupt`, never a crash. `.none` returns `input` unchanged
    /// (bounded by `maxBytes` too).
    public func decompress(_ input: ByteBuffer, maxBytes: Int) throws(RecordCompressionError) -> ByteBuffer {
        precondition(maxBytes >= 0, "a decompression limit is not negative")
        let result: Result<ByteBuffer, RecordCompressionError> = input.withUnsafeReadableBytes { source in
            switch self {
            case .none: input.readableBytes <= maxBytes ? .success(input) : .failure(.tooLarge(self, limit: maxBytes))
            case .zstd: Self.zstdDecompress(source, maxBytes: maxBytes)
            case .lz4: Self.lz4Decompress(source, maxBytes: maxBytes)
            }
        }
        return try result.get()
    }

    // MARK: zstd

    private static func zstdCompress(_ source: UnsafeRawBufferPointer, level: Int) -> Result<ByteBuffer, RecordCompressionError> {
        var output = ByteBufferAllocator().buffer(capacity: ZSTD_compressBound(source.count))
        var status = 0
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: ZSTD_compressBound(source.count)) { destination in
            status = ZSTD_compress(destination.baseAddress, destination.count, source.baseAddress, source.count, Int32(level))
            return ZSTD_isError(status) != 0 ? 0 : status
        }
        guard ZSTD_isError(status) == 0 else { return .failure(.failed(.zstd, zstdError(status))) }
        return .success(output)
    }

    private static func zstdDecompress(_ source: UnsafeRawBufferPointer, maxBytes: Int) -> Result<ByteBuffer, RecordCompressionError> {
        // Frame_Content_Size is only a hint (a hostile frame may lie); the loop below
        // enforces the limit on what is actually produced.
        let declared = ZSTD_getFrameContentSize(source.baseAddress, source.count)
        let unknown = UInt64.max, invalid = UInt64.max - 1  // ZSTD_CONTENTSIZE_UNKNOWN / _ERROR
        if declared == invalid { return .failure(.corrupt(.zstd, "not a Zstandard frame")) }
        if declared != unknown, declared > UInt64(maxBytes) { return .failure(.tooLarge(.zstd, limit: maxBytes)) }
        guard let context = ZstdDecompressionContexts.shared.take() else {
            return .failure(.failed(.zstd, "cannot allocate a decompression context"))
        }
        defer { ZstdDecompressionContexts.shared.give(back: context) }
        let hint = declared != unknown ? Int(declared) : 4 * source.count
        return boundedLoop(codec: .zstd, inputBytes: source.count, maxBytes: maxBytes, sizeHint: hint) { inputOffset, destination in
            var input = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: inputOffset)
            var output = ZSTD_outBuffer(dst: destination.baseAddress, size: destination.count, pos: 0)
            let status = ZSTD_decompressStream(context, &output, &input)
            if ZSTD_isError(status) != 0 { return .failure(.corrupt(.zstd, zstdError(status))) }
            return .success((consumed: input.pos - inputOffset, produced: output.pos, frameDone: status == 0))
        }
    }

    private static func zstdError(_ status: Int) -> String {
        String(cString: ZSTD_getErrorName(status))
    }

    // MARK: lz4

    private static func lz4Compress(_ source: UnsafeRawBufferPointer, level: Int) -> Result<ByteBuffer, RecordCompressionError> {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.contentSize = UInt64(source.count)
        preferences.compressionLevel = Int32(level)
        let bound = LZ4F_compressFrameBound(source.count, &preferences)
        var output = ByteBufferAllocator().buffer(capacity: bound)
        var status = 0
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { destination in
            status = LZ4F_compressFrame(destination.baseAddress, destination.count, source.baseAddress, source.count, &preferences)
            return LZ4F_isError(status) != 0 ? 0 : status
        }
        guard LZ4F_isError(status) == 0 else { return .failure(.failed(.lz4, lz4Error(status))) }
        return .success(output)
    }

    private static func lz4Decompress(_ source: UnsafeRawBufferPointer, maxBytes: Int) -> Result<ByteBuffer, RecordCompressionError> {
        var context: OpaquePointer?
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            return .failure(.failed(.lz4, "cannot allocate a decompression context"))
        }
        defer { LZ4F_freeDecompressionContext(context) }
        var info = LZ4F_frameInfo_t()
        var headerBytes = source.count
        let status = LZ4F_getFrameInfo(context, &info, source.baseAddress, &headerBytes)
        if LZ4F_isError(status) != 0 { return .failure(.corrupt(.lz4, lz4Error(status))) }
        // contentSize 0 means "not recorded"; like zstd's, it is only a hint.
        if info.contentSize > UInt64(maxBytes) { return .failure(.tooLarge(.lz4, limit: maxBytes)) }
        let hint = info.contentSize > 0 ? Int(info.contentSize) : 4 * source.count
        var frameDone = false
        let result = boundedLoop(codec: .lz4, inputBytes: source.count - headerBytes, maxBytes: maxBytes, sizeHint: hint) { inputOffset, destination in
            guard !frameDone else { return .failure(.corrupt(.lz4, "bytes after the end of the frame")) }
            var consumed = source.count - headerBytes - inputOffset
            var produced = destination.count
            let next = LZ4F_decompress(
                context, destination.baseAddress, &produced, source.baseAddress.map { $0 + headerBytes + inputOffset }, &consumed, nil)
            if LZ4F_isError(next) != 0 { return .failure(.corrupt(.lz4, lz4Error(next))) }
            frameDone = next == 0
            return .success((consumed: consumed, produced: produced, frameDone: frameDone))
        }
        return result
    }

    private static func lz4Error(_ status: Int) -> String {
        String(cString: LZ4F_getErrorName(status))
    }

    // MARK: the bounded output loop

    /// One decoder step: from `inputOffset`, writing into the buffer given; how much input
    /// it used, how much it wrote, and whether it stands at the end of a frame.
    private typealias Step = (_ inputOffset: Int, _ destination: UnsafeMutableRawBufferPointer)
        -> Result<(consumed: Int, produced: Int, frameDone: Bool), RecordCompressionError>

    /// Runs `step` until all input is used and a frame has ended, growing the output as
    /// needed but never offering room past `maxBytes` + 1 (that one byte tells "exactly at
    /// the limit" from "over it").
    private static func boundedLoop(
        codec: RecordCompression, inputBytes: Int, maxBytes: Int, sizeHint: Int, step: Step
    ) -> Result<ByteBuffer, RecordCompressionError> {
        let ceiling = maxBytes + 1
        var output = ByteBufferAllocator().buffer(capacity: min(max(sizeHint, 1024), ceiling))
        var inputOffset = 0
        var frameDone = false
        while !(frameDone && inputOffset == inputBytes) {
            let room = ceiling - output.readableBytes
            let wanted = min(max(output.writableBytes, output.readableBytes, 64 * 1024), room)
            var outcome: Result<(consumed: Int, produced: Int, frameDone: Bool), RecordCompressionError> = .failure(.failed(codec, "no step"))
            var offered = 0
            output.writeWithUnsafeMutableBytes(minimumWritableBytes: wanted) { destination in
                offered = min(destination.count, room)
                outcome = step(inputOffset, UnsafeMutableRawBufferPointer(rebasing: destination.prefix(offered)))
                if case .success(let progress) = outcome { return progress.produced }
                return 0
            }
            let progress: (consumed: Int, produced: Int, frameDone: Bool)
            switch outcome {
            case .success(let value): progress = value
            case .failure(let error): return .failure(error)
            }
            inputOffset += progress.consumed
            frameDone = progress.frameDone
            if output.readableBytes > maxBytes { return .failure(.tooLarge(codec, limit: maxBytes)) }
            // The decoder had room to write and nothing left to read, yet wants more input.
            let starved = inputOffset == inputBytes && !frameDone && progress.produced < offered
            let stuck = progress.consumed == 0 && progress.produced == 0 && !frameDone
            if starved || stuck { return .failure(.corrupt(codec, "the compressed data ends inside a frame")) }
        }
        return .success(output)
    }
}

/// Why compressing or decompressing failed.
public enum RecordCompressionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The bytes are not a valid frame of the codec, or end early.
    case corrupt(RecordCompression, String)
    /// Decompressed, the bytes would exceed the limit.
    case tooLarge(RecordCompression, limit: Int)
    /// The library failed (out of memory).
    case failed(RecordCompression, String)

    public var description: String {
        switch self {
        case .corrupt(let codec, let detail): "\(codec) data is corrupt: \(detail)"
        case .tooLarge(let codec, let limit): "\(codec) data decompresses to more than the limit of \(limit) bytes"
        case .failed(let codec, let detail): "\(codec) failed: \(detail)"
        }
    }
}
