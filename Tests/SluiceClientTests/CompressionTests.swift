import NIOCore
import SluiceAPI
import SluiceClient
import SluiceCompression
import Testing

/// zstd and lz4 batch compression: round trips, corrupt input, the decompression bound,
/// and batches built and read back through `RecordBatchCodec`.
@Suite("Record compression", .timeLimit(.minutes(2)))
struct CompressionTests {
    static let codecs: [RecordCompression] = [.zstd, .lz4]

    /// Deterministic bytes: runs of a repeating pattern mixed with xorshift noise, so
    /// they compress, but not to nothing.
    static func sample(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> ByteBuffer {
        var state = seed
        var bytes = [UInt8](repeating: 0, count: count)
        for index in 0..<count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            bytes[index] = index % 64 < 40 ? UInt8(index % 7) : UInt8(truncatingIfNeeded: state)
        }
        return ByteBuffer(bytes: bytes)
    }

    @Test("codec numbers are those of records.proto and attribute bits 0-2", arguments: [
        (UInt32(0), RecordCompression.none), (1, .zstd), (2, .lz4), (0b1001, .zstd), (0b1010, .lz4),
    ])
    func numbering(attributes: UInt32, codec: RecordCompression) {
        #expect(RecordCompression(attributes: attributes) == codec)
    }

    @Test("numbers 3 to 7 name no codec")
    func unknownNumbers() {
        for number in UInt32(3)...7 { #expect(RecordCompression(attributes: number) == nil) }
        #expect(RecordCompression(name: "gzip") == nil)
        #expect(RecordCompression(name: "ZSTD") == .zstd)
    }

    @Test("round trip at several sizes and levels", arguments: codecs)
    func roundTrip(codec: RecordCompression) throws {
        for size in [1, 100, 65_535, 65_536, 300_000] {
            let input = Self.sample(size)
            for level in [nil, codec.levels.lowerBound, codec.levels.upperBound] where size <= 65_536 || level == nil {
                let compressed = try codec.compress(input, level: level)
                #expect(compressed != input)
                let output = try codec.decompress(compressed, maxBytes: size)
                #expect(output == input, "\(codec) level \(String(describing: level)) size \(size)")
            }
        }
        let repetitive = ByteBuffer(repeating: 0x61, count: 100_000)
        #expect(try codec.compress(repetitive).readableBytes < 1000, "a run of one byte compresses")
    }

    @Test("the frames are the standard ones (magic numbers)")
    func frameMagic() throws {
        let zstd = try RecordCompression.zstd.compress(Self.sample(100))
        #expect(zstd.getBytes(at: zstd.readerIndex, length: 4) == [0x28, 0xB5, 0x2F, 0xFD])
        let lz4 = try RecordCompression.lz4.compress(Self.sample(100))
        #expect(lz4.getBytes(at: lz4.readerIndex, length: 4) == [0x04, 0x22, 0x4D, 0x18])
    }

    @Test("truncated, bit-flipped and random input is a corrupt error, not a crash", arguments: codecs)
    func corrupt(codec: RecordCompression) throws {
        let input = Self.sample(20_000)
        let compressed = try codec.compress(input)
        let bytes = Array(compressed.readableBytesView)
        for cut in [0, 1, 4, 7, bytes.count / 2, bytes.count - 1] {
            #expect(throws: RecordCompressionError.self, "cut at \(cut)") {
                _ = try codec.decompress(ByteBuffer(bytes: bytes[..<cut]), maxBytes: 1 << 20)
            }
        }
        // Flipping a byte may still decode (lz4 without checksums), but must never crash,
        // and what decodes stays within the limit.
        var state: UInt64 = 42
        for _ in 0..<300 {
            state = state &* 6_364_136_223_846_793_005 &+ 1
            var damaged = bytes
            let position = Int(state >> 33) % damaged.count
            damaged[position] ^= UInt8(truncatingIfNeeded: state >> 20) | 1
            if let output = try? codec.decompress(ByteBuffer(bytes: damaged), maxBytes: 30_000) {
                #expect(output.readableBytes <= 30_000)
            }
        }
        for length in [1, 16, 1000] {
            var noise = [UInt8](repeating: 0, count: length)
            for index in noise.indices {
                state = state &* 6_364_136_223_846_793_005 &+ 1
                noise[index] = UInt8(truncatingIfNeeded: state >> 40)
            }
            #expect(throws: RecordCompressionError.self) { _ = try codec.decompress(ByteBuffer(bytes: noise), maxBytes: 1 << 20) }
        }
        let error = #expect(throws: RecordCompressionError.self) {
            _ = try codec.decompress(ByteBuffer(bytes: bytes[..<(bytes.count / 2)]), maxBytes: 1 << 20)
        }
        guard case .corrupt(let named, _)? = error else {
            Issue.record("expected .corrupt, got \(String(describing: error))")
            return
        }
        #expect(named == codec)
    }

    @Test("a bomb: 64 MiB of zeros in a few KiB is refused at the limit", arguments: codecs)
    func bomb(codec: RecordCompression) throws {
        let bomb = try codec.compress(ByteBuffer(repeating: 0, count: 64 << 20))
        #expect(bomb.readableBytes < 300_000)
        #expect(throws: RecordCompressionError.tooLarge(codec, limit: 1 << 20)) {
            _ = try codec.decompress(bomb, maxBytes: 1 << 20)
        }
        // Exactly at the limit is allowed; one byte less is not.
        let exact = try codec.compress(ByteBuffer(repeating: 7, count: 10_000))
        #expect(try codec.decompress(exact, maxBytes: 10_000).readableBytes == 10_000)
        #expect(throws: RecordCompressionError.tooLarge(codec, limit: 9_999)) {
            _ = try codec.decompress(exact, maxBytes: 9_999)
        }
    }

    /// zstd decompression contexts are reused (`ZstdDecompressionContexts`): one that a cut
    /// frame or a bomb left mid-frame must start the next frame clean, in turn and from
    /// many tasks at once.
    @Test("a reused zstd context left mid-frame decodes the next frame whole")
    func zstdContextReuse() async throws {
        let input = Self.sample(200_000)
        let frame = try RecordCompression.zstd.compress(input)
        let cut = ByteBuffer(bytes: Array(frame.readableBytesView)[..<(frame.readableBytes / 2)])
        let bomb = try RecordCompression.zstd.compress(ByteBuffer(repeating: 0, count: 4 << 20))
        for _ in 0..<20 {
            #expect(throws: RecordCompressionError.self) { _ = try RecordCompression.zstd.decompress(cut, maxBytes: 1 << 20) }
            #expect(throws: RecordCompressionError.self) { _ = try RecordCompression.zstd.decompress(bomb, maxBytes: 1 << 20) }
            #expect(try RecordCompression.zstd.decompress(frame, maxBytes: 1 << 20) == input)
        }
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for task in 0..<16 {
                group.addTask {
                    for round in 0..<20 {
                        if (task + round) % 3 == 0 {
                            _ = try? RecordCompression.zstd.decompress(cut, maxBytes: 1 << 20)
                        } else if try RecordCompression.zstd.decompress(frame, maxBytes: 1 << 20) != input {
                            return false
                        }
                    }
                    return true
                }
            }
            for try await whole in group { #expect(whole) }
        }
    }

    @Test("zstd frames whose declared sizes each fit are still stopped when together they do not")
    func zstdBombPastTheDeclaredSize() throws {
        // The first frame's header claims 600 KB, under the limit; the second frame brings
        // the output past it, which only the bounded loop catches.
        var frames = try RecordCompression.zstd.compress(ByteBuffer(repeating: 1, count: 600_000))
        var second = try RecordCompression.zstd.compress(ByteBuffer(repeating: 2, count: 600_000))
        frames.writeBuffer(&second)
        #expect(throws: RecordCompressionError.tooLarge(.zstd, limit: 1_000_000)) {
            _ = try RecordCompression.zstd.decompress(frames, maxBytes: 1_000_000)
        }
        #expect(try RecordCompression.zstd.decompress(frames, maxBytes: 1_200_000).readableBytes == 1_200_000)
    }

    func entries(_ count: Int) -> [RecordBatchCodec.Entry] {
        (0..<count).map { index in
            RecordBatchCodec.Entry(
                key: index % 3 == 0 ? nil : ByteBuffer(string: "key-\(index % 5)"),
                value: ByteBuffer(string: "value \(index) " + String(repeating: "x", count: index % 50)),
                headers: index % 4 == 0 ? [RecordHeader(key: "h", value: ByteBuffer(string: "\(index)"))] : [],
                timestampMs: 1_700_000_000_000 + Int64(index))
        }
    }

    @Test("a compressed batch carries the codec in its attributes and reads back the same records", arguments: RecordCompression.allCases)
    func batchRoundTrip(codec: RecordCompression) throws {
        let entries = entries(500)
        let plain = RecordBatchCodec.makeBatch(entries)
        var batch = RecordBatchCodec.makeBatch(entries, compression: codec)
        #expect(batch.attributes == codec.rawValue)
        #expect(batch.recordsCrc32c == RecordBatchCodec.checksum(batch.records), "the CRC covers the bytes as sent")
        if codec != .none { #expect(batch.records.readableBytes < plain.records.readableBytes) }
        batch.baseOffset = 1000
        let records = try RecordBatchCodec.records(of: batch)
        #expect(records.map(\.offset) == Array(1000..<1500))
        #expect(records.map(\.value) == entries.map(\.value))
        #expect(records.map(\.key) == entries.map(\.key))
        #expect(records.map(\.headers) == entries.map(\.headers))
    }

    @Test("a reader's limit applies to a batch's decompressed records")
    func batchLimit() throws {
        let batch = RecordBatchCodec.makeBatch(entries(500), compression: .zstd)
        let error = #expect(throws: RecordBatchCodec.DecodingError.self) {
            _ = try RecordBatchCodec.records(of: batch, maxDecompressedBytes: 1000)
        }
        #expect(error == .decompressionFailed(baseOffset: 0, .tooLarge(.zstd, limit: 1000)))
    }

    @Test("corrupt compressed records with a matching CRC are a decoding error")
    func corruptBatch() throws {
        var batch = RecordBatchCodec.makeBatch(entries(50), compression: .lz4)
        batch.records = ByteBuffer(bytes: Array(batch.records.readableBytesView.prefix(20)))
        batch.recordsCrc32c = RecordBatchCodec.checksum(batch.records)
        let error = #expect(throws: RecordBatchCodec.DecodingError.self) { _ = try RecordBatchCodec.records(of: batch) }
        guard case .decompressionFailed(_, .corrupt(.lz4, _))? = error else {
            Issue.record("expected a corrupt lz4 error, got \(String(describing: error))")
            return
        }
    }

    @Test("a codec number this client does not know is refused by name")
    func unknownCodecInBatch() {
        var batch = RecordBatchCodec.makeBatch(entries(1))
        batch.attributes = 3
        #expect(throws: RecordBatchCodec.DecodingError.unsupportedCompression(baseOffset: 0, attributes: 3)) {
            _ = try RecordBatchCodec.records(of: batch)
        }
    }
}
