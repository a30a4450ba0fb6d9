import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
import SluiceStorage
import SluiceWire
import Testing

@Suite struct SubscribeTests {
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
