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
}
