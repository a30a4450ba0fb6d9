import NIOCore
import SluiceClient
import Testing

/// Misuse of the public API throws (or answers nil); it never traps the caller's process.
@Suite("Client misuse throws")
struct MisuseTests {
    @Test("a GroupBatch without records throws emptyBatch")
    func emptyGroupBatch() {
        #expect {
            _ = try GroupBatch(topicPartition: TopicPartition(topic: "orders", partition: 0), records: [], generation: 1)
        } throws: { error in
            if case .emptyBatch? = error as? GroupConsumerError { true } else { false }
        }
    }

    @Test("a producer whose sizes are not positive throws invalidConfiguration at its first send")
    func invalidProducerConfiguration() async {
        var configuration = ProducerConfiguration()
        configuration.maxBatchBytes = 0
        // No broker at this address: the configuration is refused before any connect.
        let producer = Producer(address: BrokerAddress(host: "127.0.0.1", port: 1), configuration: configuration)
        await #expect {
            _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "x"))
        } throws: { error in
            if case .invalidConfiguration? = error as? ProducerError { true } else { false }
        }
    }

    @Test("the partition of a key among no partitions is nil")
    func noPartitions() {
        #expect(Partitioner.partition(forKey: Array("key".utf8), partitionCount: 0) == nil)
        #expect(Partitioner.partition(forKey: Array("key".utf8), partitionCount: 1) == 0)
    }
}
