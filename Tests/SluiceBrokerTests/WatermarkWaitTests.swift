import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Testing

/// Produce and Subscribe wait on their partition log's watermarks
/// (`PartitionLog.wait(for:toCover:notify:)`): one wait per acks=durable batch, one per
/// subscribed partition at its high watermark, and none left when a call ends.
@Suite(.timeLimit(.minutes(2))) struct WatermarkWaitTests {
    @Test func eachDurableBatchHoldsOneWaitAndAnEndedCallLeavesNone() async throws {
        let fileSystem = GatedFileSystem()
        let broker = try await InProcessBroker.start { $0.storage.fileSystem = fileSystem.fileSystem }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "held", partitions: 1))
        let log = try broker.server.broker.partitionLog(topic: "held", partition: 0)
        fileSystem.closeGate()
        let producer = try await ProduceStream(broker.connection)
        for index in 0..<3 {
            try await producer.send(ProduceRequest(
                correlationId: UInt64(index), topic: "held", acks: .durable, timeoutMs: 60_000, batch: TestBatches.batch(["\(index)"])))
        }
        // No sync can finish, so waits only accumulate: one per batch, not one per request for a sync.
        try await eventually("every batch registered its wait") { log.pendingWaitCount >= 3 }
        #expect(log.pendingWaitCount == 3)
        #expect(log.logEndOffset == 3 && log.durableEndOffset == 0)

        // A subscriber caught up with the high watermark holds one wait for its partition.
        let subscriber = try await SubscribeStream(
            broker.connection, SubscribeRequest(topic: "held", defaultStart: StartPosition(position: .latest(true))))
        try await eventually("the subscriber waits") { log.pendingWaitCount == 4 }

        // Ending the calls removes their waits although nothing became durable.
        producer.call.cancel()
        subscriber.call.cancel()
        try await eventually("the ended calls left no wait") { log.pendingWaitCount == 0 }
        #expect(log.durableEndOffset == 0)
        fileSystem.openGate()
        await broker.stopAndRemove()
    }

    @Test func aSubscriberWokenByTheHighWatermarkSeesEachBatchOnce() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "woken", partitions: 1))
        let log = try broker.server.broker.partitionLog(topic: "woken", partition: 0)
        var subscriber = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "woken"))
        for index in 0..<5 {
            // Wait until the subscriber is parked on the high watermark, then move it.
            try await eventually("the subscriber waits") { log.pendingWaitCount == 1 }
            try await produce(broker, "woken", partition: 0, ["\(index)"])
            let response = try #require(try await subscriber.next())
            #expect(response.batches.map(\.baseOffset) == [Int64(index)])
        }
        subscriber.call.cancel()
        try await eventually("the ended call left no wait") { log.pendingWaitCount == 0 }
        await broker.stopAndRemove()
    }
}
