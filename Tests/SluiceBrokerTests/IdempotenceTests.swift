import Foundation
import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
@testable import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Testing

/// The broker's idempotent-producer rules (docs/idempotence.md), driven with raw
/// ProduceRequests so nothing depends on the Swift client.
@Suite(.timeLimit(.minutes(3))) struct IdempotenceTests {
    static func batch(_ values: [String], id: Int64, epoch: Int32, sequence: Int32) -> RecordBatch {
        var batch = TestBatches.batch(values)
        batch.producerId = id
        batch.producerEpoch = epoch
        batch.baseSequence = sequence
        return batch
    }

    /// A broker on `clock` that forgets a producer id idle for 60 s, with a topic "t" of
    /// one partition.
    static func brokerWhoseProducersExpire(_ clock: ManualClock) async throws -> InProcessBroker {
        let broker = try await InProcessBroker.start { configuration in
            configuration.storage.clock = clock
            configuration.storage.producerIdExpiryMs = 60_000
        }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 1))
        return broker
    }

    static func initProducer(_ broker: InProcessBroker, name: String = "") async throws -> InitProducerIdResponse {
        try await broker.unary("/sluice.v1.Broker/InitProducerId", InitProducerIdRequest(producerName: name))
    }

    static func logEnd(_ broker: InProcessBroker, _ topic: String) async throws -> Int64 {
        try await broker.admin.describeTopic(named: topic).partitions[0].logEndOffset
    }

    @Test func aRetryOfOneOfTheLastFiveBatchesIsAnsweredWithItsOffsetAndAppendsNothing() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 1))
        let identity = try await Self.initProducer(broker)
        #expect(identity.producerId >= 1 && identity.producerEpoch == 0)
        var producer = try await ProduceStream(broker.connection)
        // Six batches of two records: sequences 0, 2, 4, 6, 8, 10.
        let batches = (0..<6).map { Self.batch(["a\($0)", "b\($0)"], id: identity.producerId, epoch: 0, sequence: Int32($0 * 2)) }
        var offsets: [Int64] = []
        for batch in batches {
            let answer = try await producer.produce("t", batch)
            #expect(answer.error == .none && !answer.duplicate, "\(answer.errorMessage)")
            offsets.append(answer.baseOffset)
        }
        #expect(offsets == [0, 2, 4, 6, 8, 10])
        for index in 1..<6 {
            let answer = try await producer.produce("t", batches[index])
            #expect(answer.error == .none, "\(answer.errorMessage)")
            #expect(answer.duplicate)
            #expect(answer.baseOffset == offsets[index])
        }
        // The first batch is no longer among the last five: refused, not appended again.
        let tooOld = try await producer.produce("t", batches[0])
        #expect(tooOld.error == .outOfOrderSequence)
        #expect(tooOld.errorMessage.contains("expected sequence 12"), "\(tooOld.errorMessage)")
        // Same base sequence, different record count: not a duplicate.
        let reshaped = try await producer.produce("t", Self.batch(["x"], id: identity.producerId, epoch: 0, sequence: 10))
        #expect(reshaped.error == .outOfOrderSequence)
        #expect(try await Self.logEnd(broker, "t") == 12)
        #expect(broker.server.broker.counters.snapshot.batchesDeduplicated == 5)
        try await producer.close()
        await broker.stopAndRemove()
    }

    @Test func gapsUnknownProducersAndBadFieldsAreRefused() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 2))
        let identity = try await Self.initProducer(broker)
        let id = identity.producerId
        var producer = try await ProduceStream(broker.connection)
        #expect(try await producer.produce("t", Self.batch(["a"], id: id, epoch: 0, sequence: 0)).error == .none)
        let gap = try await producer.produce("t", Self.batch(["c"], id: id, epoch: 0, sequence: 2))
        #expect(gap.error == .outOfOrderSequence)
        #expect(gap.errorMessage.contains("expected sequence 1, got 2"), "\(gap.errorMessage)")
        // A partition this producer never wrote to: it must start at 0.
        let fresh = try await producer.produce("t", partition: 1, Self.batch(["a"], id: id, epoch: 0, sequence: 7))
        #expect(fresh.error == .unknownProducerId)
        #expect(try await producer.produce("t", partition: 1, Self.batch(["a"], id: id, epoch: 0, sequence: 0)).error == .none)
        // An id the broker never handed out, an epoch it never handed out.
        #expect(try await producer.produce("t", Self.batch(["a"], id: id + 1000, epoch: 0, sequence: 0)).error == .unknownProducerId)
        #expect(try await producer.produce("t", Self.batch(["a"], id: id, epoch: 3, sequence: 0)).error == .unknownProducerId)
        #expect(try await producer.produce("t", Self.batch(["a"], id: -4, epoch: 0, sequence: 0)).error == .invalidBatch)
        #expect(try await producer.produce("t", Self.batch(["a"], id: id, epoch: 0, sequence: -1)).error == .invalidBatch)
        #expect(try await producer.produce("t", Self.batch(["a"], id: id, epoch: 40000, sequence: 0)).error == .invalidBatch)
        // The refusals appended nothing and the next in-order batch still fits.
        #expect(try await producer.produce("t", Self.batch(["b"], id: id, epoch: 0, sequence: 1)).baseOffset == 1)
        try await producer.close()
        await broker.stopAndRemove()
    }

    @Test func sequencesWrapAtInt32Max() {
        var state = ProducerState()
        #expect(ProducerState.lastSequence(base: Int32.max - 1, recordCount: 3) == 0)
        // Rebuilt from a log whose producer reached the top of the range.
        state.record(producerId: 1, epoch: 0, baseSequence: Int32.max - 3, recordCount: 2, baseOffset: 0, appendMs: 0)
        #expect(state.check(producerId: 1, epoch: 0, baseSequence: Int32.max - 1, recordCount: 3) == .append)
        state.record(producerId: 1, epoch: 0, baseSequence: Int32.max - 1, recordCount: 3, baseOffset: 2, appendMs: 0)
        #expect(state.producers[1]?.nextSequence == 1)
        #expect(state.check(producerId: 1, epoch: 0, baseSequence: Int32.max - 1, recordCount: 3)
            == .duplicate(.init(baseSequence: Int32.max - 1, lastSequence: 0, baseOffset: 2, lastOffset: 4)))
        #expect(state.check(producerId: 1, epoch: 0, baseSequence: 1, recordCount: 1) == .append)
    }

    @Test func aSecondInitWithTheSameNameFencesTheOlderEpoch() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 2))
        let first = try await Self.initProducer(broker, name: "billing")
        let second = try await Self.initProducer(broker, name: "billing")
        let other = try await Self.initProducer(broker, name: "shipping")
        #expect(second.producerId == first.producerId && second.producerEpoch == first.producerEpoch + 1)
        #expect(other.producerId != first.producerId)
        var producer = try await ProduceStream(broker.connection)
        // Fenced on partition 0 by the registry even before epoch 1 produced there.
        let zombie = try await producer.produce("t", Self.batch(["z"], id: first.producerId, epoch: first.producerEpoch, sequence: 0))
        #expect(zombie.error == .producerFenced)
        #expect(try await producer.produce("t", Self.batch(["a"], id: second.producerId, epoch: second.producerEpoch, sequence: 0)).error == .none)
        // A new epoch restarts sequences at 0 on every partition.
        let third = try await Self.initProducer(broker, name: "billing")
        let restart = try await producer.produce("t", Self.batch(["b"], id: third.producerId, epoch: third.producerEpoch, sequence: 1))
        #expect(restart.error == .outOfOrderSequence)
        #expect(try await producer.produce("t", Self.batch(["b"], id: third.producerId, epoch: third.producerEpoch, sequence: 0)).error == .none)
        let stale = try await producer.produce("t", Self.batch(["c"], id: second.producerId, epoch: second.producerEpoch, sequence: 1))
        #expect(stale.error == .producerFenced)
        #expect(try await Self.logEnd(broker, "t") == 2)
        let tooLong = String(repeating: "n", count: 250)
        await expectStatus(.invalidArgument, containing: "producer_name") { try await Self.initProducer(broker, name: tooLong) }
        try await producer.close()
        await broker.stopAndRemove()
    }

    @Test func fivePipelinedBatchesAndConcurrentRetriesAppendEachBatchOnce() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 1))
        let id = try await Self.initProducer(broker).producerId
        let batches = (0..<5).map { Self.batch(["v\($0)"], id: id, epoch: 0, sequence: Int32($0)) }
        // Two streams race the same five batches, each pipelined (all sent before any
        // answer is read): whichever wins appends, the other gets duplicates.
        let answers = try await withThrowingTaskGroup(of: [ProduceResponse].self) { group in
            for _ in 0..<2 {
                group.addTask {
                    var stream = try await ProduceStream(broker.connection)
                    for (index, batch) in batches.enumerated() {
                        try await stream.send(ProduceRequest(correlationId: UInt64(index), topic: "t", acks: .durable, batch: batch))
                    }
                    var received: [ProduceResponse] = []
                    while received.count < batches.count, let answer = try await stream.next() { received.append(answer) }
                    try await stream.close()
                    return received
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.count == 2)
        for stream in answers {
            #expect(stream.map(\.error) == Array(repeating: .none, count: 5), "\(stream.map(\.errorMessage))")
            #expect(stream.map(\.baseOffset) == [0, 1, 2, 3, 4])
        }
        #expect(answers.flatMap { $0 }.filter(\.duplicate).count == 5)
        #expect(try await Self.logEnd(broker, "t") == 5)
        await broker.stopAndRemove()
    }

    /// Produces three idempotent batches, restarts the broker (after `between`), and
    /// checks that retries are still recognised and sequences continue.
    func stateSurvivesARestart(between: (String) throws -> Void) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let first = try await InProcessBroker.start(directory: directory)
        // Small segments, so that rolls (and their snapshots) happen.
        _ = try await first.admin.createTopic(CreateTopicRequest(name: "t", partitions: 1, configs: ["segment.bytes": "1024"]))
        let identity = try await Self.initProducer(first, name: "p")
        var producer = try await ProduceStream(first.connection)
        let payload = String(repeating: "x", count: 300)
        let batches = (0..<8).map { Self.batch(["\($0)" + payload], id: identity.producerId, epoch: 0, sequence: Int32($0)) }
        for batch in batches { #expect(try await producer.produce("t", batch).error == .none) }
        try await producer.close()
        let before = try first.server.broker.producerState(topic: "t", partition: 0)
        let partitionDirectory = try first.server.broker.partitionLog(topic: "t", partition: 0).directory
        #expect(try first.server.broker.partitionLog(topic: "t", partition: 0).segmentCount > 1)
        await first.stop()
        try between(partitionDirectory)

        let second = try await InProcessBroker.start(directory: directory)
        // Equal but for the last-append times, which a scan sets to the restart time.
        let after = try second.server.broker.producerState(topic: "t", partition: 0)
        #expect(after.producers.mapValues { [Int64($0.epoch)] + $0.batches.map(\.baseOffset) }
            == before.producers.mapValues { [Int64($0.epoch)] + $0.batches.map(\.baseOffset) })
        #expect(after.producers.mapValues(\.batches) == before.producers.mapValues(\.batches))
        var again = try await ProduceStream(second.connection)
        for index in 3..<8 {
            let retry = try await again.produce("t", batches[index])
            #expect(retry.duplicate && retry.baseOffset == Int64(index), "\(retry)")
        }
        #expect(try await again.produce("t", batches[2]).error == .outOfOrderSequence)
        let next = try await again.produce("t", Self.batch(["8"], id: identity.producerId, epoch: 0, sequence: 8))
        #expect(next.error == .none && next.baseOffset == 8)
        // Ids are never reused, and the name keeps its id.
        let fresh = try await Self.initProducer(second)
        #expect(fresh.producerId > identity.producerId)
        let renewed = try await Self.initProducer(second, name: "p")
        #expect(renewed.producerId == identity.producerId && renewed.producerEpoch == 1)
        try await again.close()
        await second.stop()
    }

    @Test func stateIsRebuiltAfterARestartFromTheSnapshot() async throws {
        try await stateSurvivesARestart { directory in
            let snapshots = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".producers") }
            #expect(!snapshots.isEmpty)
        }
    }

    @Test func stateIsRebuiltFromARollSnapshotAndTheBatchesAfterIt() async throws {
        try await stateSurvivesARestart { directory in
            let snapshots = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { $0.hasSuffix(".producers") }.sorted()
            // The newest is the one written at close (offset 8, the log end); without it
            // recovery starts at the last roll and replays what follows.
            #expect(snapshots.last == "00000000000000000008.producers")
            #expect(snapshots.count == 2)
            try FileManager.default.removeItem(atPath: directory + "/" + snapshots[1])
        }
    }

    @Test func stateIsRebuiltAfterARestartByScanningWhenSnapshotsAreMissingOrCorrupt() async throws {
        try await stateSurvivesARestart { directory in
            let snapshots = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { $0.hasSuffix(".producers") }.sorted()
            #expect(snapshots.count >= 2)
            // The newest is corrupted, the older ones removed: recovery scans the whole log.
            let newest = try #require(snapshots.last)
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: directory + "/" + newest))
            for older in snapshots.dropLast() { try FileManager.default.removeItem(atPath: directory + "/" + older) }
        }
    }

    @Test func idleProducersExpire() async throws {
        let clock = ManualClock()
        let broker = try await Self.brokerWhoseProducersExpire(clock)
        let id = try await Self.initProducer(broker).producerId
        var producer = try await ProduceStream(broker.connection)
        #expect(try await producer.produce("t", Self.batch(["a"], id: id, epoch: 0, sequence: 0)).error == .none)
        clock.advance(byMilliseconds: 59_000)
        #expect(broker.server.broker.runMaintenance().producersExpired == 0)
        #expect(try await producer.produce("t", Self.batch(["b"], id: id, epoch: 0, sequence: 1)).error == .none)
        clock.advance(byMilliseconds: 60_001)
        #expect(broker.server.broker.runMaintenance().producersExpired == 1)
        #expect(try broker.server.broker.producerState(topic: "t", partition: 0).isEmpty)
        let afterExpiry = try await producer.produce("t", Self.batch(["c"], id: id, epoch: 0, sequence: 2))
        #expect(afterExpiry.error == .unknownProducerId)
        #expect(afterExpiry.errorMessage.contains("expired"), "\(afterExpiry.errorMessage)")
        #expect(try await producer.produce("t", Self.batch(["c"], id: id, epoch: 0, sequence: 0)).baseOffset == 2)
        try await producer.close()
        await broker.stopAndRemove()
    }
}
