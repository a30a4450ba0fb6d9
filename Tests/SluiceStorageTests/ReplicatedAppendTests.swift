import NIOCore
import SluiceStorage
import SluiceTestSupport
import Testing

/// A follower's verbatim appends (`PartitionLog.appendReplicated`).
@Suite(.timeLimit(.minutes(2))) struct ReplicatedAppendTests {
    /// Batches read from a leader's log and appended to a follower's end up as the same
    /// files, byte for byte: the same segments (rolled at the same batches), the same
    /// indexes, headers with their CRCs as the leader sealed them.
    @Test func aReplicaOfALeadersBatchesHasByteIdenticalSegmentFiles() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let leader = try PartitionLog.open(directory: directory.path("leader"), config: smallConfig(segmentBytes: 2_000, fsync: .never))
        let follower = try PartitionLog.open(
            directory: directory.path("follower"), config: replicatedConfig(segmentBytes: 2_000))
        var random = SeededRandom(seed: 15)
        var epoch: Int32 = 0
        for index in 0..<120 {
            if random.next() % 17 == 0 { epoch += Int32(1 + random.next() % 2) }
            let size = 1 + Int(random.next() % 150)
            _ = try leader.appendBuffered(makeBatch(pattern(index, size), count: Int32(1 + random.next() % 4)), leaderEpoch: epoch)
        }
        #expect(leader.segmentCount > 3)
        try replicate(from: leader, to: follower, maxBytes: 500)
        #expect(follower.logEndOffset == leader.logEndOffset)
        #expect(follower.segmentBaseOffsets == leader.segmentBaseOffsets)
        #expect(follower.latestLeaderEpoch == leader.latestLeaderEpoch)
        try await leader.close()
        try await follower.close()
        let leaderFiles = try segmentFiles(in: directory.path("leader"))
        #expect(leaderFiles.count == 3 * leader.segmentCount)
        #expect(try segmentFiles(in: directory.path("follower")) == leaderFiles)

        // And it opens again after the close, every batch intact.
        let reopened = try PartitionLog.open(directory: directory.path("follower"), config: replicatedConfig(segmentBytes: 2_000))
        #expect(try readAllBatches(reopened).count == 120)
        try await reopened.close()
    }

    enum Damage: CaseIterable {
        case headerCRC, recordsCRC, gap, olderEpoch, truncated
    }

    /// Every check refuses the batch that fails it, and nothing from it on is stored;
    /// the batches before it are.
    @Test(arguments: Damage.allCases) func aBatchThatFailsACheckIsRefusedWithEverythingAfterIt(_ damage: Damage) async throws {
        let (directory, log) = try temporaryLog(replicatedConfig())
        defer { directory.remove() }
        _ = try log.appendReplicated(storedBatch(baseOffset: 0, leaderEpoch: 2, pattern(0, 40)))
        let good = [
            storedBatch(baseOffset: 1, leaderEpoch: 2, pattern(1, 40), count: 2),
            storedBatch(baseOffset: 3, leaderEpoch: 3, pattern(2, 40)),
        ]
        let bad: ByteBuffer
        let expected: LogError
        switch damage {
        case .headerCRC:
            bad = flippingByte(storedBatch(baseOffset: 4, leaderEpoch: 3, pattern(3, 40)), at: BatchHeader.firstTimestampOffset)
            expected = .invalidBatch(.headerChecksumMismatch)
        case .recordsCRC:
            bad = flippingByte(storedBatch(baseOffset: 4, leaderEpoch: 3, pattern(3, 40)), at: BatchHeader.size + 7)
            expected = .invalidBatch(.recordsChecksumMismatch)
        case .gap:
            bad = storedBatch(baseOffset: 5, leaderEpoch: 3, pattern(3, 40))
            expected = .invalidBatch(.invalidField("base offset 5 does not continue the log, which ends at 4"))
        case .olderEpoch:
            bad = storedBatch(baseOffset: 4, leaderEpoch: 1, pattern(3, 40))
            expected = .invalidBatch(.invalidField("leader epoch 1 is older than the log's latest, 3"))
        case .truncated:
            bad = storedBatch(baseOffset: 4, leaderEpoch: 3, pattern(3, 40)).getSlice(at: 0, length: BatchHeader.size + 39)!
            expected = .invalidBatch(.truncated)
        }
        let after = storedBatch(baseOffset: 4, leaderEpoch: 3, pattern(4, 40))
        // A cut batch can only be the last: bytes after it would be read as its records.
        let rest = [bad] + (damage == .truncated ? [] : [after])
        let input = concatenated(good + rest)
        let outcome = log.appendReplicatedReporting(input)
        #expect(outcome.stoppedBy == expected)
        #expect(outcome.stored.firstOffset == 1 && outcome.stored.lastOffset == 3)
        #expect(outcome.stored.headers.map(\.baseOffset) == [1, 3])
        #expect(log.logEndOffset == 4 && log.latestLeaderEpoch == 3)
        #expect(try readAllBatches(log).map(\.header.baseOffset) == [0, 1, 3])
        // The throwing form refuses the same way, storing nothing more.
        #expect(throws: expected) { try log.appendReplicated(concatenated(rest)) }
        #expect(log.logEndOffset == 4)
        try await log.close()
    }

    @Test func theFirstBatchMustStartAtTheLogEndAndNoBatchMayExceedTheLimit() async throws {
        var config = replicatedConfig()
        config.maxBatchBytes = 200
        let (directory, log) = try temporaryLog(config)
        defer { directory.remove() }
        #expect(throws: LogError.invalidBatch(.invalidField("base offset 1 does not continue the log, which ends at 0"))) {
            try log.appendReplicated(storedBatch(baseOffset: 1, leaderEpoch: 0, pattern(0, 10)))
        }
        #expect(throws: LogError.batchTooLarge(bytes: BatchHeader.size + 200, limit: 200)) {
            try log.appendReplicated(storedBatch(baseOffset: 0, leaderEpoch: 0, pattern(0, 200)))
        }
        let empty = try log.appendReplicated(ByteBuffer())
        #expect(empty.headers.isEmpty && empty.firstOffset == 0 && log.logEndOffset == 0)
        try await log.close()
    }

    /// Under `always` a replicated append asks for its sync like any other: the durable
    /// end reaches it though nobody asked (under `always` a wait on the durable end asks
    /// for no sync of its own: without the append's request this wait never resolves).
    @Test func underAlwaysAReplicatedAppendIsSyncedWithoutAWait() async throws {
        let (directory, log) = try temporaryLog(replicatedConfig(fsync: .always))
        defer { directory.remove() }
        _ = try log.appendReplicated(storedBatch(baseOffset: 0, leaderEpoch: 0, pattern(0, 10)))
        #expect(await log.wait(for: DurableEndOffset.self, toCover: 0).outcome() == .reached)
        #expect(log.durableEndOffset == 1)
        try await log.close()
    }
}
