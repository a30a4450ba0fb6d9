import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import Testing

/// A Producer sizes its batches to the topic's `max.message.bytes` and `segment.bytes`
/// (read with DescribeTopic), whatever its own `maxBatchBytes` (docs/client.md).
@Suite(.timeLimit(.minutes(3)))
struct ProducerTopicLimitTests {
    @Test("a Producer fits its batches to the topic's max.message.bytes and segment.bytes", arguments: [
        ["max.message.bytes": "10000"], ["segment.bytes": "16384"],
    ])
    func producerFitsBatchesToTheTopic(configs: [String: String]) async throws {
        let broker = try await InProcessBroker.start()
        defer { Task { await broker.stopAndRemove() } }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "small", partitions: 1, configs: configs))
        var configuration = ProducerConfiguration()
        // Far above both limits, and long enough that every record below gathers first.
        configuration.maxBatchBytes = 1 << 20
        configuration.linger = .seconds(30)
        let producer = Producer(address: BrokerAddress(host: "127.0.0.1", port: broker.port), configuration: configuration)
        let value = String(repeating: "v", count: 200)
        var deliveries: [Delivery] = []
        for index in 0..<300 {
            deliveries.append(try await producer.enqueue(topic: "small", value: ByteBuffer(string: "\(index) \(value)")))
        }
        await producer.flush()
        var offsets: [Int64] = []
        for delivery in deliveries { offsets.append(try await delivery.result().offset) }
        #expect(offsets == (0..<300).map(Int64.init))
        await producer.close()
    }
}
