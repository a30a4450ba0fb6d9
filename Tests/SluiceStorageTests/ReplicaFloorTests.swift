import Foundation
@testable import SluiceStorage
import SluiceTestSupport
import Testing

/// The high watermark of a replica (`HighWatermarkRule.replicated`, `setReplicaFloor`).
@Suite(.timeLimit(.minutes(2))) struct ReplicaFloorTests {
    @Test func theHighWatermarkIsTheSmallerOfTheFloorAndTheLogEndAndNeverGoesBack() async throws {
        let (directory, log) = try temporaryLog(replicatedConfig(fsync: .never))
        defer { directory.remove() }
        for index in 0..<5 { _ = try log.appendBuffered(makeBatch([UInt8(index)]), leaderEpoch: 0) }
        // No floor yet: nothing is readable on this log's word alone.
        #expect(log.highWatermark == HighWatermark(0))
        log.setReplicaFloor(3)
        #expect(log.highWatermark == HighWatermark(3))
        log.setReplicaFloor(10)
        #expect(log.highWatermark == HighWatermark(5))
        log.setReplicaFloor(2)
        #expect(log.highWatermark == HighWatermark(5))
        _ = try log.appendReplicated(storedBatch(baseOffset: 5, leaderEpoch: 0, [5], count: 2))
        #expect(log.highWatermark == HighWatermark(5))
        log.setReplicaFloor(6)
        #expect(log.highWatermark == HighWatermark(6))
        // The ISR is this replica alone: the high watermark follows its own end.
        log.setReplicaFloor(nil)
        #expect(log.highWatermark == HighWatermark(7))
        _ = try log.appendBuffered(makeBatch([7]), leaderEpoch: 0)
        #expect(log.highWatermark == HighWatermark(8))
        try await log.close()
    }

    /// Under `always` the log's own end is its durable end: a floor past it waits for the
    /// sync, and a high-watermark wait resolves when the sync lands.
    @Test func underAlwaysTheFloorIsCappedByTheDurableEnd() async throws {
        let fileSystem = InstrumentedFileSystem()
        let (directory, log) = try temporaryLog(replicatedConfig(fsync: .always), fileSystem: fileSystem)
        defer { directory.remove() }
        log.setReplicaFloor(100)
        // The epoch's first batch first: its checkpoint entry is synced under the lock.
        _ = try log.appendReplicated(storedBatch(baseOffset: 0, leaderEpoch: 0, [0]))
        try await log.waitUntilDurable(0)
        fileSystem.syncs.hold(1)
        let high = log.wait(for: HighWatermark.self, toCover: 2)
        _ = try log.appendReplicated(concatenated([
            storedBatch(baseOffset: 1, leaderEpoch: 0, [1]), storedBatch(baseOffset: 2, leaderEpoch: 0, [2]),
        ]))
        await fileSystem.syncs.waitUntilHeld(1)
        // The floor and the log end are past the batches; the durable end is not.
        #expect(log.watermarks == LogWatermarks(
            logEnd: LogEndOffset(3), durableEnd: DurableEndOffset(1), highWatermark: HighWatermark(1)))
        #expect(high.resolved == nil)
        fileSystem.syncs.release()
        #expect(await high.outcome() == .reached && log.highWatermark == HighWatermark(3))
        try await log.close()
    }

    /// What acks=all and subscribers wait on: a wait on the high watermark resolves when
    /// a floor covers it, not when the batch is appended.
    @Test func aFloorWakesTheHighWatermarkWaitsItCovers() async throws {
        let (directory, log) = try temporaryLog(replicatedConfig(fsync: .never))
        defer { directory.remove() }
        let first = log.wait(for: HighWatermark.self, toCover: 0)
        let third = log.wait(for: HighWatermark.self, toCover: 2)
        for index in 0..<3 { _ = try log.appendBuffered(makeBatch([UInt8(index)]), leaderEpoch: 0) }
        #expect(first.resolved == nil && third.resolved == nil)
        log.setReplicaFloor(1)
        #expect(await first.outcome() == .reached)
        #expect(third.resolved == nil)
        log.setReplicaFloor(3)
        #expect(await third.outcome() == .reached)
        try await log.close()
    }

    @Test func whetherALogIsAReplicaCannotChangeWhileItIsOpen() async throws {
        let (directory, log) = try temporaryLog(replicatedConfig())
        defer { directory.remove() }
        var single = log.config
        single.replicated = false
        #expect(throws: LogError.invalidConfiguration("whether an open log is a replica cannot change")) {
            try log.reconfigure(single)
        }
        try await log.close()
    }

    // MARK: The checkpointed high watermark

    static func checkpoint(_ directory: TemporaryDirectory) throws -> LogCheckpoint {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.path(LogCheckpoint.fileName))))
        return try LogCheckpoint.decode(bytes).get()
    }

    @Test func theCheckpointLayoutHoldsAReplicasHighWatermark() throws {
        let single = LogCheckpoint(logStartOffset: 1, recoveryPoint: 2).encoded()
        #expect(single.count == 28 && Array(single[4..<8]) == [0, 0, 0, 1])
        let replica = LogCheckpoint(logStartOffset: 1, recoveryPoint: 2, highWatermark: 258).encoded()
        #expect(replica.count == 36 && Array(replica[4..<8]) == [0, 0, 0, 2])
        #expect(Array(replica[0..<24]) == Array(single[0..<4]) + [0, 0, 0, 2] + Array(single[8..<24]))
        #expect(Array(replica[24..<32]) == [0, 0, 0, 0, 0, 0, 1, 2])
        #expect(try LogCheckpoint.decode(replica).get().highWatermark == 258)
        #expect(try LogCheckpoint.decode(single).get().highWatermark == nil)
    }

    /// A replica opens at the high watermark it checkpointed at its clean close, not at
    /// its log end (batches above it are not known to be on the other replicas), and not
    /// at its log start either.
    @Test func aReplicaReopensAtTheHighWatermarkItClosedWith() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try PartitionLog.open(directory: directory.path, config: replicatedConfig())
        for index in 0..<10 { _ = try log.appendBuffered(makeBatch([UInt8(index)]), leaderEpoch: 0) }
        log.setReplicaFloor(6)
        try await log.close()
        #expect(try Self.checkpoint(directory).highWatermark == 6)
        let reopened = try PartitionLog.open(directory: directory.path, config: replicatedConfig())
        #expect(reopened.logEndOffset == 10 && reopened.highWatermark == HighWatermark(6))
        // The checkpointed value holds until the replication layer moves it.
        _ = try reopened.appendBuffered(makeBatch([10]), leaderEpoch: 0)
        #expect(reopened.highWatermark == HighWatermark(6))
        reopened.setReplicaFloor(8)
        #expect(reopened.highWatermark == HighWatermark(8))
        try await reopened.close()
    }

    /// After a crash the high watermark of the last roll's checkpoint stands.
    @Test func afterACrashTheHighWatermarkOfTheLastRollStands() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let config = replicatedConfig(segmentBytes: 1_000)
        do {
            let log = try PartitionLog.open(directory: directory.path, config: config)
            for index in 0..<3 { _ = try log.appendBuffered(makeBatch(pattern(index, 150)), leaderEpoch: 0) }
            #expect(log.segmentCount == 1)
            log.setReplicaFloor(3)
            // Four batches of 214 bytes fill a segment of 1,000: the fifth rolls it.
            for index in 3..<5 { _ = try log.appendBuffered(makeBatch(pattern(index, 150)), leaderEpoch: 0) }
            #expect(log.segmentCount == 2)
            // Moved after the roll: not checkpointed before the crash.
            log.setReplicaFloor(nil)
            #expect(log.highWatermark.offset == log.logEndOffset)
            try await log.flush()
            // Abandoned without a close: the next open recovers as after a crash.
        }
        let reopened = try PartitionLog.open(directory: directory.path, config: config)
        #expect(!reopened.recovery.cleanShutdown)
        #expect(reopened.highWatermark == HighWatermark(3))
        try await reopened.close()
    }

    /// A checkpointed high watermark past the log end (a crash cut the tail) is clamped to
    /// it; a log that checkpointed none (it was a single node's) starts at its log start;
    /// and a single node's checkpoint stays as it was.
    @Test func aReplicaWithoutACheckpointedHighWatermarkStartsAtItsLogStart() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let single = try PartitionLog.open(directory: directory.path, config: smallConfig(fsync: .never))
        for index in 0..<4 { _ = try single.appendBuffered(makeBatch([UInt8(index)]), leaderEpoch: 0) }
        try await single.close()
        #expect(try Self.checkpoint(directory).highWatermark == nil)
        let replica = try PartitionLog.open(directory: directory.path, config: replicatedConfig())
        #expect(replica.highWatermark == HighWatermark(0) && replica.logEndOffset == 4)
        try await replica.close()
        var past = try Self.checkpoint(directory)
        past.highWatermark = 100
        try Data(past.encoded()).write(to: URL(fileURLWithPath: directory.path(LogCheckpoint.fileName)))
        let clamped = try PartitionLog.open(directory: directory.path, config: replicatedConfig())
        #expect(clamped.highWatermark == HighWatermark(4))
        try await clamped.close()
    }
}
