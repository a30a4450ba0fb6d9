import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

/// Clients follow a growing topic: a whole-topic Subscribe and a Producer pick up
/// partitions CreatePartitions adds (docs/produce-subscribe.md, docs/client.md).
@Suite(.timeLimit(.minutes(3)))
struct GrowingTopicTests {
    @Test("a Subscribe naming no partitions reads partitions added while it is open, from their start")
    func wholeTopicSubscribeFollowsNewPartitions() async throws {
        let broker = try await InProcessBroker.start()
        defer { Task { await broker.stopAndRemove() } }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "growing", partitions: 1))
        var stream = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "growing", defaultStart: .latest))
        try await produce(broker, "growing", partition: 0, ["p0"])
        // The stream is serving: what was produced after it opened arrives.
        #expect(try await stream.records(1).map(\.value) == ["p0"])

        _ = try await broker.admin.createPartitions(named: "growing", totalCount: 3)
        try await produce(broker, "growing", partition: 2, ["p2"])
        try await produce(broker, "growing", partition: 1, ["p1"])
        var arrived: [UInt32: [String]] = [:]
        // A generous bound on waiting for records that may never come (without the fix they
        // do not): the stream is cancelled, and the loop ends, after 30 s.
        let call = stream.call
        let deadline = Task {
            try await Task.sleep(for: .seconds(30))
            call.cancel()
        }
        do {
            while arrived.count < 2 {
                guard let response = try await stream.next() else { break }
                for batch in response.batches { arrived[response.partition, default: []] += try TestBatches.values(batch) }
            }
        } catch {
            Issue.record("the subscription failed: \(error)")
        }
        deadline.cancel()
        #expect(arrived == [1: ["p1"], 2: ["p2"]])
        stream.call.cancel()
    }

    @Test("a Consumer of every partition (partitions nil) reads partitions added while it iterates")
    func consumerFollowsNewPartitions() async throws {
        let broker = try await InProcessBroker.start()
        defer { Task { await broker.stopAndRemove() } }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "growing", partitions: 1))
        try await produce(broker, "growing", partition: 0, ["p0"])
        let consumer = Consumer(address: BrokerAddress(host: "127.0.0.1", port: broker.port), topic: "growing")
        var records = consumer.makeAsyncIterator()
        // The subscription is open once its first record arrived.
        #expect(try await records.next().map { String(buffer: $0.value) } == "p0")
        _ = try await broker.admin.createPartitions(named: "growing", totalCount: 2)
        try await produce(broker, "growing", partition: 1, ["p1"])
        // A generous bound on waiting for a record that, without the fix, never comes.
        let reading = Task {
            var records = records
            return try await records.next().map { ($0.partition, String(buffer: $0.value)) }
        }
        let deadline = Task {
            try await Task.sleep(for: .seconds(30))
            reading.cancel()
        }
        let next = try? await reading.value
        deadline.cancel()
        #expect(next?.0 == 1 && next?.1 == "p1")
    }

    @Test("a Producer re-reads the partition count once its metadata is older than metadataMaxAge")
    func producerSeesNewPartitions() async throws {
        let broker = try await InProcessBroker.start()
        defer { Task { await broker.stopAndRemove() } }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "growing", partitions: 1))
        var configuration = ProducerConfiguration()
        configuration.metadataMaxAge = .zero
        let producer = Producer(address: BrokerAddress(host: "127.0.0.1", port: broker.port), configuration: configuration)
        _ = try await producer.send(topic: "growing", value: ByteBuffer(string: "first"))
        _ = try await broker.admin.createPartitions(named: "growing", totalCount: 3)
        let landed = try await producer.send(topic: "growing", value: ByteBuffer(string: "new"), partition: 2)
        #expect(landed.partition == 2 && landed.offset == 0)
        // Keyed records spread over all three partitions now (murmur2 of the key, mod 3).
        let key = try #require((0..<100).map { "k\($0)" }.first { Partitioner.partition(forKey: Array($0.utf8), partitionCount: 3) == 1 })
        let keyed = try await producer.send(topic: "growing", key: ByteBuffer(string: key), value: ByteBuffer(string: "keyed"))
        #expect(keyed.partition == 1)
        await producer.close()
    }

    @Test("a Producer keeps its metadata for metadataMaxAge (the default is 5 minutes)")
    func producerCachesMetadata() async throws {
        #expect(ProducerConfiguration().metadataMaxAge == .seconds(300))
        let broker = try await InProcessBroker.start()
        defer { Task { await broker.stopAndRemove() } }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "cached", partitions: 1))
        let producer = Producer(address: BrokerAddress(host: "127.0.0.1", port: broker.port))
        _ = try await producer.send(topic: "cached", value: ByteBuffer(string: "first"))
        _ = try await broker.admin.createPartitions(named: "cached", totalCount: 2)
        await #expect(throws: ProducerError.unknownPartition(topic: "cached", partition: 1, partitionCount: 1)) {
            _ = try await producer.send(topic: "cached", value: ByteBuffer(string: "too early"), partition: 1)
        }
        await producer.close()
    }
}
