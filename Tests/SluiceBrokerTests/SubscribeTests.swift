import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Foundation
import Logging
import Testing

@Suite(.timeLimit(.minutes(2))) struct SubscribeTests {
    /// A topic with one partition holding batches [a b c] [d e] [f g h i] at offsets 0, 3, 5,
    /// timestamps 1000+index*10 per record across the batches.
    private func preparedBroker() async throws -> InProcessBroker {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "log", partitions: 1))
        var producer = try await ProduceStream(broker.connection)
        for (values, first) in [(["a", "b", "c"], Int64(1000)), (["d", "e"], 1030), (["f", "g", "h", "i"], 1050)] {
            let answer = try await producer.produce("log", TestBatches.batch(values, firstTimestampMs: first, spacingMs: 10))
            #expect(answer.error == .none)
        }
        try await producer.close()
        return broker
    }

    private func firstOffsets(_ broker: InProcessBroker, _ start: StartPosition) async throws -> [Int64] {
        var subscriber = try await SubscribeStream(
            broker.connection, SubscribeRequest(topic: "log", partitions: [.init(partition: 0, start: start)]))
        defer { subscriber.call.cancel() }
        var offsets: [Int64] = []
        while offsets.last.map({ $0 < 5 }) ?? true {
            guard let response = try await subscriber.next() else { break }
            offsets += response.batches.map(\.baseOffset)
        }
        return offsets
    }

    @Test func startPositions() async throws {
        let broker = try await preparedBroker()
        #expect(try await firstOffsets(broker, .earliest) == [0, 3, 5])
        // Inside a batch: that whole batch comes first.
        #expect(try await firstOffsets(broker, .offset(4)) == [3, 5])
        #expect(try await firstOffsets(broker, .offset(3)) == [3, 5])
        // The batch holding the first record at or after the time.
        #expect(try await firstOffsets(broker, .timestamp(1035)) == [3, 5])
        #expect(try await firstOffsets(broker, .timestamp(1041)) == [5])
        #expect(try await firstOffsets(broker, .timestamp(0)) == [0, 3, 5])
        // No position at all means earliest.
        #expect(try await firstOffsets(broker, StartPosition()) == [0, 3, 5])
        await broker.stopAndRemove()
    }

    @Test func latestAndFutureTimestampsWaitForNewBatches() async throws {
        let broker = try await preparedBroker()
        let future: Int64 = 9_000_000_000_000
        for kind in 0..<3 {
            let end = try await broker.admin.describeTopic(named: "log").partitions[0].logEndOffset
            // latest, the exact log end, and a time after every stored batch: all at the end.
            let start: StartPosition = [.latest, .offset(end), .timestamp(future + 100)][kind]
            var subscriber = try await SubscribeStream(
                broker.connection, SubscribeRequest(topic: "log", partitions: [.init(partition: 0, start: start)]))
            var producer = try await ProduceStream(broker.connection)
            // There is no handshake: the new batch may be appended before or after the
            // subscriber starts waiting; either way it must be pushed.
            let answer = try await producer.produce("log", TestBatches.batch(["new"], firstTimestampMs: future + (kind == 2 ? 200 : Int64(kind))))
            #expect(answer.baseOffset == end)
            let response = try #require(try await subscriber.next())
            #expect(response.batches.map(\.baseOffset) == [answer.baseOffset])
            #expect(try TestBatches.values(response.batches[0]) == ["new"])
            try await producer.close()
            subscriber.call.cancel()
        }
        await broker.stopAndRemove()
    }

    @Test func positionsOutOfRangeAreRefused() async throws {
        let broker = try await preparedBroker()
        await expectStatus(.outOfRange, containing: "past the log end") {
            var subscriber = try await SubscribeStream(
                broker.connection, SubscribeRequest(topic: "log", partitions: [.init(partition: 0, start: .offset(10))]))
            _ = try await subscriber.next()
        }
        await expectStatus(.outOfRange, containing: "below the log start") {
            var subscriber = try await SubscribeStream(
                broker.connection, SubscribeRequest(topic: "log", partitions: [.init(partition: 0, start: .offset(-1))]))
            _ = try await subscriber.next()
        }
        await expectStatus(.notFound, containing: "missing") {
            var subscriber = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "missing"))
            _ = try await subscriber.next()
        }
        await expectStatus(.notFound, containing: "partition 3") {
            var subscriber = try await SubscribeStream(
                broker.connection, SubscribeRequest(topic: "log", partitions: [.init(partition: 3)]))
            _ = try await subscriber.next()
        }
        await expectStatus(.invalidArgument, containing: "more than once") {
            var subscriber = try await SubscribeStream(
                broker.connection, SubscribeRequest(topic: "log", partitions: [.init(partition: 0), .init(partition: 0)]))
            _ = try await subscriber.next()
        }
        await broker.stopAndRemove()
    }

    @Test func liveSubscribersAreIndependentAndSeeEveryPartition() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "live", partitions: 3))
        // All partitions, from earliest, with small responses.
        var all = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "live", maxBytes: 1))
        var onlyOne = try await SubscribeStream(
            broker.connection, SubscribeRequest(topic: "live", partitions: [.init(partition: 2, start: .earliest)]))
        var producer = try await ProduceStream(broker.connection)
        let perPartition = 20
        for index in 0..<perPartition {
            for partition in UInt32(0)..<3 {
                let answer = try await producer.produce("live", partition: partition, acks: .leader, TestBatches.batch(["\(partition)-\(index)"]))
                #expect(answer.error == .none)
            }
        }
        try await producer.close()

        var seen: [UInt32: [String]] = [:]
        var total = 0
        while total < perPartition * 3 {
            let response = try #require(try await all.next())
            #expect(response.batches.count == 1)  // max_bytes 1: one whole batch per response
            for batch in response.batches {
                #expect(batch.baseOffset == Int64(seen[response.partition, default: []].count))
                seen[response.partition, default: []] += try TestBatches.values(batch)
                total += 1
            }
        }
        for partition in UInt32(0)..<3 {
            #expect(seen[partition] == (0..<perPartition).map { "\(partition)-\($0)" })
        }
        let two = try await onlyOne.records(perPartition)
        #expect(two.map(\.offset) == (0..<perPartition).map(Int64.init))
        #expect(two.map(\.value) == (0..<perPartition).map { "2-\($0)" })
        all.call.cancel()
        onlyOne.call.cancel()
        try await eventually("subscriptions end") { broker.server.broker.counters.snapshot.subscribeStreamsActive == 0 }
        await broker.stopAndRemove()
    }

    @Test func minBytesHoldsPushesUntilEnoughOrMaxWait() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "batched", partitions: 1))
        var subscriber = try await SubscribeStream(
            broker.connection, SubscribeRequest(topic: "batched", minBytes: 1_000_000, maxWaitMs: 100))
        var producer = try await ProduceStream(broker.connection)
        for index in 0..<3 { _ = try await producer.produce("batched", TestBatches.batch(["\(index)"])) }
        // Far below min_bytes: only max_wait releases them, then all in one response
        // (unless the first batch was read before the others were appended).
        var offsets: [Int64] = []
        while offsets.count < 3 {
            let response = try #require(try await subscriber.next())
            offsets += response.batches.map(\.baseOffset)
        }
        #expect(offsets == [0, 1, 2])
        try await producer.close()
        subscriber.call.cancel()
        await broker.stopAndRemove()
    }

    @Test func deletingTheTopicEndsItsSubscriptions() async throws {
        let broker = try await preparedBroker()
        var subscriber = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "log", defaultStart: .latest))
        try await broker.admin.deleteTopic(named: "log")
        await expectStatus(.notFound, containing: "deleted") { _ = try await subscriber.next() }
        // Re-created under the same name: a new, empty log.
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "log", partitions: 1))
        #expect(try await broker.admin.describeTopic(named: "log").partitions[0].logEndOffset == 0)
        await broker.stopAndRemove()
    }

    @Test func aSubscriberThatDisconnectsLeavesNothingBehind() async throws {
        let broker = try await preparedBroker()
        var subscriber = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "log", maxBytes: 1))
        _ = try #require(try await subscriber.next())
        subscriber.call.cancel()
        try await eventually("the subscription ends") { broker.server.broker.counters.snapshot.subscribeStreamsActive == 0 }
        // The partition still serves others.
        #expect(try await firstOffsets(broker, .earliest) == [0, 3, 5])
        await broker.stopAndRemove()
    }
}

@Suite(.timeLimit(.minutes(2))) struct ConcurrencyAndFlowTests {
    @Test func concurrentProducersKeepPerPartitionOrderAndEveryRecordArrivesOnce() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "busy", partitions: 3))
        // SLUICE_SOAK=1 runs a longer flood.
        let soak = ProcessInfo.processInfo.environment["SLUICE_SOAK"] == "1"
        let producers = soak ? 8 : 4, perProducer = soak ? 2_000 : 60
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producerIndex in 0..<producers {
                group.addTask {
                    var producer = try await ProduceStream(broker.connection)
                    for index in 0..<perProducer {
                        let answer = try await producer.produce(
                            "busy", partition: UInt32(index % 3), acks: index % 2 == 0 ? .leader : .durable,
                            TestBatches.batch(["p\(producerIndex)-\(index)"]))
                        #expect(answer.error == .none)
                    }
                    try await producer.close()
                }
            }
            try await group.waitForAll()
        }
        var subscriber = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "busy"))
        var seen: [String] = []
        var lastIndex: [String: Int] = [:]  // per producer and partition
        while seen.count < producers * perProducer {
            let response = try #require(try await subscriber.next())
            for batch in response.batches {
                for value in try TestBatches.values(batch) {
                    seen.append(value)
                    let parts = value.dropFirst().split(separator: "-")
                    let key = "\(parts[0])/\(response.partition)", index = Int(parts[1]) ?? -1
                    #expect(index > lastIndex[key, default: -1], "order within \(key)")
                    #expect(UInt32(index % 3) == response.partition)
                    lastIndex[key] = index
                }
            }
        }
        #expect(Set(seen).count == producers * perProducer)
        subscriber.call.cancel()
        await broker.stopAndRemove()
    }

    @Test func aSubscriberThatDoesNotReadHoldsUpNobody() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "flow", partitions: 1))
        var configuration = GRPCClientConfiguration(host: "127.0.0.1", port: broker.port)
        configuration.initialWindowBytes = 16 * 1024
        let slowConnection = try await GRPCClientConnection.connect(configuration, logger: .init(label: "slow"))
        var slow = try await SubscribeStream(slowConnection, SubscribeRequest(topic: "flow"))
        // Far more than the slow subscriber's window and the server's send queue.
        var producer = try await ProduceStream(broker.connection)
        let value = String(repeating: "v", count: 16 * 1024)
        let count = 256
        for index in 0..<count {
            let answer = try await producer.produce("flow", acks: .leader, TestBatches.batch(["\(index)", value]))
            #expect(answer.error == .none)
        }
        try await producer.close()
        // A fast subscriber is served meanwhile.
        var fast = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "flow"))
        #expect(try await fast.records(count * 2).count == count * 2)
        fast.call.cancel()
        // The slow one then gets everything, in order.
        let records = try await slow.records(count * 2)
        #expect(records.map(\.offset) == (0..<Int64(count * 2)).map { $0 })
        slow.call.cancel()
        await slowConnection.close()
        await broker.stopAndRemove()
    }

    @Test func retentionRunsInTheBackground() async throws {
        let broker = try await InProcessBroker.start { $0.storage.maintenanceInterval = .milliseconds(20) }
        _ = try await broker.admin.createTopic(CreateTopicRequest(
            name: "bg", partitions: 1, configs: ["segment.bytes": "1024", "retention.bytes": "0"]))
        var producer = try await ProduceStream(broker.connection)
        for index in 0..<30 {
            _ = try await producer.produce("bg", acks: .leader, TestBatches.batch(["\(index)", String(repeating: "r", count: 100)]))
        }
        try await producer.close()
        try await eventually("retention moved the log start") {
            try await broker.admin.describeTopic(named: "bg").partitions[0].logStartOffset > 0
        }
        await broker.stopAndRemove()
    }
}

@Suite(.timeLimit(.minutes(2))) struct SubscribeShutdownTests {
    @Test func shutdownEndsWaitingSubscribersAtOnceWithUnavailable() async throws {
        // A grace period far longer than the test's time limit: only an early end passes.
        let broker = try await InProcessBroker.start { $0.transport.shutdownGracePeriod = .seconds(600) }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "s", partitions: 1))
        var subscriber = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "s"))
        var producer = try await ProduceStream(broker.connection)
        _ = try await producer.produce("s", TestBatches.batch(["x"]))
        _ = try #require(try await subscriber.next())  // the stream is up and now waits
        try await producer.close()
        async let stopped: Void = broker.server.shutdown()
        await expectStatus(.unavailable, containing: "shutting down") { _ = try await subscriber.next() }
        await stopped
        await broker.connection.close()
        broker.directory.remove()
    }
}
