import Dispatch
import SluiceTestSupport
import Testing
@testable import SluiceStorage

/// The race the seeded soak found (docs/testing-storage.md), staged deterministically:
/// the flusher's fdatasync of the active segment fails, and before the flusher re-takes
/// the log's lock to fence, a roll seals the same segment with a second fdatasync that
/// succeeds (Linux reports a writeback error once) and moves the recovery point past
/// bytes that never reached the disk (and reports them durable). After a power cut the log
/// must still hold only batches that verify, including every one acknowledged durable.
/// The log's `SyncGate` makes the seal wait for the flusher's sync and refuse after its
/// failure, so the roll fences instead.
@Suite(.timeLimit(.minutes(2))) struct FsyncRaceTests {
    @Test func rollAfterAFailedFlusherSyncLeavesNoUnflushedBytesBelowTheRecoveryPoint() async throws {
        let system = SimulatedFileSystem(seed: 1)
        let directory = "/data/partition"
        try system.createDirectory(directory)
        try system.syncDirectory("/data")
        try system.syncDirectory("/")
        let workload = DeterministicBatches(recordCount: 1, recordBytes: 100)
        let batchBytes = BatchHeader.size + 100
        var config = LogConfig()
        config.fsyncPolicy = .always
        config.segmentBytes = Int64(batchBytes * 2 + 10)  // two batches per segment
        config.indexIntervalBytes = 64
        config.retentionMs = nil
        let log = try PartitionLog.open(directory: directory, fileSystem: system, config: config)
        _ = try await log.append(workload.newBatch(sequence: 0), leaderEpoch: 0)  // durable

        // Hold the failed sync's result back until the roll has run. Armed before batch 1
        // is appended: its append starts the sync run on a sync thread at once, so arming
        // after it could let that sync succeed first.
        let failedSyncStarted = DispatchSemaphore(value: 0)
        let releaseFailedSync = DispatchSemaphore(value: 0)
        system.failNextFileSync()
        system.setAfterFileSync { _, failed in
            guard failed else { return }
            failedSyncStarted.signal()
            releaseFailedSync.wait()
        }
        _ = try log.appendBuffered(workload.newBatch(sequence: 1), leaderEpoch: 0)
        let waiter = Task { try await log.waitUntilDurable(1) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                failedSyncStarted.wait()
                continuation.resume()
            }
        }
        system.setAfterFileSync(nil)
        // The rolling append runs on its own thread: it must now wait in the sync gate for
        // the flusher's sync in flight, and the gate's hook says when it does.
        let rollWaiting = DispatchSemaphore(value: 0)
        log.syncGate.setContentionHook { rollWaiting.signal() }
        let rolling = Task {
            await withCheckedContinuation { (continuation: CheckedContinuation<AppendResult?, Never>) in
                DispatchQueue.global().async {
                    continuation.resume(returning: try? log.appendBuffered(workload.newBatch(sequence: 2), leaderEpoch: 0))
                }
            }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                rollWaiting.wait()
                releaseFailedSync.signal()
                continuation.resume()
            }
        }
        let rolled = await rolling.value
        log.syncGate.setContentionHook(nil)
        let waited: Void? = try? await waiter.value
        // The failed sync fenced the log, so this returns at once with the fence.
        _ = try? await log.flush()
        #expect(log.fenceError != nil)
        #expect(rolled == nil, "the roll sealed a segment whose fdatasync had failed")
        #expect(waited == nil, "batch 1 was reported durable although its fdatasync failed")
        #expect(log.recoveryPoint <= 1, "the recovery point moved past batch 1, which no sync covered")
        #expect(system.syncsAfterFailedSync == 0, "the log synced the segment again after its fdatasync failed")

        system.powerCut(halting: true)
        try? await log.close()
        system.restart()

        let reopened = try PartitionLog.open(directory: directory, fileSystem: system, config: config)
        #expect(reopened.logEndOffset >= 1, "batch 0 was acknowledged durable")
        let count = try CrashTests.checkPrefix(reopened, workload: workload, context: "after the staged race")
        #expect(count >= 1)
        try await reopened.close()
    }
}

/// The gate on its own: after one failed sync, no later sync of the log's files succeeds,
/// not even through a new descriptor of the same file (which the kernel would not report
/// the earlier writeback error to), nor a directory sync.
@Suite struct SyncGateTests {
    @Test func aFailedSyncPoisonsEveryLaterSync() throws {
        let system = SimulatedFileSystem(seed: 2)
        try system.createDirectory("/d")
        let gated = SyncGatedFileSystem(inner: system, gate: SyncGate())
        let file = try gated.open("/d/a", mode: .createNew)
        try file.writeFully([1, 2, 3], at: 0)
        try file.sync()
        #expect(gated.gate.failure == nil)
        try file.writeFully([4, 5, 6], at: 3)
        system.failNextFileSync()
        #expect(throws: StorageIOError.self) { try file.sync() }
        #expect(gated.gate.failure != nil)
        #expect(throws: StorageIOError.self) { try file.sync() }
        let again = try gated.open("/d/a", mode: .readWrite)
        #expect(throws: StorageIOError.self) { try again.sync() }
        #expect(throws: StorageIOError.self) { try gated.syncDirectory("/d") }
        again.close()
        file.close()
        #expect(system.failedFileSyncs == 1)
        #expect(system.syncsAfterFailedSync == 0)
    }
}
