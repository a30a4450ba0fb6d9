import Logging
import NIOCore
@testable import SluiceBroker
import SluiceChecksum
import SluiceStorage
import SluiceTestSupport
import Testing

/// A follower's writes to its copy of a partition (`Partition+Replica.swift`).
@Suite(.timeLimit(.minutes(2))) struct ReplicaPartitionTests {
    /// A broker in a temporary directory with topics "leader" and "follower" of one
    /// partition each (segments of 1 KiB, so a few batches roll them).
    static func withPartitions(
        replicated: Bool = true, _ body: (_ broker: Broker, _ leader: Partition, _ follower: Partition) async throws -> Void
    ) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var storage = StorageSettings()
        storage.fsyncPolicy = .never
        storage.maintenanceInterval = nil
        storage.replicated = replicated
        let broker = try Broker(
            directory: try DataDirectory.open(directory.path), storage: storage, logger: Logger(label: "replica-test"))
        for name in ["leader", "follower"] {
            _ = try broker.createTopic(named: name, partitions: 1, configs: ["segment.bytes": "1024"])
        }
        do {
            try await body(broker, try broker.partition(topic: "leader", index: 0), try broker.partition(topic: "follower", index: 0))
        } catch {
            await broker.close()
            throw error
        }
        await broker.close()
    }

    /// An idempotent producer's batch of `count` records from `sequence`.
    static func batch(producer: Int64, sequence: Int32, count: Int32 = 2, size: Int = 100) -> NewBatch {
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: Int(sequence) &* 13 &+ $0) }
        return NewBatch(
            recordCount: count, firstTimestamp: 1_000, maxTimestamp: 1_000, producerId: producer, producerEpoch: 0,
            baseSequence: sequence, recordsCRC: CRC32C.checksum(payload), records: ByteBuffer(bytes: payload))
    }

    /// Copies the leader partition's log into the follower's with `appendReplicated`.
    static func replicate(_ leader: Partition, into follower: Partition, maxBytes: Int = 400) throws {
        while follower.log.logEndOffset < leader.log.logEndOffset {
            let read = try leader.log.read(from: follower.log.logEndOffset, maxBytes: maxBytes)
            _ = try follower.appendReplicated(read.batches, nowMs: 5_000)
        }
    }

    /// The producers' sequences and offsets, without the times (the follower's are its own).
    static func sequences(_ state: ProducerState) -> [Int64: [ProducerState.AppendedBatch]] {
        state.producers.mapValues(\.batches)
    }

    @Test func theBrokersLogsAreReplicasExactlyWhenItsStorageSettingsSaySo() async throws {
        try await Self.withPartitions(replicated: true) { _, leader, _ in
            #expect(leader.log.config.replicated)
            _ = try leader.append(Self.batch(producer: 1, sequence: 0), nowMs: 1, leaderEpoch: 0)
            // The replication layer has set no floor: nothing is readable yet.
            #expect(leader.highWatermark == 0)
            leader.log.setReplicaFloor(nil)
            #expect(leader.highWatermark == 2)
        }
        try await Self.withPartitions(replicated: false) { _, leader, _ in
            #expect(!leader.log.config.replicated)
            _ = try leader.append(Self.batch(producer: 1, sequence: 0), nowMs: 1, leaderEpoch: 0)
            #expect(leader.highWatermark == 2)
        }
    }

    /// The follower's producer state is the leader's, so that once it leads it answers a
    /// retry of a batch it copied as a duplicate; and it snapshots at each roll as the
    /// leader does.
    @Test func aReplicatedAppendRecordsTheProducersAndSnapshotsAtRolls() async throws {
        try await Self.withPartitions { _, leader, follower in
            for sequence in stride(from: Int32(0), to: 30, by: 2) {
                for producer in [Int64(1), 2] {
                    _ = try leader.append(Self.batch(producer: producer, sequence: sequence), nowMs: 1, leaderEpoch: 0)
                }
            }
            try Self.replicate(leader, into: follower)
            #expect(follower.log.segmentBaseOffsets == leader.log.segmentBaseOffsets)
            #expect(follower.log.segmentCount > 3)
            #expect(Self.sequences(follower.producerState) == Self.sequences(leader.producerState))
            let retry = Self.batch(producer: 2, sequence: 28)
            let verdict = follower.producerState.check(
                producerId: 2, epoch: 0, baseSequence: retry.baseSequence, recordCount: retry.recordCount)
            guard case .duplicate(let original) = verdict else {
                Issue.record("a retry of a copied batch is \(verdict)")
                return
            }
            #expect(original.lastOffset == leader.log.logEndOffset - 1)
            // A snapshot at each roll, as of the new segment's base offset, like the leader's.
            #expect(try follower.log.producerSnapshotOffsets() == (try leader.log.producerSnapshotOffsets()))
            #expect(try follower.log.producerSnapshotOffsets().last == follower.log.activeSegmentBaseOffset)
        }
    }

    /// Batches stored before a refused one count for the producer state too.
    @Test func theBatchesBeforeARefusedOneAreRecorded() async throws {
        try await Self.withPartitions { _, leader, follower in
            for sequence in stride(from: Int32(0), to: 6, by: 2) {
                _ = try leader.append(Self.batch(producer: 3, sequence: sequence, size: 10), nowMs: 1, leaderEpoch: 0)
            }
            let read = try leader.log.read(from: 0, maxBytes: 1 << 20)
            var damaged = read.batches
            let third = 2 * (BatchHeader.size + 10)
            damaged.setInteger(damaged.getInteger(at: third + BatchHeader.size, as: UInt8.self)! ^ 0x80, at: third + BatchHeader.size)
            #expect(throws: LogError.invalidBatch(.recordsChecksumMismatch)) {
                try follower.appendReplicated(damaged, nowMs: 5_000)
            }
            #expect(follower.log.logEndOffset == 4)
            #expect(follower.producerState.producers[3]?.batches.map(\.baseSequence) == [0, 2])
        }
    }

    /// After a truncation the producer state is the one the remaining log implies: a
    /// retry of a batch the truncation removed is appended anew, not answered as a
    /// duplicate, and no snapshot describes offsets past the new end.
    @Test func aTruncationRebuildsTheProducerStateFromWhatIsLeft() async throws {
        try await Self.withPartitions { _, leader, follower in
            for sequence in stride(from: Int32(0), to: 40, by: 2) {
                _ = try leader.append(Self.batch(producer: 4, sequence: sequence), nowMs: 1, leaderEpoch: 0)
            }
            try Self.replicate(leader, into: follower)
            let snapshots = try follower.log.producerSnapshotOffsets()
            #expect(snapshots.count >= 2)
            // Into the middle of the newest snapshot's segment, then below every snapshot.
            for cut in [snapshots[snapshots.count - 1] + 4, snapshots[0] - 2] {
                let newEnd = try follower.truncate(to: cut, nowMs: 9_000)
                #expect(newEnd == cut && follower.log.logEndOffset == cut)
                // Two records per batch: the batch at `cut` had sequence `cut`.
                let removed = Int32(cut)
                let check = { (sequence: Int32) in
                    follower.producerState.check(producerId: 4, epoch: 0, baseSequence: sequence, recordCount: 2)
                }
                #expect(check(removed) == .append, "a retry of the removed batch at \(cut)")
                guard case .duplicate(let kept) = check(removed - 2) else {
                    Issue.record("the last kept batch is no longer a duplicate: \(check(removed - 2))")
                    return
                }
                #expect(kept.lastOffset == cut - 1)
                #expect(try follower.log.producerSnapshotOffsets().allSatisfy { $0 <= cut })
                // And the partition appends on from there, as the leader's copy says.
                try Self.replicate(leader, into: follower)
                #expect(Self.sequences(follower.producerState) == Self.sequences(leader.producerState))
            }
        }
    }
}
