import Glibc
import NIOPosix
import Synchronization

/// Group commit, flushing and closing.
///
/// Every fdatasync of the active segment runs on a sync thread (`SyncThreads`), never on a
/// Swift concurrency thread, which a 0.2-5 ms fdatasync would stall. A sync is asked for
/// by each append under `FsyncPolicy.always`, by each wait registered on the durable end
/// under the other policies, by the interval timer and by `flush()`. The first request
/// while no sync runs hands the log's *sync run* to a sync thread; requests during a run
/// only count on it (`LogState.syncRunning`: at most one run per log, so one file's syncs
/// never pile up on several threads). Each round of the run notes the log end, syncs
/// without the log's lock (appends carry on meanwhile), and moves the durable end, which
/// resolves every wait it covers at once (`moveWatermarks`), there on the sync thread:
/// a durable answer's task is resumed straight from the fdatasync's return, with no hop
/// to a flusher task first. Appends that arrived during a sync are covered by the next
/// round, so under load one fdatasync serves many appends; the run ends when the durable
/// end has caught up. A failed sync fences the log and fails every wait: nothing is
/// reported durable that a sync did not cover.
extension PartitionLog {
    func startIntervalFlusher() {
        guard case .interval(let milliseconds) = config.fsyncPolicy else { return }
        // Weak: the task must not keep an abandoned log alive.
        let intervalFlusher = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(milliseconds))
                guard let self else { return }
                self.requestSync()
            }
        }
        state.withLock { $0.intervalFlusher = intervalFlusher }
    }

    /// Asks for a sync covering everything appended so far: starts a sync run unless one
    /// is running (which will cover it: a run ends only once the durable end reaches the
    /// log end, checked under the lock that appends take).
    func requestSync() {
        if state.withLock({ $0.claimSyncRun() }) { startSyncRun() }
    }

    /// Hands the claimed run to a sync thread, after the group-commit window if there is one.
    func startSyncRun() {
        let window = config.groupCommitWindow
        guard window > .zero else { return submitSyncRun() }
        // Appends arriving during the window join this run's first sync.
        Task { [weak self] in
            try? await Task.sleep(for: window)
            // A log dropped meanwhile has no waits left to serve.
            self?.submitSyncRun()
        }
    }

    private func submitSyncRun() {
        syncThreads.submit { [self] pool in
            guard case .active = pool else {
                return state.withLock { s in
                    _ = fence(&s, LogError(StorageIOError(errno: EIO, operation: "fdatasync (sync threads stopped)", path: directory)))
                    s.endSyncRun()
                }
            }
            runSyncs()
        }
    }

    private struct SyncJob {
        let file: SegmentFile
        let endOffset: Int64
        let truncations: UInt64
    }

    /// On a sync thread: syncs until the durable end reaches the log end, then ends the run.
    private func runSyncs() {
        while true {
            let job = state.withLock { s -> SyncJob? in
                if let error = s.fenceError {
                    s.failWaits(error)
                } else if s.logEndOffset > s.durableEndOffset, let file = s.active.log {
                    file.beginUse()
                    return SyncJob(file: file, endOffset: s.logEndOffset, truncations: s.truncations)
                }
                // Under the lock appends take: an append after this starts a new run.
                s.endSyncRun()
                return nil
            }
            guard let job else { return }
            var failure: StorageIOError?
            do throws(StorageIOError) {
                try job.file.file.sync()
            } catch {
                failure = error
            }
            state.withLock { s in
                job.file.endUse()
                if let failure {
                    _ = fence(&s, LogError(failure))
                } else if s.truncations == job.truncations {
                    s.moveWatermarks(durableEnd: job.endOffset)
                }
            }
        }
    }

    /// Suspends until no sync run is in progress (`close()`: nothing syncs behind its back).
    func waitForSyncRunToEnd() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { s in
                guard s.syncRunning else { return true }
                s.syncRunEndWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// Returns once `offset` is durable (an fdatasync covered it), asking for a
    /// sync run if needed, whatever the policy: a wait on the durable end.
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
        let intervalFlusher = state.withLock { s -> Task<Void, Never>?? in
            guard !s.isClosed else { return nil }
            s.isClosed = true
            return .some(s.intervalFlusher)
        }
        guard let intervalFlusher else { return }
        intervalFlusher?.cancel()
        await waitForSyncRunToEnd()
        // The final syncs run on the sync threads, not the caller's: a broker closing
        // thousands of partitions at shutdown closes many at once, and blocking fdatasyncs
        // on the cooperative pool would run two at a time (its width here) and stall it.
        let closed: Result<Void, LogError>
        do {
            closed = try await syncThreads.runIfActive { [self] in Result { () throws(LogError) in try closeFiles() } }
        } catch {
            closed = Result { () throws(LogError) in try closeFiles() }  // the pool is shutting down
        }
        try closed.get()
    }

    /// Syncs and checkpoints the active segment and writes the clean-shutdown marker, once
    /// (a log already marked clean, or fenced, is left as it is); unloads every segment.
    private func closeFiles() throws(LogError) {
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
        // A replica's high watermark rides along: it opens there again after a restart.
        let checkpoint = LogCheckpoint(
            logStartOffset: s.logStartOffset, recoveryPoint: s.recoveryPoint,
            highWatermark: s.highWatermarkRule == .replicated ? s.highWatermarkOffset : nil)
        try fileSystem.replaceAtomically(
            directory + "/" + LogCheckpoint.fileName, with: checkpoint.encoded(), directory: directory)
    }
}
