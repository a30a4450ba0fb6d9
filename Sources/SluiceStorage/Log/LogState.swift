import Synchronization

/// Everything a `PartitionLog` guards with its lock.
struct LogState {
    /// Oldest first; never empty; the last one is the active segment.
    var segments: [Segment]
    var logStartOffset: Int64
    var recoveryPoint: Int64
    /// Moved only by `moveWatermarks(durableEnd:)` and `truncateWatermarks(to:)`.
    private(set) var durableEndOffset: Int64
    /// Derived by `moveWatermarks` from `highWatermarkRule`; moved only there and by
    /// `truncateWatermarks(to:)`.
    private(set) var highWatermarkOffset: Int64
    let highWatermarkRule: HighWatermarkRule
    /// Under `.replicated`: the end every in-sync replica holds (`setReplicaFloor`); nil
    /// while this replica is the ISR alone. Until the replication layer sets one it is
    /// the high watermark the log opened with, so nothing above that becomes readable on
    /// this log's word alone.
    var replicaFloor: Int64?
    /// Under `.replicated`, this log's own end is its durable end (`FsyncPolicy.always`),
    /// else its log end.
    let ownEndIsDurable: Bool
    /// Epoch of the last batch appended; appends may not go below it. None (-1) until
    /// the opening log reads it from its newest batch (`finishOpening`).
    var lastLeaderEpoch: Int32 = -1
    /// The leader-epoch checkpoint as written to its file (`PartitionLog+Epochs.swift`);
    /// empty on a single node, which keeps none.
    var epochs = LeaderEpochCheckpoint()
    /// Set by the first failed write or sync; returned by every later append.
    var fenceError: LogError?
    var isClosed = false
    /// The clean-shutdown marker is still on disk: nothing has changed the log's files
    /// since the clean close that wrote it, so a crash now is still a clean state and
    /// closing again has nothing to sync. The first change removes it (`leaveCleanState`).
    var cleanMarkerPresent = false
    /// Bumped by each truncation, so a sync that raced one does not claim the
    /// rewritten offsets durable.
    var truncations: UInt64 = 0
    /// Every wait for a watermark of this log (`WatermarkWaiters`).
    var waits: WatermarkWaiters
    /// Sealed segments with files open, least recently used first.
    var openSealed: [Segment] = []
    /// A sync run is claimed or on a sync thread (`PartitionLog.requestSync`): later
    /// requests leave it to that run.
    private(set) var syncRunning = false
    /// `close()` waiting for the sync run to end.
    var syncRunEndWaiters: [CheckedContinuation<Void, Never>] = []
    var intervalFlusher: Task<Void, Never>?

    /// A log just opened: everything in it was synced by the open (recovery syncs what
    /// it keeps), so the log end and durable end start at the log end, and so does the
    /// high watermark on a single node. A replica's starts at `replicatedStart` (the
    /// high watermark it checkpointed), never above the log end.
    init(
        segments: [Segment], logStartOffset: Int64, recoveryPoint: Int64, highWatermarkRule: HighWatermarkRule,
        ownEndIsDurable: Bool, replicatedStart: Int64, waitLimit: Int
    ) {
        self.segments = segments
        self.logStartOffset = logStartOffset
        self.recoveryPoint = recoveryPoint
        self.highWatermarkRule = highWatermarkRule
        self.ownEndIsDurable = ownEndIsDurable
        self.waits = WatermarkWaiters(limit: waitLimit)
        let end = segments[segments.count - 1].nextOffset
        durableEndOffset = end
        if highWatermarkRule == .replicated {
            let start = min(max(replicatedStart, logStartOffset), end)
            highWatermarkOffset = start
            replicaFloor = start
        } else {
            highWatermarkOffset = end
        }
    }

    /// Only a replica keeps a leader-epoch checkpoint: a single node's epochs never
    /// change, and its appends pay no file write for them.
    var keepsLeaderEpochs: Bool { highWatermarkRule == .replicated }

    var active: Segment { segments[segments.count - 1] }
    var logEndOffset: Int64 { active.nextOffset }

    var watermarks: LogWatermarks {
        LogWatermarks(
            logEnd: LogEndOffset(logEndOffset), durableEnd: DurableEndOffset(durableEndOffset),
            highWatermark: HighWatermark(highWatermarkOffset))
    }

    /// Index of the segment whose offsets include `offset` (the last with base <= offset).
    func segmentIndex(containing offset: Int64) -> Int {
        var low = 0
        var high = segments.count
        while low < high {
            let middle = (low + high) / 2
            if segments[middle].baseOffset <= offset { low = middle + 1 } else { high = middle }
        }
        return max(0, low - 1)
    }

    // MARK: Sync runs

    /// True when the caller is to start a sync run: none was running.
    mutating func claimSyncRun() -> Bool {
        guard !syncRunning else { return false }
        syncRunning = true
        return true
    }

    /// The run found nothing left to sync (or the log fenced): the next request starts one.
    mutating func endSyncRun() {
        precondition(syncRunning, "a sync run ended that was never claimed")
        syncRunning = false
        // Resuming only schedules the waiting task; it runs once the lock is released.
        for waiter in syncRunEndWaiters { waiter.resume() }
        syncRunEndWaiters.removeAll()
    }

    // MARK: Watermarks

    /// After the log end moved (an append or a roll), and with `durableEnd` when a sync
    /// covered more: derives the high watermark, checks the order, and resolves every
    /// wait the watermarks now cover. The one place watermarks move forward.
    mutating func moveWatermarks(durableEnd: Int64? = nil) {
        let before = (durable: durableEndOffset, high: highWatermarkOffset)
        if let durableEnd { durableEndOffset = max(durableEndOffset, min(durableEnd, logEndOffset)) }
        switch highWatermarkRule {
        case .followsLogEnd: highWatermarkOffset = logEndOffset
        case .followsDurableEnd: highWatermarkOffset = durableEndOffset
        case .replicated:
            let ownEnd = ownEndIsDurable ? durableEndOffset : logEndOffset
            // Never back: a floor below the high watermark (a follower that fell out of
            // step, a leader's smaller view) leaves it where it is.
            highWatermarkOffset = max(highWatermarkOffset, min(replicaFloor ?? ownEnd, ownEnd))
        }
        assert(durableEndOffset >= before.durable && highWatermarkOffset >= before.high, "a watermark went backwards")
        checkWatermarkOrder()
        waits.reached(.logEnd, end: logEndOffset)
        if durableEndOffset > before.durable { waits.reached(.durableEnd, end: durableEndOffset) }
        if highWatermarkOffset > before.high { waits.reached(.highWatermark, end: highWatermarkOffset) }
    }

    /// A truncation ended the log at `newEnd`: the only way watermarks go back. Waits
    /// at or past the new end resolve as `.truncated`: what a producer waits for is gone,
    /// and a subscriber there must check its position.
    mutating func truncateWatermarks(to newEnd: Int64) {
        precondition(newEnd <= logEndOffset, "a truncation never lengthens the log")
        durableEndOffset = min(durableEndOffset, newEnd)
        highWatermarkOffset = min(highWatermarkOffset, newEnd)
        // What is fetched again above the new end counts only once a floor covers it anew.
        if let floor = replicaFloor { replicaFloor = min(floor, newEnd) }
        waits.resolve(from: newEnd, with: .truncated(newEnd: newEnd))
    }

    func checkWatermarkOrder() {
        assert(durableEndOffset <= logEndOffset, "durable end \(durableEndOffset) past log end \(logEndOffset)")
        assert(highWatermarkOffset <= logEndOffset, "high watermark \(highWatermarkOffset) past log end \(logEndOffset)")
    }

    /// Fails every wait: after a fence no write or sync succeeds again, so no
    /// watermark moves; after a close nothing does.
    mutating func failWaits(_ error: LogError) {
        waits.resolve(with: .failed(error))
    }
}
