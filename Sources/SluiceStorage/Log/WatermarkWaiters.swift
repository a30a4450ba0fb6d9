import Synchronization

/// The one way anything waits for a log's offsets to move: "wake me when offset X is
/// below watermark W" (`PartitionLog.wait(for:toCover:notify:)`). A Produce stream
/// waits on the durable end for each `acks=durable` batch, a Subscribe stream on the
/// high watermark for the next offset it reads, the offsets log and `append` under
/// `FsyncPolicy.always` on the durable end; replication's `acks=all` will wait on the
/// high watermark the same way.
///
/// The lists live in the log's state, under the log's lock, so registering (which
/// checks the watermark first) and moving a watermark (which resolves every wait it now
/// covers) exclude each other: a move cannot fall between a check and a wait.
///
/// Each list is kept sorted by offset, so a move resolves a prefix. A wait is resolved
/// exactly once (`WatermarkWait`), by whichever comes first: its watermark reaching it,
/// a truncation removing its offset, the log failing or closing, an interruption, or
/// its owner cancelling it (a deadline, a cancelled task, an ended stream), which also
/// takes it out of its list, so an abandoned wait holds no memory.
///
/// Bounded: at most `limit` waits per log across the lists (`LogConfig.maxWatermarkWaits`);
/// past it a registration resolves at once with `LogError.tooManyWaits`.
struct WatermarkWaiters {
    static let defaultLimit = StorageLimits.defaults.maxWatermarkWaits.value

    let limit: Int
    private var lanes: [[WatermarkWait]] = Array(repeating: [], count: WatermarkLane.allCases.count)
    private(set) var count = 0

    init(limit: Int) {
        precondition(limit >= 1, "a log needs room for one wait")
        self.limit = limit
    }

    func count(in lane: WatermarkLane) -> Int { lanes[lane.rawValue].count }

    /// Adds `wait` in offset order; false when the bound is reached (the caller resolves it).
    mutating func add(_ wait: WatermarkWait) -> Bool {
        guard count < limit else { return false }
        let lane = wait.lane.rawValue
        // Offsets mostly arrive in order: the search ends at the back.
        var low = 0
        var high = lanes[lane].count
        if let last = lanes[lane].last, last.offset <= wait.offset { low = high }
        while low < high {
            let middle = (low + high) / 2
            if lanes[lane][middle].offset <= wait.offset { low = middle + 1 } else { high = middle }
        }
        lanes[lane].insert(wait, at: low)
        count += 1
        return true
    }

    /// Takes `wait` out of its list if it is still there (it was cancelled).
    mutating func remove(_ wait: WatermarkWait) {
        let lane = wait.lane.rawValue
        var low = 0
        var high = lanes[lane].count
        while low < high {
            let middle = (low + high) / 2
            if lanes[lane][middle].offset < wait.offset { low = middle + 1 } else { high = middle }
        }
        var index = low
        while index < lanes[lane].count, lanes[lane][index].offset == wait.offset {
            if lanes[lane][index] === wait {
                lanes[lane].remove(at: index)
                count -= 1
                return
            }
            index += 1
        }
    }

    /// Resolves, in offset order, every wait of `lane` whose offset is below `end`.
    mutating func reached(_ lane: WatermarkLane, end: Int64) {
        let waits = lanes[lane.rawValue]
        guard let first = waits.first, first.offset < end else { return }
        var covered = 0
        while covered < waits.count, waits[covered].offset < end { covered += 1 }
        lanes[lane.rawValue].removeFirst(covered)
        count -= covered
        for wait in waits[..<covered] { wait.resolve(.reached) }
    }

    /// Resolves with `outcome` every wait of `lanes` at or above `offset`.
    mutating func resolve(
        _ lanes: [WatermarkLane] = WatermarkLane.allCases, from offset: Int64 = .min, with outcome: WatermarkWaitOutcome
    ) {
        for lane in lanes {
            let waits = self.lanes[lane.rawValue]
            guard let last = waits.last, last.offset >= offset else { continue }
            var kept = waits.count
            while kept > 0, waits[kept - 1].offset >= offset { kept -= 1 }
            self.lanes[lane.rawValue].removeLast(waits.count - kept)
            count -= waits.count - kept
            for wait in waits[kept...] { wait.resolve(outcome) }
        }
    }
}

/// How a `WatermarkWait` ended.
public enum WatermarkWaitOutcome: Sendable, Equatable {
    /// The watermark passed the offset.
    case reached
    /// `PartitionLog.truncate(to:)` ended the log at `newEnd`, at or below the offset,
    /// before the watermark passed it. A producer's batch is gone; a subscriber checks
    /// its position against the new end.
    case truncated(newEnd: Int64)
    /// The watermark will not move: the log was fenced (`fenceError`), closed
    /// (`.closed`), or had no room for another wait (`.tooManyWaits`); or a durable-end
    /// wait named an offset not appended (`.offsetOutOfRange`).
    case failed(LogError)
    /// `PartitionLog.interruptWaits(_:)` woke it early (the broker is shutting down);
    /// the watermark did not necessarily move.
    case interrupted
    /// Its owner gave up: `cancel()`, or the task awaiting `outcome()` was cancelled.
    case cancelled
}

/// One registered wait: a watermark and the offset it must pass, resolved exactly
/// once. Whoever registered it either awaits `outcome()` (one task at most) or reads
/// `resolved` after `notify` (the callback given at registration, run once on
/// resolution, even when that is at once: it must be cheap and must not take the
/// log's lock, e.g. ring a stream's doorbell). Dropping a wait without cancelling it
/// leaves it in the log's list until its watermark passes: owners cancel.
public final class WatermarkWait: Sendable {
    public let lane: WatermarkLane
    public let offset: Int64
    private let state: Mutex<State>
    /// Takes the wait out of its log's list; set at registration, weak on the log.
    private let unlist: @Sendable (WatermarkWait) -> Void

    private enum State {
        case pending(notify: (@Sendable () -> Void)?, continuation: CheckedContinuation<WatermarkWaitOutcome, Never>?)
        case resolved(WatermarkWaitOutcome)
    }

    init(
        lane: WatermarkLane, offset: Int64, notify: (@Sendable () -> Void)?,
        unlist: @escaping @Sendable (WatermarkWait) -> Void
    ) {
        self.lane = lane
        self.offset = offset
        self.state = Mutex(.pending(notify: notify, continuation: nil))
        self.unlist = unlist
    }

    /// The outcome once resolved; nil while the wait is pending.
    public var resolved: WatermarkWaitOutcome? {
        state.withLock { s in
            if case .resolved(let outcome) = s { return outcome }
            return nil
        }
    }

    /// Suspends until the wait is resolved. Cancelling the awaiting task cancels the wait.
    public func outcome() async -> WatermarkWaitOutcome {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<WatermarkWaitOutcome, Never>) in
                let ready = state.withLock { s -> WatermarkWaitOutcome? in
                    switch s {
                    case .resolved(let outcome):
                        return outcome
                    case .pending(let notify, let existing):
                        precondition(existing == nil, "one task at a time awaits a wait")
                        s = .pending(notify: notify, continuation: continuation)
                        return nil
                    }
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            cancel()
        }
    }

    /// Gives up the wait: resolves it as `.cancelled` unless it was resolved already,
    /// and takes it out of its log's list.
    public func cancel() {
        if resolve(.cancelled) { unlist(self) }
    }

    /// Resolves the wait with `outcome` unless it was resolved already; whether it was
    /// this call that resolved it. Never takes the log's lock (it may run under it).
    @discardableResult
    func resolve(_ outcome: WatermarkWaitOutcome) -> Bool {
        let waiting = state.withLock { s -> (notify: (@Sendable () -> Void)?, continuation: CheckedContinuation<WatermarkWaitOutcome, Never>?)? in
            guard case .pending(let notify, let continuation) = s else { return nil }
            s = .resolved(outcome)
            return (notify, continuation)
        }
        guard let waiting else { return false }
        waiting.continuation?.resume(returning: outcome)
        waiting.notify?()
        return true
    }
}
