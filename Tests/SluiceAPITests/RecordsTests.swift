import NIOCore
import SluiceAPI
import Testing

@Suite(.timeLimit(.minutes(2))) struct RecordsTests {
    @Test func recordKeyAbsentEmptyAndSetStayDistinct() throws {
        let absent = Record(timestampDeltaMs: 3, key: nil, value: buffer("v"))
        let empty = Record(timestampDeltaMs: 3, key: ByteBuffer(), value: buffer("v"))
        let set = Record(timestampDeltaMs: 3, key: buffer("user-1"), value: buffer("v"))

        let absentBytes = try expectRoundTrip(absent)
        let emptyBytes = try expectRoundTrip(empty)
        try expectRoundTrip(set)

        #expect(try Record(protobuf: absentBytes).key == nil)
        #expect(try Record(protobuf: emptyBytes).key == ByteBuffer())
        // An empty key is still written (field 2, length 0): two bytes more than no key.
        #expect(emptyBytes.readableBytes == absentBytes.readableBytes + 2)
    }

    @Test func recordWithHeadersAndNegativeDelta() throws {
        let record = Record(
            timestampDeltaMs: -250,
            key: buffer([0x00, 0xFF]),
            value: buffer(Array(repeating: 0x5A, count: 3000)),
            headers: [
                RecordHeader(key: "trace", value: buffer("abc")),
                RecordHeader(key: "trace", value: ByteBuffer()),
                RecordHeader(key: "", value: buffer([0])),
            ])
        let decoded = try Record(protobuf: try expectRoundTrip(record))
        #expect(decoded.headers.map(\.key) == ["trace", "trace", ""])
        #expect(decoded.value.readableBytes == 3000)
    }

    @Test func recordsAndBatchRoundTrip() throws {
        let records = Records(records: (0..<50).map { index in
            Record(timestampDeltaMs: Int64(index), key: index % 3 == 0 ? nil : buffer("k\(index)"),
                   value: buffer("value \(index)"))
        })
        let payload = try expectRoundTrip(records)
        let batch = RecordBatch(
            formatVersion: 1, attributes: 0b1000, baseOffset: 1 << 40, recordCount: 50,
            firstTimestampMs: 1_700_000_000_000, maxTimestampMs: 1_700_000_000_049,
            partitionLeaderEpoch: 7, producerId: 12345, producerEpoch: 2, baseSequence: 99,
            recordsCrc32c: 0xDEAD_BEEF, records: payload)
        let decoded = try RecordBatch(protobuf: try expectRoundTrip(batch))
        #expect(try Records(protobuf: decoded.records) == records)
    }

    @Test func batchRecordsCanBeASliceOfALargerBuffer() throws {
        var storage = buffer(Array("HEADER--".utf8) + [1, 2, 3, 4, 5] + Array("--TRAILER".utf8))
        let slice = try #require(storage.getSlice(at: 8, length: 5))
        let batch = RecordBatch(formatVersion: 1, recordCount: 1, records: slice)
        let encoded = batch.protobufBytes()
        // The arena only borrowed the slice's storage: writing to the original afterwards
        // copies on write and leaves the batch's bytes alone.
        storage.setBytes([9, 9, 9, 9, 9], at: 8)
        #expect(bytes(try RecordBatch(protobuf: encoded).records) == [1, 2, 3, 4, 5])
        #expect(bytes(batch.records) == [1, 2, 3, 4, 5])
    }

    @Test func defaultsEncodeToNothing() {
        #expect(RecordBatch().protobufBytes().readableBytes == 0)
        #expect(Record().protobufBytes().readableBytes == 0)
        #expect(Records().protobufBytes().readableBytes == 0)
    }

    @Test func emptyInputDecodesToDefaults() throws {
        #expect(try RecordBatch(protobuf: ByteBuffer()) == RecordBatch())
        #expect(try Record(protobuf: ByteBuffer()).key == nil)
    }
}
