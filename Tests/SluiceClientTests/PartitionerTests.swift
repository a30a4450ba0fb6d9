import NIOCore
import SluiceAPI
@testable import SluiceClient
import Testing

@Suite("Partitioner and batch encoding against docs/test-vectors.json", .timeLimit(.minutes(2)))
struct PartitionerTests {
    @Test("murmur2 and partitions of every published key")
    func keys() throws {
        let vectors = try TestVectors.load()
        #expect(vectors.keys.count >= 10)
        for key in vectors.keys {
            let bytes = Hex.bytes(key.key_hex)
            #expect(Partitioner.murmur2(bytes) == key.murmur2, "\(key.note): \(key.key_hex)")
            for (count, partition) in key.partitions {
                let partitionCount = try #require(Int(count))
                #expect(Partitioner.partition(forKey: bytes, partitionCount: partitionCount) == partition,
                        "\(key.key_hex) over \(count) partitions")
                // ByteBuffer views (what the producer hashes) give the same answer as arrays.
                #expect(Partitioner.partition(forKey: ByteBuffer(bytes: bytes).readableBytesView, partitionCount: partitionCount) == partition)
            }
        }
    }

    @Test("Kafka's own murmur2 test values")
    func kafka() {
        #expect(Partitioner.murmur2(Array("21".utf8)) == -973_932_308)
        #expect(Partitioner.murmur2(Array("foobar".utf8)) == -790_332_482)
        #expect(Partitioner.murmur2(Array("abc".utf8)) == 479_470_107)
        #expect(Partitioner.murmur2(Array("a-little-bit-longer-string".utf8)) == -1_486_304_829)
    }

    @Test("the CRC32C check value")
    func crcCheck() throws {
        let vectors = try TestVectors.load()
        #expect(vectors.crc32c.check.crc32c == 0xE306_9283)
        #expect(RecordBatchCodec.checksum(ByteBuffer(string: vectors.crc32c.check.input_ascii)) == vectors.crc32c.check.crc32c)
    }

    static func records(_ batch: TestVectors.Batch) -> Records {
        Records(records: batch.records.map { record in
            Record(
                timestampDeltaMs: record.timestamp_delta_ms, key: record.key_hex.map(Hex.buffer),
                value: Hex.buffer(record.value_hex),
                headers: record.headers.map { RecordHeader(key: $0.key, value: Hex.buffer($0.value_hex)) })
        })
    }

    @Test("Records serialize to the published bytes and CRC, and decode back")
    func batches() throws {
        let vectors = try TestVectors.load()
        #expect(vectors.batches.count >= 3)
        for batch in vectors.batches {
            let records = Self.records(batch)
            let bytes = records.protobufBytes()
            #expect(Hex.string(bytes) == batch.records_bytes_hex, "\(batch.note)")
            #expect(RecordBatchCodec.checksum(bytes) == batch.records_crc32c, "\(batch.note)")
            #expect(try Records(protobuf: Hex.buffer(batch.records_bytes_hex)) == records, "\(batch.note)")
        }
    }

    @Test("makeBatch builds the published bytes from timestamps, and sizes them exactly")
    func makeBatch() throws {
        let vectors = try TestVectors.load()
        let base: Int64 = 1_764_000_000_000
        // makeBatch measures deltas from the first record, so it reproduces the vectors
        // whose first record has delta 0.
        let reproducible = vectors.batches.filter { $0.records.first?.timestamp_delta_ms == 0 }
        #expect(reproducible.count >= 3)
        for batch in reproducible {
            let entries = batch.records.map { record in
                RecordBatchCodec.Entry(
                    key: record.key_hex.map(Hex.buffer), value: Hex.buffer(record.value_hex),
                    headers: record.headers.map { RecordHeader(key: $0.key, value: Hex.buffer($0.value_hex)) },
                    timestampMs: base + record.timestamp_delta_ms)
            }
            let built = RecordBatchCodec.makeBatch(entries)
            #expect(Hex.string(built.records) == batch.records_bytes_hex, "\(batch.note)")
            #expect(built.recordsCrc32c == batch.records_crc32c)
            #expect(built.formatVersion == 1 && built.recordCount == UInt32(entries.count))
            #expect(built.firstTimestampMs == base)
            #expect(built.maxTimestampMs == entries.map(\.timestampMs).max())
            let summed = entries.reduce(0) { $0 + RecordBatchCodec.encodedSize(of: $1, firstTimestampMs: base) }
            #expect(summed == built.records.readableBytes, "\(batch.note): the size accounting is exact")
        }
    }

    @Test("decoding a batch gives offsets, timestamps, keys and headers; LogAppendTime uses the batch time")
    func decode() throws {
        let vectors = try TestVectors.load()
        let batch = try #require(vectors.batches.first { $0.records.count == 3 })
        var wire = RecordBatch(
            formatVersion: 1, baseOffset: 40, recordCount: 3, firstTimestampMs: 1000, maxTimestampMs: 1007,
            recordsCrc32c: batch.records_crc32c, records: Hex.buffer(batch.records_bytes_hex))
        let decoded = try RecordBatchCodec.records(of: wire)
        #expect(decoded.map(\.offset) == [40, 41, 42])
        #expect(decoded.map(\.timestampMs) == [1000, 1007, 995])
        #expect(decoded[0].key == nil)
        #expect(decoded[1].key == ByteBuffer())
        #expect(decoded[2].headers.map(\.key) == ["trace-id", "empty", "trace-id"])

        wire.attributes = RecordBatchCodec.logAppendTimeAttribute
        wire.firstTimestampMs = 5000
        #expect(try RecordBatchCodec.records(of: wire).map(\.timestampMs) == [5000, 5000, 5000])
    }

    @Test("a wrong CRC, a wrong count, a mislabelled codec and an unknown one are refused")
    func decodeErrors() throws {
        let vectors = try TestVectors.load()
        let batch = try #require(vectors.batches.first)
        let good = RecordBatch(
            formatVersion: 1, baseOffset: 7, recordCount: 1, recordsCrc32c: batch.records_crc32c,
            records: Hex.buffer(batch.records_bytes_hex))
        var corrupt = good
        corrupt.recordsCrc32c ^= 1
        #expect(throws: RecordBatchCodec.DecodingError.checksumMismatch(
            baseOffset: 7, expected: batch.records_crc32c ^ 1, actual: batch.records_crc32c)) {
            try RecordBatchCodec.records(of: corrupt)
        }
        var miscounted = good
        miscounted.recordCount = 2
        #expect(throws: RecordBatchCodec.DecodingError.recordCountMismatch(baseOffset: 7, header: 2, decoded: 1)) {
            try RecordBatchCodec.records(of: miscounted)
        }
        // Plain records labelled zstd are not a Zstandard frame; codec 3 names no codec.
        var mislabelled = good
        mislabelled.attributes = 1
        #expect(throws: RecordBatchCodec.DecodingError.decompressionFailed(
            baseOffset: 7, .corrupt(.zstd, "not a Zstandard frame"))) {
            try RecordBatchCodec.records(of: mislabelled)
        }
        var unknownCodec = good
        unknownCodec.attributes = 3
        #expect(throws: RecordBatchCodec.DecodingError.unsupportedCompression(baseOffset: 7, attributes: 3)) {
            try RecordBatchCodec.records(of: unknownCodec)
        }
    }

    @Test("keyless records: the sticky partition moves round-robin when its batch closes")
    func sticky() {
        var sticky = StickyPartition(start: 2)
        #expect(sticky.partition(partitionCount: 3) == 2)
        sticky.batchClosed(on: 1, partitionCount: 3)
        #expect(sticky.partition(partitionCount: 3) == 2, "a batch closing elsewhere does not move it")
        var seen: [Int] = []
        for _ in 0..<6 {
            seen.append(sticky.partition(partitionCount: 3))
            sticky.batchClosed(on: sticky.partition(partitionCount: 3), partitionCount: 3)
        }
        #expect(seen == [2, 0, 1, 2, 0, 1])
    }
}
