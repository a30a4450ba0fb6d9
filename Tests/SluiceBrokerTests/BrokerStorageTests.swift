import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Testing

/// Partition logs under the broker: durability across a power cut, restart, topic
/// changes applied to the logs, retention.
@Suite(.timeLimit(.minutes(2))) struct BrokerStorageTests {
    @Test(arguments: [FsyncPolicy.always, .never, .interval(milliseconds: 20)])
    func everythingAckedDurableSurvivesAPowerCut(policy: FsyncPolicy) async throws {
        let fileSystem = SimulatedFileSystem(seed: 7)
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let configure: (inout BrokerServer.Configuration) -> Void = {
            $0.storage.fileSystem = fileSystem
            $0.storage.fsyncPolicy = policy
        }
        let first = try await InProcessBroker.start(directory: directory, configure: configure)
        _ = try await first.admin.createTopic(CreateTopicRequest(name: "kept", partitions: 2))
        var producer = try await ProduceStream(first.connection)
        var durable: [(partition: UInt32, offset: Int64, value: String)] = []
        for index in 0..<40 {
            let partition = UInt32(index % 2)
            // Durable answers interleaved with leader-only ones, which may be lost.
            let acks: Acks = index % 4 == 3 ? .leader : .durable
            let answer = try await producer.produce("kept", partition: partition, acks: acks, TestBatches.batch(["v\(index)"]))
            #expect(answer.error == .none)
            if acks == .durable { durable.append((partition, answer.baseOffset, "v\(index)")) }
        }
        // Power goes while the stream is still open: nothing gets a clean close.
        fileSystem.powerCut(halting: true)
        await first.stop()
        fileSystem.restart()

        let second = try await InProcessBroker.start(directory: directory, configure: configure)
        for partition in UInt32(0)..<2 {
            let expected = durable.filter { $0.partition == partition }
            let end = try await second.admin.describeTopic(named: "kept").partitions[Int(partition)].logEndOffset
            #expect(end >= (expected.last?.offset ?? -1) + 1)
            var subscriber = try await SubscribeStream(
                second.connection, SubscribeRequest(topic: "kept", partitions: [.init(partition: partition, start: .earliest)]))
            let records = try await subscriber.records(Int(end), partition: partition)
            let byOffset = Dictionary(records.map { ($0.offset, $0.value) }, uniquingKeysWith: { first, _ in first })
            for entry in expected {
                #expect(byOffset[entry.offset] == entry.value, "partition \(partition) offset \(entry.offset)")
            }
            subscriber.call.cancel()
        }
        // Appends continue after the recovered end.
        var again = try await ProduceStream(second.connection)
        let next = try await again.produce("kept", TestBatches.batch(["after"]))
        #expect(next.error == .none)
        #expect(next.baseOffset == (try await second.admin.describeTopic(named: "kept").partitions[0].logEndOffset) - 1)
        try await again.close()
        await second.stop()
    }

    @Test func aCleanRestartKeepsEveryBatchAndOffsetsContinue() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let first = try await InProcessBroker.start(directory: directory)
        _ = try await first.admin.createTopic(CreateTopicRequest(name: "t", partitions: 1))
        var producer = try await ProduceStream(first.connection)
        for index in 0..<5 { _ = try await producer.produce("t", acks: .leader, TestBatches.batch(["\(index)"])) }
        try await producer.close()
        await first.stop()

        let second = try await InProcessBroker.start(directory: directory)
        var subscriber = try await SubscribeStream(second.connection, SubscribeRequest(topic: "t"))
        #expect(try await subscriber.records(5).map(\.value) == ["0", "1", "2", "3", "4"])
        var again = try await ProduceStream(second.connection)
        #expect(try await again.produce("t", TestBatches.batch(["5"])).baseOffset == 5)
        #expect(try await subscriber.records(1).map(\.offset) == [5])
        subscriber.call.cancel()
        try await again.close()
        await second.stop()
    }

    /// After a clean stop, a restart and another stop with nothing written in between cost
    /// no sync per partition: each log keeps its clean-shutdown marker and its producer
    /// snapshot, so an idle broker of thousands of partitions restarts and stops in seconds.
    @Test func anIdleRestartAndStopSyncNothingPerPartition() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let partitions = 40
        let first = try await InProcessBroker.start(directory: directory)
        _ = try await first.admin.createTopic(CreateTopicRequest(name: "idle", partitions: UInt32(partitions)))
        var producer = try await ProduceStream(first.connection)
        for index in 0..<partitions {
            _ = try await producer.produce("idle", partition: UInt32(index), acks: .leader, TestBatches.batch(["\(index)"]))
        }
        try await producer.close()
        await first.stop()

        let counted = InstrumentedFileSystem()
        let second = try await InProcessBroker.start(directory: directory) { $0.storage.fileSystem = counted }
        let described = try await second.admin.describeTopic(named: "idle")
        #expect(described.partitions.map(\.highWatermark) == Array(repeating: 1, count: partitions))
        await second.stop()
        // The broker's own files (the offsets log, its lock) may sync; no partition does.
        #expect(counted.syncCount < partitions, "\(counted.syncCount) syncs for \(partitions) idle partitions")

        let third = try await InProcessBroker.start(directory: directory)
        var again = try await ProduceStream(third.connection)
        #expect(try await again.produce("idle", partition: 7, TestBatches.batch(["next"])).baseOffset == 1)
        try await again.close()
        await third.stop()
    }

    @Test func topicChangesReachTheLogs() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "grow", partitions: 1))
        var producer = try await ProduceStream(broker.connection)
        #expect(try await producer.produce("grow", partition: 2, TestBatches.batch(["x"])).error == .unknownPartition)
        _ = try await broker.admin.createPartitions(named: "grow", totalCount: 3)
        #expect(try await producer.produce("grow", partition: 2, TestBatches.batch(["x"])).baseOffset == 0)

        _ = try await broker.admin.alterTopicConfig(named: "grow", set: ["max.message.bytes": "100", "segment.bytes": "4096"])
        let log = try broker.server.broker.partitionLog(topic: "grow", partition: 2)
        #expect(log.config.segmentBytes == 4096)
        let big = TestBatches.batch([String(repeating: "y", count: 50)])
        #expect(try await producer.produce("grow", partition: 2, big).error == .messageTooLarge)
        _ = try await broker.admin.alterTopicConfig(named: "grow", set: [:], reset: ["max.message.bytes"])
        #expect(try await producer.produce("grow", partition: 2, big).error == .none)
        try await producer.close()
        await broker.stopAndRemove()
    }

    @Test func retentionMovesTheLogStartAndStrandedSubscribersGetOutOfRange() async throws {
        let clock = ManualClock()
        let broker = try await InProcessBroker.startSimulated(clock: clock)
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "old", partitions: 1, configs: ["segment.bytes": "1024"]))
        var producer = try await ProduceStream(broker.connection)
        for index in 0..<40 {
            let answer = try await producer.produce("old", TestBatches.batch(["\(index)", String(repeating: "z", count: 100)]))
            #expect(answer.error == .none)
        }
        let log = try broker.server.broker.partitionLog(topic: "old", partition: 0)
        #expect(log.segmentCount > 3)

        // A subscriber that has read one batch and is then stuck (its send does not return).
        let (delivered, deliveredContinuation) = AsyncStream<Int64>.makeStream()
        let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
        let core = broker.server.broker
        let stranded = Task {
            try await core.subscribe(SubscribeRequest(topic: "old", maxBytes: 1)) { response in
                deliveredContinuation.yield(response.batches[0].baseOffset)
                for await _ in release { break }
            }
        }
        var deliveries = delivered.makeAsyncIterator()
        #expect(await deliveries.next() == 0)

        // Retention by age: every sealed segment is older than retention.ms now.
        _ = try await broker.admin.alterTopicConfig(named: "old", set: ["retention.ms": "60000"])
        clock.advance(byMilliseconds: 120_000)
        let report = core.runMaintenance()
        #expect(report.segmentsDeleted > 0)
        let start = try await broker.admin.describeTopic(named: "old").partitions[0].logStartOffset
        #expect(start > 2)
        #expect(start == log.segmentBaseOffsets.first)

        releaseContinuation.yield()
        await #expect(throws: BrokerError.self) { try await stranded.value }
        do {
            try await stranded.value
        } catch let error as BrokerError {
            #expect(error.code == .offsetOutOfRange)
            #expect(error.message.contains("below the log start"))
        }
        await expectStatus(.outOfRange, containing: "subscribe again from earliest") {
            var subscriber = try await SubscribeStream(
                broker.connection, SubscribeRequest(topic: "old", partitions: [.init(partition: 0, start: .offset(0))]))
            _ = try await subscriber.next()
        }
        // Producers learn the new start too.
        #expect(try await producer.produce("old", TestBatches.batch(["late"])).logStartOffset == start)
        try await producer.close()
        await broker.stopAndRemove()
    }

    @Test func idleActiveSegmentsRollByAgeSoRetentionCanDeleteThem() async throws {
        let clock = ManualClock()
        let broker = try await InProcessBroker.startSimulated(clock: clock)
        _ = try await broker.admin.createTopic(CreateTopicRequest(
            name: "idle", partitions: 1, configs: ["segment.ms": "1000", "retention.ms": "5000"]))
        var producer = try await ProduceStream(broker.connection)
        _ = try await producer.produce("idle", TestBatches.batch(["only"], firstTimestampMs: clock.nowMilliseconds()))
        try await producer.close()
        let core = broker.server.broker
        #expect(core.runMaintenance().segmentsRolled == 0)
        clock.advance(byMilliseconds: 2000)
        #expect(core.runMaintenance().segmentsRolled == 1)
        clock.advance(byMilliseconds: 10_000)
        #expect(core.runMaintenance().segmentsDeleted == 1)
        let partition = try await broker.admin.describeTopic(named: "idle").partitions[0]
        #expect(partition.logStartOffset == 1 && partition.logEndOffset == 1)
        await broker.stopAndRemove()
    }

    @Test func openFilesPerPartitionAreBounded() async throws {
        let broker = try await InProcessBroker.start {
            $0.storage.fileSystem = SimulatedFileSystem()
            $0.storage.maxOpenSealedSegmentsPerPartition = 2
        }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "many", partitions: 1, configs: ["segment.bytes": "1024"]))
        #expect(try broker.server.broker.partitionLog(topic: "many", partition: 0).config.maxOpenSealedSegments == 2)
        await broker.stopAndRemove()
    }
}
