import Dispatch
import Glibc
import Synchronization
@testable import SluiceStorage
import SluiceTestSupport
import Testing

/// The one waiting mechanism of a log: "wake me when offset X has reached watermark W"
/// (`WatermarkWaiters`, `PartitionLog.wait(for:toCover:notify:)`).
@Suite(.timeLimit(.minutes(2))) struct WatermarkWaitsTests {
    /// Counts how often a wait's `notify` ran.
    final class Rings: Sendable {
        private let count = Mutex(0)
        var value: Int { count.withLock { $0 } }
        var notify: @Sendable () -> Void { { self.count.withLock { $0 += 1 } } }
    }

    @Test func eachWatermarkWakesItsOwnWaitsOnceWhenItPassesTheirOffset() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        // `never`: the high watermark follows the log end, the durable end moves only on a flush.
        let log = try PartitionLog.open(directory: directory.path, config: smallConfig(fsync: .never))
        let (endRings, durableRings, highRings) = (Rings(), Rings(), Rings())
        let end = log.wait(for: LogEndOffset.self, toCover: 1, notify: endRings.notify)
        let high = log.wait(for: HighWatermark.self, toCover: 1, notify: highRings.notify)
        _ = try log.appendBuffered(makeBatch([0]), leaderEpoch: 0)
        #expect(end.resolved == nil && high.resolved == nil && log.pendingWaitCount == 2)
        let durable = log.wait(for: DurableEndOffset.self, toCover: 0, notify: durableRings.notify)
        _ = try log.appendBuffered(makeBatch([1]), leaderEpoch: 0)
        _ = try log.appendBuffered(makeBatch([2]), leaderEpoch: 0)
        #expect(end.resolved == .reached && high.resolved == .reached)
        // A wait on the durable end asked the flusher for a sync even under `never`.
        #expect(await durable.outcome() == .reached)
        #expect(log.durableEndOffset >= 1)
        try await log.flush()
        #expect(log.watermarks == LogWatermarks(logEnd: LogEndOffset(3), durableEnd: DurableEndOffset(3), highWatermark: HighWatermark(3)))
        // Later moves do not wake a resolved wait again.
        _ = try log.appendBuffered(makeBatch([3]), leaderEpoch: 0)
        try await log.flush()
        #expect((endRings.value, durableRings.value, highRings.value) == (1, 1, 1))
        #expect(await end.outcome() == .reached)
        #expect(log.pendingWaitCount == 0)
        try await log.close()
    }

    /// Nothing stands between an fdatasync's return and the waits it covers: they are
    /// resolved on the very thread that ran it, as it returns (no flusher task, no timer,
    /// no poll in between), and only after it returned.
    @Test func aDurableWaitIsResolvedOnTheSyncThreadRightAfterItsSync() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        struct Seen {
            var holding = false
            var syncThread: pthread_t?
            var syncReleased = false
            var resolvedOn: pthread_t?
            var resolvedAfterSync = false
        }
        let seen = Mutex(Seen())
        let syncStarted = DispatchSemaphore(value: 0)
        let releaseSync = DispatchSemaphore(value: 0)
        let fileSystem = SyncHookFileSystem(wrapping: PosixFileSystem()) {
            guard seen.withLock({ s in
                guard s.holding else { return false }
                s.holding = false
                s.syncThread = pthread_self()
                return true
            }) else { return }
            syncStarted.signal()
            releaseSync.wait()
            // The hook runs before the fdatasync; the wait must still be pending here.
            seen.withLock { $0.syncReleased = true }
        }
        let log = try PartitionLog.open(directory: directory.path, fileSystem: fileSystem, config: smallConfig(fsync: .always))
        seen.withLock { $0.holding = true }
        let appended = try log.appendBuffered(makeBatch([0]), leaderEpoch: 0)
        // The append started the sync run; it is held before its fdatasync, so the wait is
        // registered while the batch is not durable.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                syncStarted.wait()
                continuation.resume()
            }
        }
        let wait = log.wait(for: DurableEndOffset.self, toCover: appended.lastOffset) {
            seen.withLock { s in
                s.resolvedOn = pthread_self()
                s.resolvedAfterSync = s.syncReleased
            }
        }
        #expect(wait.resolved == nil)
        releaseSync.signal()
        #expect(await wait.outcome() == .reached)
        let result = seen.withLock { $0 }
        let syncThread = try #require(result.syncThread)
        let resolvedOn = try #require(result.resolvedOn)
        #expect(pthread_equal(syncThread, resolvedOn) != 0, "resolved on another thread than the sync's")
        #expect(result.resolvedAfterSync)
        try await log.close()
    }

    @Test func aWaitAlreadyCoveredResolvesAtRegistrationAndStillRings() async throws {
        let (directory, log) = try temporaryLog(smallConfig(fsync: .never))
        defer { directory.remove() }
        _ = try log.appendBuffered(makeBatch([0]), leaderEpoch: 0)
        let rings = Rings()
        let wait = log.wait(for: HighWatermark.self, toCover: 0, notify: rings.notify)
        #expect(wait.resolved == .reached && rings.value == 1 && log.pendingWaitCount == 0)
        // A durable-end wait names an appended offset.
        let future = log.wait(for: DurableEndOffset.self, toCover: 5)
        #expect(future.resolved == .failed(.offsetOutOfRange(offset: 5, logStartOffset: 0, logEndOffset: 1)))
        try await log.close()
    }

    @Test func underAlwaysTheHighWatermarkIsTheDurableEnd() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let fileSystem = InstrumentedFileSystem()
        let log = try PartitionLog.open(directory: directory.path, fileSystem: fileSystem, config: smallConfig(fsync: .always))
        fileSystem.syncs.hold(1)
        let rings = Rings()
        let high = log.wait(for: HighWatermark.self, toCover: 0, notify: rings.notify)
        // The append asks for its own sync: nobody waits on the durable end here.
        _ = try log.appendBuffered(makeBatch([0]), leaderEpoch: 0)
        await fileSystem.syncs.waitUntilHeld(1)
        let held = log.watermarks
        #expect(held.logEnd.offset == 1 && held.durableEnd.offset == 0 && held.highWatermark.offset == 0)
        #expect(high.resolved == nil)
        fileSystem.syncs.release()
        #expect(await high.outcome() == .reached)
        #expect(log.highWatermark == HighWatermark(1) && rings.value == 1)
        try await log.close()
    }

    @Test func watermarksKeepTheirOrderAndNeverGoBack() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var random = SeededRandom(seed: 12)
        for policy in [FsyncPolicy.never, .always] {
            let log = try PartitionLog.open(directory: directory.path + "/\(policy)", config: smallConfig(fsync: policy))
            var previous = log.watermarks
            for step in 0..<200 {
                if random.next() % 4 == 0 {
                    try await log.flush()
                } else {
                    _ = try log.appendBuffered(makeBatch([UInt8(truncatingIfNeeded: step)]), leaderEpoch: 0)
                }
                let now = log.watermarks
                #expect(now.durableEnd.offset <= now.logEnd.offset && now.highWatermark.offset <= now.logEnd.offset)
                #expect(now.logEnd >= previous.logEnd && now.durableEnd >= previous.durableEnd)
                #expect(now.highWatermark >= previous.highWatermark)
                previous = now
            }
            try await log.close()
        }
    }

    @Test func cancellingAWaitTakesItOutOfTheLogAndResolvesItOnce() async throws {
        let (directory, log) = try temporaryLog(smallConfig(fsync: .never))
        defer { directory.remove() }
        let rings = Rings()
        let wait = log.wait(for: HighWatermark.self, toCover: 10, notify: rings.notify)
        #expect(log.pendingWaitCount == 1)
        wait.cancel()
        wait.cancel()
        #expect(wait.resolved == .cancelled && rings.value == 1 && log.pendingWaitCount == 0)
        for index in 0..<12 { _ = try log.appendBuffered(makeBatch([UInt8(index)]), leaderEpoch: 0) }
        #expect(wait.resolved == .cancelled && rings.value == 1)

        // Cancelling the task that awaits a wait cancels the wait (an ended gRPC call).
        let awaited = log.wait(for: LogEndOffset.self, toCover: 100)
        let waiting = Task { await awaited.outcome() }
        waiting.cancel()
        #expect(await waiting.value == .cancelled)
        #expect(log.pendingWaitCount == 0)
        try await log.close()
    }

    @Test func theBoundRefusesOneWaitTooManyWithAClearError() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var config = smallConfig(fsync: .never)
        config.maxWatermarkWaits = 2
        let log = try PartitionLog.open(directory: directory.path, config: config)
        let first = log.wait(for: HighWatermark.self, toCover: 0)
        _ = log.wait(for: LogEndOffset.self, toCover: 3)
        let refused = log.wait(for: HighWatermark.self, toCover: 0)
        #expect(refused.resolved == .failed(.tooManyWaits(limit: 2)))
        #expect("\(LogError.tooManyWaits(limit: 2))".contains("already holds 2 waits"))
        #expect(log.pendingWaitCount == 2)
        first.cancel()
        #expect(log.wait(for: HighWatermark.self, toCover: 0).resolved == nil)
        try await log.close()
    }

    /// (A durability wait for a removed offset: `DurabilityTests.truncationFailsWaitersForRemovedOffsets`.)
    @Test func truncationLowersEveryWatermarkAndResolvesTheWaitsPastTheNewEnd() async throws {
        let (directory, log) = try temporaryLog(smallConfig(fsync: .never))
        defer { directory.remove() }
        for index in 0..<8 { _ = try log.appendBuffered(makeBatch([UInt8(index)]), leaderEpoch: 0) }
        try await log.flush()
        let (removedRings, keptRings) = (Rings(), Rings())
        // Subscribers waiting at and past the old end hear of the truncation and look again.
        let atOldEnd = log.wait(for: HighWatermark.self, toCover: 8, notify: removedRings.notify)
        let pastOldEnd = log.wait(for: LogEndOffset.self, toCover: 11)
        let belowNewEnd = log.wait(for: LogEndOffset.self, toCover: 3, notify: keptRings.notify)
        #expect(belowNewEnd.resolved == .reached)
        #expect(try log.truncate(to: 4) == 4)
        #expect(atOldEnd.resolved == .truncated(newEnd: 4) && pastOldEnd.resolved == .truncated(newEnd: 4))
        #expect(log.watermarks == LogWatermarks(logEnd: LogEndOffset(4), durableEnd: DurableEndOffset(4), highWatermark: HighWatermark(4)))
        #expect((removedRings.value, keptRings.value) == (1, 1) && log.pendingWaitCount == 0)
        // Below the new end the watermarks move forward again from there.
        let next = log.wait(for: HighWatermark.self, toCover: 4)
        #expect(next.resolved == nil)
        _ = try log.appendBuffered(makeBatch([9]), leaderEpoch: 0)
        #expect(next.resolved == .reached)
        try await log.close()
    }

    @Test func closingFailsTheWaitsNoSyncCanSatisfy() async throws {
        let (directory, log) = try temporaryLog(smallConfig(fsync: .never))
        defer { directory.remove() }
        _ = try log.appendBuffered(makeBatch([0]), leaderEpoch: 0)
        let durable = log.wait(for: DurableEndOffset.self, toCover: 0)
        let future = log.wait(for: HighWatermark.self, toCover: 1)
        try await log.close()
        // Close syncs everything first, so the durable wait is satisfied; the future one can never be.
        #expect(durable.resolved == .reached)
        #expect(future.resolved == .failed(.closed))
        #expect(log.wait(for: HighWatermark.self, toCover: 1).resolved == .failed(.closed))
    }

    @Test func interruptWakesOnlyItsLane() async throws {
        let (directory, log) = try temporaryLog(smallConfig(fsync: .never))
        defer { directory.remove() }
        let high = log.wait(for: HighWatermark.self, toCover: 0)
        let end = log.wait(for: LogEndOffset.self, toCover: 0)
        log.interruptWaits(.highWatermark)
        #expect(high.resolved == .interrupted && end.resolved == nil)
        end.cancel()
        try await log.close()
    }

    @Test func theListStaysInOffsetOrderAndRemovesTheRightWait() {
        var waiters = WatermarkWaiters(limit: 10)
        func make(_ offset: Int64) -> WatermarkWait {
            WatermarkWait(lane: .durableEnd, offset: offset, notify: nil, unlist: { _ in })
        }
        let waits = [5, 1, 9, 5, 3].map { make(Int64($0)) }
        for wait in waits {
            let added = waiters.add(wait)
            #expect(added)
        }
        waiters.remove(waits[3])
        let (total, durable) = (waiters.count, waiters.count(in: .durableEnd))
        #expect(total == 4 && durable == 4)
        waiters.reached(.durableEnd, end: 6)
        // The removed one was never resolved: its owner cancels it.
        #expect(waits.map(\.resolved) == [.reached, .reached, nil, nil, .reached])
        let left = waiters.count
        #expect(left == 1)
        waiters.reached(.logEnd, end: 100)
        #expect(waits[2].resolved == nil)
    }
}
