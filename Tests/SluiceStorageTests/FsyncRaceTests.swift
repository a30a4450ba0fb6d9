import Dispatch
import Testing
@testable import SluiceStorage

/// The race the seeded soak found (docs/testing-storage.md), staged deterministically:
/// the flusher's fdatasync of the active segment fails, and before the flusher re-takes
/// the log's lock to fence, a roll seals the same segment with a second fdatasync that
/// succeeds (Linux reports a writeback error once) and moves the recovery point past
/// bytes that never reached the disk (and reports them durable). After a power cut the log
/// must still hold only batches that verify, including every one acknowledged durable.
/// Marked a known issue until the storage stream fixes it; `withKnownIssue` then fails,
/// prompting its removal.
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
        _ = try log.appendBuffered(workload.newBatch(sequence: 1), leaderEpoch: 0)

        // Hold the failed sync's result back until the roll has run.
        let failedSyncStarted = DispatchSemaphore(value: 0)
        let releaseFailedSync = DispatchSemaphore(value: 0)
        system.failNextFileSync()
        system.setAfterFileSync { _, failed in
            guard failed else { return }
            failedSyncStarted.signal()
            releaseFailedSync.wait()
        }
        let waiter = Task { try await log.waitUntilDurable(1) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                failedSyncStarted.wait()
                continuation.resume()
            }
        }
        system.setAfterFileSync(nil)
        let rolled = try? log.appendBuffered(workload.newBatch(sequence: 2), leaderEpoch: 0)
        releaseFailedSync.signal()
        let waited: Void? = try? await waiter.value
        // The flusher handles requests in order, so this returns after it handled the failure.
        _ = try? await log.flush()
        #expect(log.fenceError != nil)

        system.powerCut(halting: true)
        try? await log.close()
        system.restart()

        await withKnownIssue("storage: a roll's seal can succeed after the flusher's failed fdatasync (docs/testing-storage.md)") {
            #expect(system.syncsAfterFailedSync == 0, "the log synced the segment again after its fdatasync failed")
            // Today the roll also reports batch 1 durable, and the power cut then loses it.
            #expect(waited == nil, "batch 1 was reported durable although its fdatasync failed")
            let reopened = try PartitionLog.open(directory: directory, fileSystem: system, config: config)
            #expect(reopened.logEndOffset >= 1, "batch 0 was acknowledged durable")
            let count = try CrashTests.checkPrefix(
                reopened, workload: workload, context: "after the staged race (roll \(rolled == nil ? "refused" : "accepted"))")
            #expect(count >= 1)
            try await reopened.close()
        }
    }
}
