import NIOCore
import SluiceChecksum

/// An open segment .log file, shareable with work done outside the log's lock: the
/// group-commit flusher's sync and the bulk pread of a read. Its counters are only
/// read and written under that lock, which is why the unchecked Sendable is sound:
/// closing waits for the uses in flight instead of pulling the descriptor from
/// under them.
final class SegmentFile: @unchecked Sendable {
    let file: any StorageFile
    private var usesInFlight = 0
    private var closeRequested = false

    init(_ file: any StorageFile) { self.file = file }

    /// Under the log's lock, before using the file without it.
    func beginUse() { usesInFlight += 1 }

    /// Under the log's lock, once that use is over.
    func endUse() {
        precondition(usesInFlight > 0, "endUse without beginUse")
        usesInFlight -= 1
        if usesInFlight == 0 && closeRequested { file.close() }
    }

    /// Under the log's lock: closes now, or when the last use in flight ends.
    func close() {
        if usesInFlight > 0 { closeRequested = true } else { file.close() }
    }
}

/// The bulk part of a read, planned under the log's lock and done without it. The
/// bytes it covers were all written before the plan was made, so a concurrent
/// append cannot change them; a truncation can, which the caller detects by the
/// log's truncation count and answers by reading again.
struct ReadPlan: Sendable {
    let file: SegmentFile
    let path: String
    let position: Int64
    let length: Int
    /// The base offset the batch at `position` must carry (found by `locate`).
    let firstBaseOffset: Int64
    let firstStoredSize: Int
    let endOffset: Int64
    let truncations: UInt64

    /// Whole batches from `position`: the first one, then more while they fit in
    /// `length` and end before `endOffset`.
    ///
    /// Every header handed out is checked here, on the bytes that leave, not on an
    /// earlier read of them: format version, reserved bytes, the header CRC, the field
    /// relations, and that its base offset is the one the previous batch ends at. Only
    /// `recordsCRC` reaches a subscriber, so a header field that changed on disk
    /// (a timestamp, a base offset, which would move a record to another offset) could
    /// not be noticed anywhere else. A bad header after good ones ends the read before
    /// it: the good ones are served and the next read, starting at the bad one, fails
    /// in `Segment.locate`; a bad first header fails this read. Both name the segment,
    /// the byte position and the offset expected there. Records bytes are not checked
    /// (the subscriber checks `recordsCRC` end to end; checking them here would cost a
    /// CRC pass over everything served).
    func execute() throws(LogError) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: length)
        let file = self.file.file
        let length = self.length
        let position = self.position
        do throws(StorageIOError) {
            try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) {
                (raw) throws(StorageIOError) -> Int in
                try file.readFully(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<length]), at: position)
            }
        } catch {
            throw LogError(error)
        }
        // Keep whole, checked batches only: walk the headers now in memory.
        var kept = 0
        var expected = firstBaseOffset
        while kept + BatchHeader.size <= buffer.readableBytes {
            let header: BatchHeader
            switch Segment.checkHeader(buffer, at: kept, expectedBaseOffset: expected) {
            case .success(let checked): header = checked
            case .failure(let damage):
                if kept == 0 {
                    throw Segment.damagedHeader(path: path, position: position, expected: expected, damage)
                }
                // Serve the batches before it; the next read starts here and fails in `locate`.
                buffer.moveWriterIndex(to: kept)
                return buffer
            }
            guard kept + header.storedSize <= buffer.readableBytes else { break }
            if kept > 0 && header.nextOffset > endOffset { break }
            kept += header.storedSize
            expected = header.nextOffset
        }
        guard kept >= firstStoredSize else {
            throw LogError.corruptSegment(path: path, position: position, reason: "batch shorter than its header says")
        }
        buffer.moveWriterIndex(to: kept)
        return buffer
    }
}

/// Reads a segment sequentially through a window, so scanning many small batches
/// costs one pread per window rather than two per batch.
struct SegmentReader {
    let file: any StorageFile
    let fileSize: Int64
    private var window: [UInt8] = []
    private var windowStart: Int64 = 0
    private static let windowBytes = StorageLimits.defaults.readWindowBytes.value

    init(file: any StorageFile, fileSize: Int64) {
        self.file = file
        self.fileSize = fileSize
    }

    /// Calls `body` with `count` bytes at `position`, or returns nil if the file
    /// ends first.
    mutating func withBytes<T>(
        at position: Int64, count: Int, _ body: (UnsafeRawBufferPointer) -> T
    ) throws(StorageIOError) -> T? {
        guard position + Int64(count) <= fileSize else { return nil }
        let inWindow = position >= windowStart && position + Int64(count) <= windowStart + Int64(window.count)
        if !inWindow {
            let length = Int(min(Int64(max(count, SegmentReader.windowBytes)), fileSize - position))
            if window.count != length { window = [UInt8](repeating: 0, count: length) }
            let file = self.file
            let read = try file.readFully(into: &window, at: position)
            window.removeLast(length - read)
            windowStart = position
            guard read >= count else { return nil }
        }
        let start = Int(position - windowStart)
        return window.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start..<(start + count)])) }
    }
}

/// What a batch-by-batch check of a segment found.
struct SegmentScan {
    /// Position right after the last whole, valid batch.
    var validEnd: Int64
    /// The offset after the last valid batch.
    var nextOffset: Int64
    var lastBatch: BatchHeader?
    /// The first thing wrong after `validEnd`, if the file does not end there.
    var defect: String?
    /// Whether loading rewrote the segment's index files (they were missing or
    /// disagreed with the batches).
    var indexesRewritten = false

    /// Checks batches from `position` until the file ends or a batch fails: both CRCs,
    /// the length, and that each base offset follows on from the last. `visit` sees
    /// each valid batch and its position.
    static func run(
        file: any StorageFile, fileSize: Int64, from position: Int64, expectedOffset: Int64,
        maxRecordsLength: Int, visit: (BatchHeader, Int64) -> Void
    ) throws(StorageIOError) -> SegmentScan {
        var reader = SegmentReader(file: file, fileSize: fileSize)
        var scan = SegmentScan(validEnd: position, nextOffset: expectedOffset, lastBatch: nil, defect: nil)
        while scan.validEnd < fileSize {
            let at = scan.validEnd
            let checked = try reader.withBytes(at: at, count: BatchHeader.size) { raw in
                BatchHeader.checked(raw, maxRecordsLength: maxRecordsLength)
            }
            guard let checked else {
                scan.defect = "\(fileSize - at) trailing bytes, less than a batch header"
                break
            }
            let header: BatchHeader
            switch checked {
            case .failure(let defect):
                scan.defect = defect.description
                return scan
            case .success(let decoded): header = decoded
            }
            guard header.baseOffset == scan.nextOffset else {
                scan.defect = "batch base offset \(header.baseOffset), expected \(scan.nextOffset)"
                break
            }
            let recordsCRC = try reader.withBytes(at: at + Int64(BatchHeader.size), count: Int(header.recordsLength)) {
                CRC32C.checksum($0)
            }
            guard let recordsCRC else {
                scan.defect = "batch at offset \(header.baseOffset) is cut short: needs \(header.storedSize) bytes"
                break
            }
            guard recordsCRC == header.recordsCRC else {
                scan.defect = "batch at offset \(header.baseOffset): \(BatchDefect.recordsChecksumMismatch)"
                break
            }
            visit(header, at)
            scan.validEnd = at + Int64(header.storedSize)
            scan.nextOffset = header.nextOffset
            scan.lastBatch = header
        }
        return scan
    }
}
