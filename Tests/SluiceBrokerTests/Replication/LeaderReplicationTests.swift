import Foundation
import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceStorage
import SluiceTestSupport
import Testing

/// The leader's side of replication, driven in process: a `Broker` leading t/0 (replicas
/// 1, 2, 3) over a fake leadership and ISR writer, Replicate streams and produce calls made
/// by hand, times on a manual clock.
@Suite(.timeLimit(.minutes(2))) struct LeaderReplicationTests {
    typealias Leader = LeaderUnderTest

    @Test func aFollowerAtZeroGetsTheStoredBytesVerbatim() async throws {
        let leader = try Leader.start()
        for values in [["a", "b"], ["c"], ["d", "e", "f"]] {
            #expect(try await leader.produce(values).error == .none)
        }
        let stored = try leader.log.read(from: 0, maxBytes: 1 << 20).batches
        let follower = leader.follower(2)
        let answer = try await follower.ask([Leader.position(0)])
        let data = try #require(answer.partitions.first)
        #expect(answer.partitions.count == 1)
        #expect(data.error == .none && data.divergingEpoch == nil)
        #expect(data.records == stored, "the leader's stored batches, byte for byte")
        #expect(data.leaderEpoch == 3 && data.logStartOffset == 0)
        #expect(data.highWatermark == (try leader.log.highWatermark.offset))
        try await leader.stop()
    }

    @Test func maxBytesBoundsTheAnswerButSendsAtLeastOneBatch() async throws {
        let leader = try Leader.start()
        for values in [["a", "b"], ["c"]] { _ = try await leader.produce(values) }
        let follower = leader.follower(2)
        let first = try #require(try await follower.ask([Leader.position(0)], maxBytes: 1).partitions.first)
        let batch = try #require(StoredBatch(parsing: first.records))
        #expect(batch.header.baseOffset == 0 && first.records.readableBytes == batch.header.storedSize)
        let second = try #require(try await follower.ask([Leader.position(2, lastFetchedEpoch: 3)], maxBytes: 1).partitions.first)
        #expect(try #require(StoredBatch(parsing: second.records)).header.baseOffset == 2)
        try await leader.stop()
    }

    @Test func aDamagedLeaderBatchIsNeverSent() async throws {
        let leader = try Leader.start()
        _ = try await leader.produce(["first"])
        _ = try await leader.produce(["second"])
        let log = try leader.log
        let firstSize = try #require(StoredBatch(parsing: try log.read(from: 0, maxBytes: 1).batches)).header.storedSize
        // One flipped bit in the second batch's records: its records CRC no longer matches.
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: log.directory).first { $0.hasSuffix(".log") })
        let file = try FileHandle(forUpdating: URL(fileURLWithPath: log.directory + "/" + segment))
        try file.seek(toOffset: UInt64(firstSize + BatchHeader.size + 1))
        let byte = try #require(try file.read(upToCount: 1)).first ?? 0
        try file.seek(toOffset: UInt64(firstSize + BatchHeader.size + 1))
        try file.write(contentsOf: Data([byte ^ 0x01]))
        try file.close()

        let follower = leader.follower(2)
        let intact = try #require(try await follower.ask([Leader.position(0)]).partitions.first)
        #expect(StoredBatches(intact.records).map(\.header.baseOffset) == [0], "the batch before the damage goes")
        let damaged = try #require(try await follower.ask([Leader.position(1, lastFetchedEpoch: 3)]).partitions.first)
        #expect(damaged.error == .storageError && damaged.records.readableBytes == 0)
        #expect(damaged.errorMessage.contains("offset 1") && damaged.errorMessage.contains("damaged"))
        try await leader.stop()
    }

    /// A leader alone in the ISR holding one batch (offset 0), and follower 2 that fetched
    /// it: its first answer told it the high watermark, so at 1 it is caught up.
    private func caughtUpFollower() async throws -> (Leader, ReplicaCall) {
        let leader = try Leader.start(isr: [1])
        _ = try await leader.produce(["a"])
        let follower = leader.follower(2)
        _ = try await follower.ask([Leader.position(0)])
        return (leader, follower)
    }

    @Test func aCaughtUpFollowerIsHeldUntilRecordsArrive() async throws {
        let (leader, follower) = try await caughtUpFollower()
        let log = try leader.log
        let waitsBefore = log.pendingWaitCount
        follower.send([Leader.position(1, lastFetchedEpoch: 3)])
        try await eventually("the request is held on the log's watermarks") { log.pendingWaitCount >= waitsBefore + 2 }
        _ = try await leader.produce(["b"])
        let answer = try await follower.answer()
        let data = try #require(answer.partitions.first)
        #expect(try #require(StoredBatch(parsing: data.records)).header.baseOffset == 1)
        #expect(log.pendingWaitCount == waitsBefore, "answering cancels the waits")
        try await leader.stop()
    }

    @Test func maxWaitGivesAnEmptyAnswer() async throws {
        let (leader, follower) = try await caughtUpFollower()
        let empty = try await follower.ask([Leader.position(1, lastFetchedEpoch: 3)], maxWaitMs: 1)
        #expect(empty.partitions.isEmpty, "nothing new: a heartbeat")
        try await leader.stop()
    }

    @Test func aSessionFollowsAtMostItsBoundOfPartitions() async throws {
        let leader = try Leader.start()
        var limits = ReplicateLimits()
        limits.maxPartitions = 1
        let follower = leader.follower(2, limits: limits)
        var other = Leader.position(0)
        other.partition = 1
        let answer = try await follower.ask([Leader.position(0), other], maxWaitMs: 1)
        #expect(answer.partitions.map(\.partition).sorted() == [0, 1])
        #expect(answer.partitions.first { $0.partition == 1 }?.error == .throttled)
        #expect(answer.partitions.first { $0.partition == 0 }?.error == ErrorCode.none)
        try await leader.stop()
    }

    @Test func aPositionOutsideTheLeadersLogIsOutOfRange() async throws {
        let leader = try Leader.start()
        _ = try await leader.produce(["a"])
        let follower = leader.follower(2)
        let answer = try #require(try await follower.ask([Leader.position(5)]).partitions.first)
        #expect(answer.error == .offsetOutOfRange && answer.logStartOffset == 0 && answer.records.readableBytes == 0)
        try await leader.stop()
    }

    @Test func aLongerTailOfAnOlderEpochDiverges() async throws {
        let leader = try Leader.start(isr: [1], epoch: 1)
        _ = try await leader.produce(["a", "b"])  // offsets 0-1 at epoch 1
        leader.leadership.set(Leader.topic, 0, ReplicaSet(replicas: [1, 2, 3], leader: 1, leaderEpoch: 3, isr: [1]))
        _ = try await leader.produce(["c"])  // offset 2 at epoch 3
        let follower = leader.follower(2)
        // The follower took offsets 2-4 at epoch 2 from a leader that since lost them.
        let answer = try await follower.ask([Leader.position(5, lastFetchedEpoch: 2)])
        let data = try #require(answer.partitions.first)
        #expect(data.divergingEpoch == DivergingEpoch(epoch: 1, endOffset: 2))
        #expect(data.records.readableBytes == 0 && data.error == .none)
        // The same epoch, but past the leader's end of it.
        let ahead = try #require(try await follower.ask([Leader.position(4, lastFetchedEpoch: 3)]).partitions.first)
        #expect(ahead.divergingEpoch == DivergingEpoch(epoch: 3, endOffset: 3))
        try await leader.stop()
    }

    @Test func epochsAndMembershipAreChecked() async throws {
        let leader = try Leader.start()
        let follower = leader.follower(2)
        let older = try #require(try await follower.ask([Leader.position(0, currentEpoch: 2)]).partitions.first)
        #expect(older.error == .fencedLeaderEpoch)
        let newer = try #require(try await follower.ask([Leader.position(0, currentEpoch: 4)]).partitions.first)
        #expect(newer.error == .unknownLeaderEpoch)
        let stranger = leader.follower(9)
        #expect(try await stranger.ask([Leader.position(0)]).partitions.map(\.error) == [.notAReplica])
        let nameless = try await follower.ask([ReplicaPosition(topic: "", partition: 0, currentLeaderEpoch: 3)])
        #expect(nameless.partitions.map(\.error) == [.unknownTopic])
        let absent = try await follower.ask([ReplicaPosition(topic: Leader.topic, partition: 7, currentLeaderEpoch: 3)])
        #expect(absent.partitions.map(\.error) == [.unknownPartition])
        let anonymous = leader.follower(0)
        #expect(try await anonymous.ask([Leader.position(0)]).partitions.map(\.error) == [.notAReplica])
        leader.leadership.set(Leader.topic, 0, ReplicaSet(replicas: [1, 2, 3], leader: 3, leaderEpoch: 4, isr: [3, 2]))
        let moved = try #require(try await follower.ask([Leader.position(0, currentEpoch: 4)]).partitions.first)
        #expect(moved.error == .notLeader && moved.errorMessage.contains("broker 3"))
        #expect(moved.highWatermark == 0 && moved.records.readableBytes == 0, "NOT_LEADER carries nothing else")
        try await leader.stop()
    }

    @Test func theHighWatermarkIsTheSmallestEndInTheISR() async throws {
        let leader = try Leader.start()
        _ = try await leader.produce(Array(repeating: "x", count: 10))
        let log = try leader.log
        let two = leader.follower(2)
        let three = leader.follower(3)
        _ = try await two.ask([Leader.position(10, lastFetchedEpoch: 3)], maxWaitMs: 1)
        #expect(log.highWatermark.offset == 0, "follower 3 has not reported: the floor holds")
        _ = try await three.ask([Leader.position(0)], maxWaitMs: 1)
        #expect(log.highWatermark.offset == 0)
        leader.leadership.setISR(Leader.topic, 0, [1, 2])
        await leader.broker.replicaSetsChanged()
        #expect(log.highWatermark.offset == 10, "the ISR without 3: follower 2's end")
        leader.leadership.setISR(Leader.topic, 0, [1])
        _ = try await leader.produce(["y"])
        await leader.broker.replicaSetsChanged()
        #expect(log.highWatermark.offset == 11, "the ISR is the leader alone: its own end")
        try await leader.stop()
    }

    @Test func aRunningBrokerFollowsTheLeadershipsRings() async throws {
        let leader = try Leader.start(isr: [1, 2])
        leader.broker.startMaintenance()
        _ = try await leader.produce(["a", "b", "c"])
        let log = try leader.log
        #expect(log.highWatermark.offset == 0, "follower 2 has not reported")
        leader.leadership.setISR(Leader.topic, 0, [1])
        try await eventually("the ISR of the leader alone frees the high watermark") { log.highWatermark.offset == 3 }
        try await leader.stop()
    }

    @Test func acksAllIsAnsweredOnceEveryInSyncFollowerHasTheBatch() async throws {
        let leader = try Leader.start(isr: [1, 2], minInsync: 2)
        // Nobody reports: the batch is appended but never acknowledged.
        let unreplicated = try await leader.produce(["lost?"], acks: .all, timeoutMs: 200)
        #expect(unreplicated.error == .requestTimedOut)
        let follower = leader.follower(2)
        let produce = ProduceCall(leader.broker)
        produce.send(ProduceRequest(topic: Leader.topic, partition: 0, acks: .all, batch: TestBatches.batch(["a"])))
        let log = try leader.log
        try await eventually("the batch is appended") { log.logEndOffset == 2 }
        let fetched = try #require(try await follower.ask([Leader.position(0)]).partitions.first)
        #expect(StoredBatches(fetched.records).map(\.header.baseOffset) == [0, 1])
        #expect(log.highWatermark.offset == 0, "the follower has not reported the batch yet")
        _ = try await follower.ask([Leader.position(2, lastFetchedEpoch: 3)], maxWaitMs: 1)
        let answer = try await produce.next()
        #expect(answer.error == .none && answer.baseOffset == 1)
        try await produce.close()
        try await leader.stop()
    }

    @Test func underFsyncNeverAcksAllAsksNoSync() async throws {
        // As Kafka's acks=all: the ISR's copies are the promise; nothing is synced for it.
        let leader = try Leader.start(isr: [1, 2], fsync: .never)
        let produce = ProduceCall(leader.broker)
        produce.send(ProduceRequest(topic: Leader.topic, partition: 0, acks: .all, batch: TestBatches.batch(["a", "b"])))
        let log = try leader.log
        try await eventually("the batch is appended") { log.logEndOffset == 2 }
        _ = try await leader.follower(2).ask([Leader.position(2, lastFetchedEpoch: 3)], maxWaitMs: 1)
        let answer = try await produce.next()
        #expect(answer.error == .none && answer.baseOffset == 0)
        #expect(log.watermarks.durableEnd.offset == 0, "answered without the leader syncing")
        try await produce.close()
        try await leader.stop()
    }

    @Test func aBatchArrivingWhileLeadershipMovesIsNotAppended() async throws {
        // The verdict says "leads at epoch 3", the replicas read a moment later say
        // epoch 4 (or nothing): appending would leave acks=all with no ISR to wait for,
        // and it used to fall back to the leader's own sync, acknowledging what a
        // failover then lost.
        let leader = try Leader.start(isr: [1, 2], minInsync: 2)
        let log = try leader.log
        leader.leadership.answerReplicaSet(Leader.topic, 0, with: ReplicaSet(replicas: [1, 2, 3], leader: 2, leaderEpoch: 4, isr: [2, 3]))
        let moving = try await leader.produce(["a"], acks: .all)
        #expect(moving.error == .notLeader && moving.errorMessage.contains("changing"), "\(moving)")
        leader.leadership.answerReplicaSet(Leader.topic, 0, with: nil)
        #expect(try await leader.produce(["a"], acks: .all).error == .notLeader)
        leader.leadership.forget(Leader.topic, 0)
        #expect(try await leader.produce(["a"], acks: .all).error == .notLeader, "a replicated copy the metadata does not know")
        #expect(log.logEndOffset == 0, "nothing appended")
        try await leader.stop()
    }

    @Test func anAnswerForABatchAnInSyncReplicaDoesNotHoldIsSaidLoudly() async throws {
        let errors = ErrorLines()
        let leader = try Leader.start(isr: [1, 2], errors: errors)
        let log = try leader.log
        let produce = ProduceCall(leader.broker)
        produce.send(ProduceRequest(topic: Leader.topic, partition: 0, acks: .all, batch: TestBatches.batch(["a", "b"])))
        try await eventually("the batch is appended") { log.logEndOffset == 2 }
        // Follower 2 holds one record; a floor set past it behind the leader's back breaks
        // the invariant the answer rests on.
        _ = try await leader.follower(2).ask([Leader.position(1, lastFetchedEpoch: 3)], maxWaitMs: 1)
        #expect(log.highWatermark.offset == 1)
        log.setReplicaFloor(2)
        let answer = try await produce.next()
        #expect(answer.error == .none)
        let said = errors.all
        #expect(said.contains { $0.contains("acks=all answered for a batch an in-sync replica does not hold") && $0.contains("replica=2") }, "\(said)")
        try await produce.close()
        try await leader.stop()
    }

    @Test func acksAllIsRefusedWhenTheISRIsBelowTheMinimum() async throws {
        let leader = try Leader.start(isr: [1], minInsync: 2)
        let refused = try await leader.produce(["a"], acks: .all)
        #expect(refused.error == .notEnoughReplicas)
        #expect(try leader.log.logEndOffset == 0, "nothing appended")
        #expect(try await leader.produce(["a"], acks: .leader).error == .none, "acks=leader does not need the ISR")
        try await leader.stop()
    }

    @Test func underFsyncAlwaysTheFollowersDurableEndsCount() async throws {
        let leader = try Leader.start(isr: [1, 2], fsync: .always)
        _ = try await leader.produce(["a"], acks: .durable)
        let log = try leader.log
        let two = leader.follower(2)
        var position = Leader.position(1, lastFetchedEpoch: 3)
        position.durableEndOffset = 0
        _ = try await two.ask([position], maxWaitMs: 1)
        #expect(log.highWatermark.offset == 0, "follower 2 holds offset 0, but not durably")
        position.durableEndOffset = 1
        _ = try await two.ask([position], maxWaitMs: 1)
        #expect(log.highWatermark.offset == 1)
        try await leader.stop()
    }

    @Test func aRequestListingNoPartitionStillReportsTheFollowersPosition() async throws {
        let leader = try Leader.start(isr: [1, 2], lagMaxMs: 10_000)
        _ = try await leader.produce(["a"])
        let two = leader.follower(2)
        _ = try await two.ask([Leader.position(1, lastFetchedEpoch: 3)], maxWaitMs: 1)
        leader.clock.advance(byMilliseconds: 10_001)
        // Nothing moved, so an incremental request lists nothing: still caught up, now.
        _ = try await two.ask([], maxWaitMs: 1)
        await leader.broker.checkInSyncReplicas()
        #expect(leader.changer.changes.isEmpty)
        try await leader.stop()
    }

    /// With ISR 1, 2 and min.insync.replicas 2, `change` happens while an acks=all batch
    /// (offset 0) waits for follower 2, which never reports: the batch's answer.
    private func acksAllAnswer(after change: (Leader) async -> Void) async throws -> ProduceResponse {
        let leader = try Leader.start(isr: [1, 2], minInsync: 2)
        let produce = ProduceCall(leader.broker)
        produce.send(ProduceRequest(topic: Leader.topic, partition: 0, acks: .all, batch: TestBatches.batch(["a"])))
        let log = try leader.log
        // Appended and its wait registered (the broker appends first, then registers): a
        // change that came between the two would find no wait to resolve.
        try await eventually("the batch is appended and waits") { log.logEndOffset == 1 && log.pendingWaitCount >= 1 }
        await change(leader)
        await leader.broker.replicaSetsChanged()
        let answer = try await produce.next()
        try await produce.close()
        try await leader.stop()
        return answer
    }

    @Test func acksAllAfterTheISRShrankBelowTheMinimumSaysSo() async throws {
        // Follower 2 leaves the ISR: the leader alone holds the batch, which frees the high
        // watermark, but one replica is fewer than the topic asks.
        let answer = try await acksAllAnswer { $0.leadership.setISR(Leader.topic, 0, [1]) }
        #expect(answer.error == .notEnoughReplicasAfterAppend && answer.baseOffset == 0)
    }

    @Test func acksAllFailsWhenItsBatchIsTruncatedAway() async throws {
        // The leader's log is cut below the batch (a new leader's divergence, followed).
        let answer = try await acksAllAnswer { leader in _ = try? leader.log.truncate(to: 0) }
        #expect(answer.error == .notLeader)
    }

    @Test func acksAllFailsWhenLeadershipMoves() async throws {
        let answer = try await acksAllAnswer {
            $0.leadership.set(Leader.topic, 0, ReplicaSet(replicas: [1, 2, 3], leader: 2, leaderEpoch: 4, isr: [2]))
        }
        #expect(answer.error == .notLeader)
    }

    @Test func aFollowerLaggingPastTheBoundLeavesTheISR() async throws {
        let leader = try Leader.start(lagMaxMs: 10_000)
        _ = try await leader.produce(["a"])
        let two = leader.follower(2)
        _ = try await two.ask([Leader.position(1, lastFetchedEpoch: 3)], maxWaitMs: 1)
        leader.clock.advance(byMilliseconds: 10_000)
        await leader.broker.checkInSyncReplicas()
        #expect(leader.changer.changes.isEmpty, "at the bound, not past it")
        leader.clock.advance(byMilliseconds: 1)
        // Follower 2 reports caught up again; follower 3 never reported.
        _ = try await two.ask([Leader.position(1, lastFetchedEpoch: 3)], maxWaitMs: 1)
        await leader.broker.checkInSyncReplicas()
        #expect(leader.changer.changes == [[1, 2]])
        #expect(leader.leadership.replicaSet(topic: Leader.topic, partition: 0)?.isr == [1, 2])
        try await leader.stop()
    }

    @Test func anISRChangeIsAskedOnceAtATimeAndAgainWhenItNeverShows() async throws {
        for outcome in [ISRChangeOutcome.written, .stale, .failed("etcd unreachable")] {
            let leader = try Leader.start(lagMaxMs: 10_000, changeOutcome: outcome, showsWrites: false)
            // Leading starts now; followers 2 and 3 never report.
            await leader.broker.checkInSyncReplicas()
            leader.clock.advance(byMilliseconds: 10_001)
            await leader.broker.checkInSyncReplicas()
            await leader.broker.checkInSyncReplicas()
            // Written but not shown: one outstanding change; refused: the next check asks again.
            #expect(leader.changer.changes == (outcome == .written ? [[1]] : [[1], [1]]), "\(outcome)")
            leader.clock.advance(byMilliseconds: 10_001)
            await leader.broker.checkInSyncReplicas()
            #expect(leader.changer.changes.count == (outcome == .written ? 2 : 3), "given up after the lag bound: \(outcome)")
            try await leader.stop()
        }
    }

    @Test func aCaughtUpFollowerJoinsTheISR() async throws {
        let leader = try Leader.start(isr: [1])
        _ = try await leader.produce(["a", "b"])
        let three = leader.follower(3)
        _ = try await three.ask([Leader.position(0)], maxWaitMs: 1)
        await leader.broker.checkInSyncReplicas()
        #expect(leader.changer.changes.isEmpty, "behind the high watermark: not yet")
        _ = try await three.ask([Leader.position(2, lastFetchedEpoch: 3)], maxWaitMs: 1)
        await leader.broker.checkInSyncReplicas()
        #expect(leader.changer.changes == [[1, 3]])
        try await leader.stop()
    }

    @Test func aSuspectFollowerIsShrunkAndNeverExpanded() async throws {
        let leader = try Leader.start()
        _ = try await leader.produce(["a"])
        let two = leader.follower(2)
        _ = try await two.ask([Leader.position(1, lastFetchedEpoch: 3)], maxWaitMs: 1)
        let three = leader.follower(3)
        _ = try await three.ask([Leader.position(1, lastFetchedEpoch: 3, suspect: true)], maxWaitMs: 1)
        await leader.broker.checkInSyncReplicas()
        #expect(leader.changer.changes == [[1, 2]])
        // Caught up, but still suspect: stays out.
        _ = try await three.ask([Leader.position(1, lastFetchedEpoch: 3, suspect: true)], maxWaitMs: 1)
        await leader.broker.checkInSyncReplicas()
        #expect(leader.changer.changes == [[1, 2]])
        // Scrubbed or refetched: back in.
        _ = try await three.ask([Leader.position(1, lastFetchedEpoch: 3)], maxWaitMs: 1)
        await leader.broker.checkInSyncReplicas()
        #expect(leader.changer.changes == [[1, 2], [1, 2, 3]])
        try await leader.stop()
    }
}
