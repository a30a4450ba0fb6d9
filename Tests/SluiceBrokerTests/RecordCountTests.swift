import NIOCore
import SluiceAPI
import SluiceChecksum
import SluiceClient
import SluiceCompression
import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Testing

/// Offsets are assigned from `record_count`, so the broker counts the records of every
/// batch it appends (decompressing a compressed one, bounded by `max.message.bytes`)
/// and refuses a batch whose count is not true with INVALID_BATCH.
@Suite(.timeLimit(.minutes(2))) struct RecordCountTests {
    private static func entries(_ count: Int, bytes: Int = 20) -> [RecordBatchCodec.Entry] {
        (0..<count).map {
            RecordBatchCodec.Entry(
                key: nil, value: ByteBuffer(repeating: UInt8(97 + $0 % 26), count: bytes), timestampMs: 1_700_000_000_000)
        }
    }

    /// `count` records, compressed with `codec`, claiming `claimed` records.
    private static func batch(holding count: Int, claiming claimed: Int, _ codec: RecordCompression = .none) -> RecordBatch {
        var batch = RecordBatchCodec.makeBatch(entries(count), compression: codec)
        #expect(RecordCompression(attributes: batch.attributes) == codec, "the batch is compressed as asked")
        batch.recordCount = UInt32(claimed)
        return batch
    }

    @Test func batchesThatMiscountTheirRecordsAreRefusedAndTakeNoOffsets() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 1))
        var producer = try await ProduceStream(broker.connection)
        var notRecords = TestBatches.batch(["x"])
        notRecords.records = ByteBuffer(bytes: [0x0A, 0x05, 0x01])  // field 1, 5 bytes long, 1 present
        notRecords.recordsCrc32c = CRC32C.checksum(notRecords.records)
        var notRecordsDamaged = notRecords
        notRecordsDamaged.recordsCrc32c ^= 1
        var lyingDamaged = Self.batch(holding: 3, claiming: 1)
        lyingDamaged.recordsCrc32c ^= 1
        var zstdGarbage = TestBatches.batch(["x"])
        zstdGarbage.attributes = RecordCompression.zstd.rawValue

        let cases: [(String, RecordBatch, ErrorCode, String)] = [
            ("claims 1, holds 3", Self.batch(holding: 3, claiming: 1), .invalidBatch, "record_count is 1 but records holds 3 records"),
            ("claims 5, holds 2", Self.batch(holding: 2, claiming: 5), .invalidBatch, "record_count is 5 but records holds 2 records"),
            ("zstd claims 2, holds 30", Self.batch(holding: 30, claiming: 2, .zstd), .invalidBatch, "holds 30 records"),
            ("zstd claims 40, holds 30", Self.batch(holding: 30, claiming: 40, .zstd), .invalidBatch, "record_count is 40"),
            ("lz4 claims 2, holds 30", Self.batch(holding: 30, claiming: 2, .lz4), .invalidBatch, "holds 30 records"),
            ("lz4 claims 40, holds 30", Self.batch(holding: 30, claiming: 40, .lz4), .invalidBatch, "record_count is 40"),
            ("not a Records message", notRecords, .invalidBatch, "not a serialized Records message"),
            ("not Records, bad CRC", notRecordsDamaged, .corruptBatch, "records_crc32c"),
            ("miscounted, bad CRC", lyingDamaged, .corruptBatch, "records_crc32c"),
            ("not a zstd frame", zstdGarbage, .invalidBatch, "cannot be decompressed"),
        ]
        for (what, batch, code, text) in cases {
            let answer = try await producer.produce("t", batch)
            #expect(answer.error == code, "\(what): \(answer.errorMessage)")
            #expect(answer.errorMessage.contains(text), "\(what): \(answer.errorMessage)")
            #expect(answer.baseOffset == -1, "\(what)")
        }
        // Nothing was appended: true batches take offsets from 0, one per record.
        var expected: Int64 = 0
        for (count, codec) in [(3, RecordCompression.none), (30, .zstd), (30, .lz4), (1, .none)] {
            let answer = try await producer.produce("t", Self.batch(holding: count, claiming: count, codec))
            #expect(answer.error == .none, "\(count) \(codec): \(answer.errorMessage)")
            #expect(answer.baseOffset == expected, "\(count) \(codec)")
            expected += Int64(count)
        }
        try await producer.close()
        let partition = try await broker.admin.describeTopic(named: "t").partitions[0]
        #expect(partition.logEndOffset == expected)
        var subscriber = try await SubscribeStream(
            broker.connection, SubscribeRequest(topic: "t", partitions: [.init(partition: 0, start: .earliest)]))
        var offsets: [Int64] = []
        while offsets.count < 4, let response = try await subscriber.next() { offsets += response.batches.map(\.baseOffset) }
        #expect(offsets == [0, 3, 33, 63])
        subscriber.call.cancel()
        await broker.stopAndRemove()
    }

    /// A small compressed batch that would decompress past `max.message.bytes` is refused
    /// as soon as the output passes the limit, whatever its frame header says.
    @Test func aCompressionBombIsRefusedAtTheTopicLimit() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(
            CreateTopicRequest(name: "small", partitions: 1, configs: ["max.message.bytes": "10000"]))
        var producer = try await ProduceStream(broker.connection)
        for codec in [RecordCompression.zstd, .lz4] {
            let bomb = Self.batch(holding: 1, claiming: 1, codec)
            var big = RecordBatchCodec.makeBatch(Self.entries(1, bytes: 1_000_000), compression: codec)
            #expect(big.records.readableBytes < 10000 - 64, "\(codec): the bomb itself is small")
            big.recordCount = 1
            let answer = try await producer.produce("small", big)
            #expect(answer.error == .messageTooLarge, "\(codec): \(answer.errorMessage)")
            #expect(answer.errorMessage.contains("decompress"), "\(codec): \(answer.errorMessage)")
            // Right at home under the limit, the same codec is accepted.
            #expect(try await producer.produce("small", bomb).error == .none, "\(codec)")
        }
        try await producer.close()
        await broker.stopAndRemove()
    }

    /// Unknown top-level fields (a newer writer's) are skipped, not counted.
    @Test func unknownFieldsOfRecordsAreNotCounted() throws {
        var bytes = Records(records: [Record(value: ByteBuffer(string: "a")), Record(value: ByteBuffer(string: "b"))])
            .protobufBytes()
        #expect(Records.count(inSerialized: bytes) == 2)
        bytes.writeBytes([0x10, 0x96, 0x01, 0x1A, 0x02, 0x0A, 0x00, 0x25, 1, 2, 3, 4, 0x29, 1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Records.count(inSerialized: bytes) == 2)
        #expect(Records.count(inSerialized: ByteBuffer()) == 0)
        for malformed: [UInt8] in [[0x08, 0x01], [0x0A], [0x0A, 0x02, 0x00], [0x0B], [0x00, 0x00], [0x12, 0xFF]] {
            #expect(Records.count(inSerialized: ByteBuffer(bytes: malformed)) == nil, "\(malformed)")
        }
    }
}
