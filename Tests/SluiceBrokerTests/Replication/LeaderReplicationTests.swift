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
        let follower = ReplicaCall(leader.broker, replica: 2)
        let answer = try await follower.ask([Leader.position(0)])
        let data = try #require(answer.partitions.first)
        #expect(answer.partitions.count == 1)
        #expect(data.error == .none && data.divergingEpoch == nil)
        #expect(data.records == stored, "the leader's stored batches, byte for byte")
        #expect(data.leaderEpoch == 3 && data.logStartOffset == 0)
        #expect(data.highWatermark == (try leader.log.highWatermark.offset))
        try await follower.close()
        await leader.stop()
    }

    @Test func maxBytesBoundsTheAnswerButSendsAtLeastOneBatch() async throws {
        let leader = try Leader.start()
        for values in [["a", "b"], ["c"]] { _ = try await leader.produce(values) }
        let follower = ReplicaCall(leader.broker, replica: 2)
        let first = try #require(try await follower.ask([Leader.position(0)], maxBytes: 1).partitions.first)
        let batch = try #require(StoredBatch(parsing: first.records))
        #expect(batch.header.baseOffset == 0 && first.records.readableBytes == batch.header.storedSize)
        let second = try #require(try await follower.ask([Leader.position(2, lastFetchedEpoch: 3)], maxBytes: 1).partitions.first)
        #expect(try #require(StoredBatch(parsing: second.records)).header.baseOffset == 2)
        try await follower.close()
        await leader.stop()
    }

    @Test func aCaughtUpFollowerIsHeldUntilRecordsArrive() async throws {
        let leader = try Leader.start(isr: [1])
        _ = try await leader.produce(["a"])
        let follower = ReplicaCall(leader.broker, replica: 2)
        // The first answer tells the high watermark; the follower is then caught up.
        _ = try await follower.ask([Leader.position(0)])
        let log = try leader.log
        let waitsBefore = log.pendingWaitCount
        follower.send([Leader.position(1, lastFetchedEpoch: 3)])
        try await eventually("the request is held on the log's watermarks") { log.pendingWaitCount >= waitsBefore + 2 }
        _ = try await leader.produce(["b"])
        let answer = try await follower.answer()
        let data = try #require(answer.partitions.first)
        #expect(try #require(StoredBatch(parsing: data.records)).header.baseOffset == 1)
        #expect(log.pendingWaitCount == waitsBefore, "answering cancels the waits")
        try await follower.close()
        await leader.stop()
    }

    @Test func maxWaitGivesAnEmptyAnswer() async throws {
        let leader = try Leader.start(isr: [1])
        _ = try await leader.produce(["a"])
        let follower = ReplicaCall(leader.broker, replica: 2)
        _ = try await follower.ask([Leader.position(0)])
        let empty = try await follower.ask([Leader.position(1, lastFetchedEpoch: 3)], maxWaitMs: 1)
        #expect(empty.partitions.isEmpty, "nothing new: a heartbeat")
        try await follower.close()
        await leader.stop()
    }

    @Test func aLongerTailOfAnOlderEpochDiverges() async throws {
        let leader = try Leader.start(isr: [1], epoch: 1)
        _ = try await leader.produce(["a", "b"])  // offsets 0-1 at epoch 1
        leader.leadership.set(Leader.topic, 0, ReplicaSet(replicas: [1, 2, 3], leader: 1, leaderEpoch: 3, isr: [1]))
        _ = try await leader.produce(["c"])  // offset 2 at epoch 3
        let follower = ReplicaCall(leader.broker, replica: 2)
        // The follower took offsets 2-4 at epoch 2 from a leader that since lost them.
        let answer = try await follower.ask([Leader.position(5, lastFetchedEpoch: 2)])
        let data = try #require(answer.partitions.first)
        #expect(data.divergingEpoch == DivergingEpoch(epoch: 1, endOffset: 2))
        #expect(data.records.readableBytes == 0 && data.error == .none)
        // The same epoch, but past the leader's end of it.
        let ahead = try #require(try await follower.ask([Leader.position(4, lastFetchedEpoch: 3)]).partitions.first)
        #expect(ahead.divergingEpoch == DivergingEpoch(epoch: 3, endOffset: 3))
        try await follower.close()
        await leader.stop()
    }

    @Test func epochsAndMembershipAreChecked() async throws {
        let leader = try Leader.start()
        let follower = ReplicaCall(leader.broker, replica: 2)
        let older = try #require(try await follower.ask([Leader.position(0, currentEpoch: 2)]).partitions.first)
        #expect(older.error == .fencedLeaderEpoch)
        let newer = try #require(try await follower.ask([Leader.position(0, currentEpoch: 4)]).partitions.first)
        #expect(newer.error == .unknownLeaderEpoch)
        let stranger = ReplicaCall(leader.broker, replica: 9)
        #expect(try await stranger.ask([Leader.position(0)]).partitions.map(\.error) == [.notAReplica])
        let nameless = try await follower.ask([ReplicaPosition(topic: "", partition: 0, currentLeaderEpoch: 3)])
        #expect(nameless.partitions.map(\.error) == [.unknownTopic])
        leader.leadership.set(Leader.topic, 0, ReplicaSet(replicas: [1, 2, 3], leader: 3, leaderEpoch: 4, isr: [3, 2]))
        let moved = try #require(try await follower.ask([Leader.position(0, currentEpoch: 4)]).partitions.first)
        #expect(moved.error == .notLeader && moved.errorMessage.contains("broker 3"))
        #expect(moved.highWatermark == 0 && moved.records.readableBytes == 0, "NOT_LEADER carries nothing else")
        try await stranger.close()
        try await follower.close()
        await leader.stop()
    }

    @Test func theHighWatermarkIsTheSmallestEndInTheISR() async throws {
        let leader = try Leader.start()
        _ = try await leader.produce(Array(repeating: "x", count: 10))
        let log = try leader.log
        let two = ReplicaCall(leader.broker, replica: 2)
        let three = ReplicaCall(leader.broker, replica: 3)
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
        try await two.close()
        try await three.close()
        await leader.stop()
    }

    @Test func acksAllIsAnsweredOnceEveryInSyncFollowerHasTheBatch() async throws {
        let leader = try Leader.start(isr: [1, 2], minInsync: 2)
        // Nobody reports: the batch is appended but never acknowledged.
        let unreplicated = try await leader.produce(["lost?"], acks: .all, timeoutMs: 200)
        #expect(unreplicated.error == .requestTimedOut)
        let follower = ReplicaCall(leader.broker, replica: 2)
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
        try await follower.close()
        await leader.stop()
    }

    @Test func acksAllIsRefusedWhenTheISRIsBelowTheMinimum() async throws {
        let leader = try Leader.start(isr: [1], minInsync: 2)
        let refused = try await leader.produce(["a"], acks: .all)
        #expect(refused.error == .notEnoughReplicas)
        #expect(try leader.log.logEndOffset == 0, "nothing appended")
        #expect(try await leader.produce(["a"], acks: .leader).error == .none, "acks=leader does not need the ISR")
        await leader.stop()
    }

    @Test func acksAllFailsWhenLeadershipMoves() async throws {
        let leader = try Leader.start(isr: [1, 2], minInsync: 2)
        let produce = ProduceCall(leader.broker)
        produce.send(ProduceRequest(topic: Leader.topic, partition: 0, acks: .all, batch: TestBatches.batch(["a"])))
        let log = try leader.log
        try await eventually("the batch is appended") { log.logEndOffset == 1 }
        leader.leadership.set(Leader.topic, 0, ReplicaSet(replicas: [1, 2, 3], leader: 2, leaderEpoch: 4, isr: [2]))
        await leader.broker.replicaSetsChanged()
        let answer = try await produce.next()
        #expect(answer.error == .notLeader)
        try await produce.close()
        await leader.stop()
    }

    @Test func aFollowerLaggingPastTheBoundLeavesTheISR() async throws {
        let leader = try Leader.start(lagMaxMs: 10_000)
        _ = try await leader.produce(["a"])
        let two = ReplicaCall(leader.broker, replica: 2)
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
        try await two.close()
        await leader.stop()
    }

    @Test func aCaughtUpFollowerJoinsTheISR() async throws {
        let leader = try Leader.start(isr: [1])
        _ = try await leader.produce(["a", "b"])
        let three = ReplicaCall(leader.broker, replica: 3)
        _ = try await three.ask([Leader.position(0)], maxWaitMs: 1)
        await leader.broker.checkInSyncReplicas()
        #expect(leader.changer.changes.isEmpty, "behind the high watermark: not yet")
        _ = try await three.ask([Leader.position(2, lastFetchedEpoch: 3)], maxWaitMs: 1)
        await leader.broker.checkInSyncReplicas()
        #expect(leader.changer.changes == [[1, 3]])
        try await three.close()
        await leader.stop()
    }

    @Test func aSuspectFollowerIsShrunkAndNeverExpanded() async throws {
        let leader = try Leader.start()
        _ = try await leader.produce(["a"])
        let two = ReplicaCall(leader.broker, replica: 2)
        _ = try await two.ask([Leader.position(1, lastFetchedEpoch: 3)], maxWaitMs: 1)
        let three = ReplicaCall(leader.broker, replica: 3)
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
        try await two.close()
        try await three.close()
        await leader.stop()
    }
}
