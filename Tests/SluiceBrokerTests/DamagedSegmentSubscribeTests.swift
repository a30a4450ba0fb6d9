import Foundation
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Testing

/// One bit flipped in a header field of a sealed segment's second batch, after a clean
/// shutdown: Subscribe from 0 serves the first batch unchanged, then ends with DATA_LOSS
/// naming the segment and the offset. Never a changed timestamp, offset or anything else.
@Suite(.timeLimit(.minutes(5))) struct DamagedSegmentSubscribeTests {
    /// Each field's last byte (big-endian: its lowest bit changes the value by one, the
    /// least visible change) and the reserved bytes.
    static let fields: [(name: String, byte: Int)] = [
        ("formatVersion", BatchHeader.formatVersionOffset),
        ("reserved byte", BatchHeader.reservedByteOffset),
        ("attributes", BatchHeader.attributesOffset + 1),
        ("headerCRC", BatchHeader.headerCRCOffset + 3),
        ("recordsLength", BatchHeader.recordsLengthOffset + 3),
        ("recordCount", BatchHeader.recordCountOffset + 3),
        ("baseOffset", BatchHeader.baseOffsetOffset + 7),
        ("firstTimestamp", BatchHeader.firstTimestampOffset + 7),
        ("maxTimestamp", BatchHeader.maxTimestampOffset + 7),
        ("producerId", BatchHeader.producerIdOffset + 7),
        ("leaderEpoch", BatchHeader.leaderEpochOffset + 3),
        ("baseSequence", BatchHeader.baseSequenceOffset + 3),
        ("producerEpoch", BatchHeader.producerEpochOffset + 1),
        ("reserved short", BatchHeader.reservedShortOffset + 1),
        ("recordsCRC", BatchHeader.recordsCRCOffset + 3),
    ]

    @Test func aFlippedBitInAnyHeaderFieldEndsTheSubscriptionWithDataLoss() async throws {
        #expect(Self.fields.count == 15)
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        // Four batches of three 60-byte records (about 262 bytes stored each) in 1 KiB
        // segments: the first segment holds offsets 0, 3 and 6 and is sealed.
        var broker = try await InProcessBroker.start(directory: directory)
        _ = try await broker.admin.createTopic(
            CreateTopicRequest(name: "dmg", partitions: 1, configs: ["segment.bytes": "1024"]))
        var producer = try await ProduceStream(broker.connection)
        var sent: [RecordBatch] = []
        for index in 0..<4 {
            let values = (0..<3).map { String(repeating: Character(UnicodeScalar(UInt8(97 + index * 3 + $0))), count: 60) }
            let batch = TestBatches.batch(values, firstTimestampMs: 1_700_000_000_000 + Int64(index) * 10)
            #expect(try await producer.produce("dmg", batch).error == .none)
            sent.append(batch)
        }
        try await producer.close()
        await broker.stop()

        let topics = directory.path + "/data/topics"
        let topicDirectory = try FileManager.default.contentsOfDirectory(atPath: topics).first { $0.hasPrefix("dmg-") }
        let partition = topics + "/" + (try #require(topicDirectory)) + "/0"
        var pristine: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: partition) {
            pristine[name] = try Data(contentsOf: URL(fileURLWithPath: partition + "/" + name))
        }
        let segment = "00000000000000000000.log"
        #expect(pristine["00000000000000000009.log"] != nil, "the first segment is sealed")
        let second = BatchHeader.size + sent[0].records.readableBytes

        for field in Self.fields {
            var damaged = pristine
            damaged[segment]![second + field.byte] ^= 0x01
            for (name, bytes) in damaged { try bytes.write(to: URL(fileURLWithPath: partition + "/" + name)) }
            broker = try await InProcessBroker.start(directory: directory)
            var subscriber = try await SubscribeStream(
                broker.connection, SubscribeRequest(topic: "dmg", partitions: [.init(partition: 0, start: .earliest)]))
            let first = try await subscriber.next()
            #expect(first?.batches.map(\.baseOffset) == [0], "\(field.name)")
            if let served = first?.batches.first {
                #expect(served.records == sent[0].records, "\(field.name)")
                #expect(served.firstTimestampMs == sent[0].firstTimestampMs, "\(field.name)")
                #expect(served.recordCount == 3, "\(field.name)")
            }
            // Served past the damage already: the next answer would only wait for new batches.
            if first?.batches.count == 1 {
                await expectStatus(.dataLoss, containing: segment) {
                    // One more answer only: anything but DATA_LOSS is a damaged batch served.
                    if let response = try await subscriber.next() {
                        Issue.record("\(field.name): served \(response.batches.map(\.baseOffset)) past the damaged header")
                    }
                }
            }
            subscriber.call.cancel()
            await expectStatus(.dataLoss, containing: "the batch at offset 3") {
                var again = try await SubscribeStream(
                    broker.connection, SubscribeRequest(topic: "dmg", partitions: [.init(partition: 0, start: .offset(3))]))
                defer { again.call.cancel() }
                _ = try await again.next()
            }
            await broker.stop()
        }
        for (name, bytes) in pristine { try bytes.write(to: URL(fileURLWithPath: partition + "/" + name)) }
        broker = try await InProcessBroker.start(directory: directory)
        var subscriber = try await SubscribeStream(
            broker.connection, SubscribeRequest(topic: "dmg", partitions: [.init(partition: 0, start: .earliest)]))
        let records = try await subscriber.records(12)
        #expect(records.map(\.offset) == Array(0..<12), "undamaged, every record is served at its offset")
        subscriber.call.cancel()
        await broker.stop()
    }
}
