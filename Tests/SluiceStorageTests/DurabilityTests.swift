import Dispatch
import Glibc
import NIOCore
@testable import SluiceStorage
import SluiceTestSupport
import Testing

/// Group commit, fsync policies, and fencing after a failed write or sync.
@Suite(.timeLimit(.minutes(2))) struct DurabilityTests {
    /// A log opened with `config` on an `InstrumentedFileSystem`, in a new temporary
    /// directory the test removes.
    func instrumentedLog(
        _ config: LogConfig = smallConfig()
    ) throws -> (directory: TemporaryDirectory, fileSystem: InstrumentedFileSystem, log: PartitionLog) {
        let fileSystem = InstrumentedFileSystem()
        let (directory, log) = try temporaryLog(config, fileSystem: fileSystem)
        return (directory, fileSystem, log)
    }

    @Test func appendsArrivingDuringASyncShareTheNextOne() async throws {
        let (directory, fileSystem, log) = try instrumentedLog()
        defer { directory.remove() }
        let syncsAtOpen = fileSystem.syncCount
        fileSystem.syncs.hold(1)
        let first = Task { try await log.append(makeBatch([0]), leaderEpoch: 0) }
        await fileSystem.syncs.waitUntilHeld(1)
        // The sync is in flight and holds no lock: 50 more appends go through now.
        var waits: [Task<Void, any Error>] = []
        for index in 1...50 {
            let result = try log.appendBuffered(makeBatch([UInt8(index)]), leaderEpoch: 0)
            #expect(result.baseOffset == Int64(index))
            waits.append(Task { try await log.waitUntilDurable(result.lastOffset) })
        }
        #expect(log.durableEndOffset == 0)
        fileSystem.syncs.release()
        #expect(try await first.value.baseOffset == 0)
        for wait in waits { try await wait.value }
        #expect(log.durableEndOffset == 51)
        // One sync for the first append, one for the fifty that queued behind it.
        #expect(fileSystem.syncCount - syncsAtOpen == 2)
        try await log.close()
    }

    @Test func concurrentAppendsUnderAlwaysAreAllDurableAndOrdered() async throws {
        let (directory, fileSystem, log) = try instrumentedLog()
        defer { directory.remove() }
        let syncsAtOpen = fileSystem.syncCount
        let results = try await withThrowingTaskGroup(of: AppendResult.self) { group in
            for index in 0..<200 {
                group.addTask {
                    let result = try await log.append(makeBatch(pattern(index, 100)), leaderEpoch: 0)
                    // Reported durable only once a sync covered it.
                    precondition(log.durableEndOffset > result.lastOffset, "acknowledged before durable")
                    return result
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(results.map(\.baseOffset)) == Set(0..<200))
        #expect(log.durableEndOffset == 200)
        #expect(fileSystem.syncCount - syncsAtOpen <= 200)
        try await log.close()
    }

    @Test func neverPolicySyncsOnlyWhenAsked() async throws {
        let (directory, fileSystem, log) = try instrumentedLog(smallConfig(fsync: .never))
        defer { directory.remove() }
        let syncsAtOpen = fileSystem.syncCount
        for index in 0..<10 { _ = try await log.append(makeBatch([UInt8(index)]), leaderEpoch: 0) }
        #expect(fileSystem.syncCount == syncsAtOpen)
        #expect(log.durableEndOffset == 0)
        try await log.flush()
        #expect(log.durableEndOffset == 10)
        #expect(fileSystem.syncCount == syncsAtOpen + 1)
        try await log.flush()   // nothing new: no sync
        #expect(fileSystem.syncCount == syncsAtOpen + 1)
        try await log.close()
    }

    @Test func intervalPolicyReturnsBeforeSyncAndFlushForcesIt() async throws {
        let (directory, fileSystem, log) = try instrumentedLog(smallConfig(fsync: .interval(milliseconds: 60_000)))
        defer { directory.remove() }
        fileSystem.syncs.hold(1)
        // Returns although no sync can complete.
        #expect(try await log.append(makeBatch([1]), leaderEpoch: 0).baseOffset == 0)
        let flushed = Task { try await log.flush() }
        await fileSystem.syncs.waitUntilHeld(1)
        #expect(log.durableEndOffset == 0)
        fileSystem.syncs.release()
        try await flushed.value
        #expect(log.durableEndOffset == 1)
        try await log.close()
    }

    /// A log holding one batch whose file system now fails every write with `code`, and
    /// the error its next append meets.
    func logWhoseWritesFail(with code: Int32) async throws -> (
        directory: TemporaryDirectory, fileSystem: InstrumentedFileSystem, log: PartitionLog, error: StorageIOError
    ) {
        let (directory, fileSystem, log) = try instrumentedLog()
        _ = try await log.append(makeBatch([1]), leaderEpoch: 0)
        fileSystem.update { $0.failWritesWith = code }
        return (directory, fileSystem, log, StorageIOError(errno: code, operation: "pwrite", path: directory.path + "/00000000000000000000.log"))
    }

    @Test func failedWriteFencesTheLog() async throws {
        let (directory, fileSystem, log, error) = try await logWhoseWritesFail(with: ENOSPC)
        defer { directory.remove() }
        await #expect(throws: LogError.diskFull(error)) { try await log.append(makeBatch([2]), leaderEpoch: 0) }
        fileSystem.update { $0.failWritesWith = nil }
        // The disk has room again, but the log stays fenced with the first error.
        await #expect(throws: LogError.diskFull(error)) { try await log.append(makeBatch([3]), leaderEpoch: 0) }
        await #expect(throws: LogError.diskFull(error)) { try await log.flush() }
        #expect(log.fenceError == .diskFull(error))
        #expect(log.logEndOffset == 1)
        // Reads of what was written still work.
        #expect(Array(StoredBatches(try log.read(from: 0, maxBytes: 100).batches)).count == 1)
        try await log.close()
        // No clean marker after a fence: the next open checks the log, and the torn bytes go.
        let reopened = try PartitionLog.open(directory: directory.path, config: smallConfig())
        #expect(!reopened.recovery.cleanShutdown)
        #expect(reopened.logEndOffset == 1)
        try await reopened.close()
    }

    @Test("a file system gone read-only is named as such, not as a permission problem")
    func readOnlyFileSystemIsNamed() async throws {
        let (directory, _, log, error) = try await logWhoseWritesFail(with: EROFS)
        defer { directory.remove() }
        await #expect(throws: LogError.readOnlyFileSystem(error)) { try await log.append(makeBatch([2]), leaderEpoch: 0) }
        let text = "\(LogError.readOnlyFileSystem(error))"
        #expect(text.hasPrefix("read-only file system: pwrite "), "\(text)")
        #expect(text.hasSuffix(": Read-only file system (errno 30)"), "\(text)")
        #expect(!text.contains("permission"), "\(text)")
        #expect("\(LogError(StorageIOError(errno: EACCES, operation: "open", path: "/x")))"
            == "permission denied: open /x: Permission denied (errno 13)")
        #expect("\(LogError(StorageIOError(errno: ENOSPC, operation: "pwrite", path: "/x")))"
            == "disk full: pwrite /x: No space left on device (errno 28)")
        try? await log.close()
    }

    @Test func failedSyncIsNeverAcknowledged() async throws {
        let (directory, fileSystem, log) = try instrumentedLog()
        defer { directory.remove() }
        _ = try await log.append(makeBatch([1]), leaderEpoch: 0)
        fileSystem.update { $0.failSyncsWith = EIO }
        let failure = LogError.io(StorageIOError(errno: EIO, operation: "fdatasync", path: "(injected)"))
        await #expect(throws: failure) { try await log.append(makeBatch([2]), leaderEpoch: 0) }
        #expect(log.durableEndOffset == 1)
        fileSystem.update { $0.failSyncsWith = nil }
        // A later sync would succeed, but the log never retries and acknowledges.
        await #expect(throws: failure) { try await log.waitUntilDurable(1) }
        #expect(throws: failure) { try log.appendBuffered(makeBatch([3]), leaderEpoch: 0) }
        #expect(log.durableEndOffset == 1)
        try await log.close()
    }

    @Test func truncationFailsWaitersForRemovedOffsets() async throws {
        let (directory, fileSystem, log) = try instrumentedLog(smallConfig(fsync: .never))
        defer { directory.remove() }
        _ = try log.appendBuffered(makeBatch([1]), leaderEpoch: 0)
        try await log.flush()
        fileSystem.syncs.hold(1)
        _ = try log.appendBuffered(makeBatch([2]), leaderEpoch: 0)
        let waiting = Task { try await log.waitUntilDurable(1) }
        await fileSystem.syncs.waitUntilHeld(1)
        // Truncation syncs the active segment's file, so it waits in the log's sync gate
        // for the flusher's sync in flight: run it on its own thread, release the held
        // sync once the gate says the truncation is queued behind it.
        let truncationWaiting = DispatchSemaphore(value: 0)
        log.syncGate.setContentionHook { truncationWaiting.signal() }
        let truncation = Task {
            await withCheckedContinuation { (continuation: CheckedContinuation<Int64?, Never>) in
                DispatchQueue.global().async { continuation.resume(returning: try? log.truncate(to: 1)) }
            }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                truncationWaiting.wait()
                fileSystem.syncs.release()
                continuation.resume()
            }
        }
        #expect(await truncation.value == 1)
        log.syncGate.setContentionHook(nil)
        await #expect(throws: LogError.truncatedBeforeDurable(offset: 1)) { try await waiting.value }
        #expect(log.durableEndOffset == 1)
        try await log.close()
    }

    @Test func closedLogRefusesWork() async throws {
        let (directory, log) = try temporaryLog()
        defer { directory.remove() }
        try await log.close()
        try await log.close()
        #expect(throws: LogError.closed) { try log.appendBuffered(makeBatch([1]), leaderEpoch: 0) }
        #expect(throws: LogError.closed) { try log.read(from: 0, maxBytes: 1) }
    }
}
