import Glibc
import NIOPosix
import Synchronization

/// Group commit, flushing and closing.
///
/// One flusher task per log has every fdatasync of the active segment done on a
/// thread of a blocking-I/O pool (NIO's), never on a Swift concurrency thread,
/// which a 0.2-5 ms fdatasync would stall. It is asked for a sync by each append
/// under `FsyncPolicy.always`, by each wait registered on the durable end under the
/// other policies, by the interval timer and by `flush()`; each round it notes the
/// log end, syncs without the lock (appends carry on meanwhile), and then moves the
/// durable end, which resolves every wait it covers at once (`moveWatermarks`).
/// Appends that arrived during a sync are covered by the next one, so under load one
/// fdatasync serves many appends. A failed sync fences the log and fails every wait:
/// nothing is reported durable that a sync did not cover.
extension PartitionLog {
    func startFlusher(_ signals: AsyncStream<Void>) {
        // Weak: the tasks must not keep an abandoned log alive.
        let flusher = Task { [weak self] in
            for await _ in signals {
                guard let self else { return }
                await self.syncRound()
            }
        }
        var intervalFlusher: Task<Void, Never>?
        if case .interval(let milliseconds) = config.fsyncPolicy {
            intervalFlusher = Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(milliseconds))
                    guard let self else { return }
                    self.flushRequests.yield()
                }
            }
        }
        state.withLock { s in
            s.flusher = flusher
            s.intervalFlusher = intervalFlusher
        }
    }

    private struct SyncJob: Sendable {
        let file: SegmentFile
        let endOffset: Int64
        let truncations: UInt64
    }

    /// Syncs until everything appended before the last sync began is durable.
    func syncRound() async {
        // Appends arriving during the window join this round's sync.
        if config.groupCommitWindow > .zero { try? await Task.sleep(for: config.groupCommitWindow) }
        while true {
            let job = state.withLock { s -> SyncJob? in
                if let error = s.fenceError {
                    s.failWaits(error)
                    return nil
                }
                guard s.logEndOffset > s.durableEndOffset, let file = s.active.log else { return nil }
                file.beginUse()
                return SyncJob(file: file, endOffset: s.logEndOffset, truncations: s.truncations)
            }
            guard let job else { return }
            var failure: StorageIOError?
            do {
                try await syncThreadPool.runIfActive { try job.file.file.sync() }
            } catch let error as StorageIOError {
                failure = error
            } catch {
                failure = StorageIOError(errno: EIO, operation: "fdatasync (sync pool stopped)", path: job.file.file.path)
            }
            state.withLock { s in
                job.file.endUse()
                if let failure {
                    _ = fence(&s, LogError(failure))
                    return
                }
                if s.truncations == job.truncations { s.moveWatermarks(durableEnd: job.endOffset) }
            }
        }
    }

    /// Returns once `offset` is durable (an fdatasync covered it), asking the
    /// flusher for a sync if needed, whatever the policy: a wait on the durable end.
    public func waitUntilDurable(_ offset: Int64) async throws(LogError) {
        switch await wait(for: DurableEndOffset.self, toCover: offset).outcome() {
        case .reached: return
        case .truncated(let newEnd): throw LogError.truncatedBeforeDurable(offset: newEnd)
        case .failed(let error): throw error
        case .cancelled: throw LogError.cancelled
        case .interrupted: preconditionFailure("durable-end waits are never interrupted")
        }
    }

    /// Makes everything appended so far durable, whatever the policy.
    public func flush() async throws(LogError) {
        let end = state.withLock { $0.logEndOffset }
        guard end > 0 else { return }
        try await waitUntilDurable(end - 1)
    }

    /// Syncs everything, checkpoints, writes the clean-shutdown marker last and
    /// closes every file. A log unchanged since it was opened after a clean close still
    /// has its marker, and everything the marker vouches for is as it was: nothing to
    /// sync. After a fence it closes the files but writes no marker, so the next open
    /// checks the log. Later calls return at once.
    public func close() async throws(LogError) {
        let tasks = state.withLock { s -> (Task<Void, Never>?, Task<Void, Never>?)? in
            guard !s.isClosed else { return nil }
            s.isClosed = true
            return (s.flusher, s.intervalFlusher)
        }
        guard let (flusher, intervalFlusher) = tasks else { return }
        intervalFlusher?.cancel()
        flushRequests.finish()
        await flusher?.value
        try state.withLock { (s) throws(LogError) in
            defer {
                for segment in s.segments { segment.unload() }
                s.openSealed.removeAll()
                s.failWaits(.closed)
            }
            guard s.fenceError == nil, !s.cleanMarkerPresent else { return }
            do throws(StorageIOError) {
                try s.active.syncAll()
                s.moveWatermarks(durableEnd: s.logEndOffset)
                s.recoveryPoint = s.logEndOffset
                try writeCheckpoint(s)
                try fileSystem.replaceAtomically(
                    directory + "/" + PartitionLog.cleanShutdownMarker, with: [], directory: directory)
            } catch {
                throw fence(&s, LogError(error))
            }
        }
    }

    // MARK: Helpers used under the lock

    /// Records the first failure, fails every wait, and returns the error to throw.
    func fence(_ s: inout LogState, _ error: LogError) -> LogError {
        if s.fenceError == nil { s.fenceError = error }
        s.failWaits(s.fenceError ?? error)
        return error
    }

    /// Removes the clean-shutdown marker (and syncs the directory) before the first change
    /// to the log's files since a clean open: from here on a crash must count as unclean.
    /// Called under the lock at the point of the change, not before a check that may
    /// still refuse it, so a refused write leaves the partition clean.
    func leaveCleanState(_ s: inout LogState) throws(LogError) {
        guard s.cleanMarkerPresent else { return }
        do throws(StorageIOError) {
            try fileSystem.remove(directory + "/" + PartitionLog.cleanShutdownMarker)
            try fileSystem.syncDirectory(directory)
        } catch {
            throw fence(&s, LogError(error))
        }
        s.cleanMarkerPresent = false
    }

    func checkWritable(_ s: LogState) throws(LogError) {
        if s.isClosed { throw LogError.closed }
        if let error = s.fenceError { throw error }
    }

    func writeCheckpoint(_ s: LogState) throws(StorageIOError) {
        let checkpoint = LogCheckpoint(logStartOffset: s.logStartOffset, recoveryPoint: s.recoveryPoint)
        try fileSystem.replaceAtomically(
            directory + "/" + LogCheckpoint.fileName, with: checkpoint.encoded(), directory: directory)
    }
}
