import Synchronization

/// Reading the watermarks and waiting for them (`Watermarks.swift`, `WatermarkWaiters.swift`).
extension PartitionLog {
    /// The log end, durable end and high watermark, read together.
    public var watermarks: LogWatermarks { state.withLock { $0.watermarks } }

    /// Offsets below it may be read by subscribers (`HighWatermarkRule`).
    public var highWatermark: HighWatermark { state.withLock { HighWatermark($0.highWatermarkOffset) } }

    /// Waits registered and not yet resolved, all watermarks together.
    public var pendingWaitCount: Int { state.withLock { $0.waits.count } }

    /// Registers a wait for `offset` to be below watermark `W` ("wake me when offset X
    /// has reached watermark W"). It may come back resolved already: the watermark is
    /// past the offset, the log is fenced or closed, or the log holds its bound of waits
    /// (`.failed(.tooManyWaits)`). `notify`, if given, runs once when the wait resolves
    /// (at once if it already has); it must be cheap and must not call into this log.
    /// On a fenced log every wait fails, as every append and flush does.
    ///
    /// A wait on the durable end names an appended offset and asks for a sync covering
    /// it, whatever the fsync policy (under `always` each append has asked already);
    /// waits on the log end or the high watermark may name offsets not appended yet
    /// (a subscriber waits for the next offset it will read).
    public func wait<W: Watermark>(
        for _: W.Type, toCover offset: Int64, notify: (@Sendable () -> Void)? = nil
    ) -> WatermarkWait {
        let wait = WatermarkWait(lane: W.lane, offset: offset, notify: notify) { [weak self] wait in
            self?.state.withLock { $0.waits.remove(wait) }
        }
        let (immediate, needsSync) = state.withLock { s -> (WatermarkWaitOutcome?, Bool) in
            // A fenced log confirms nothing, not even what a sync covered before the fence.
            if let fence = s.fenceError { return (.failed(fence), false) }
            if s.watermarks.offset(of: W.lane) > offset { return (.reached, false) }
            if s.isClosed { return (.failed(.closed), false) }
            if W.lane == .durableEnd, offset >= s.logEndOffset {
                return (.failed(.offsetOutOfRange(offset: offset, logStartOffset: s.logStartOffset, logEndOffset: s.logEndOffset)), false)
            }
            guard s.waits.add(wait) else { return (.failed(.tooManyWaits(limit: s.waits.limit)), false) }
            return (nil, W.lane == .durableEnd && config.fsyncPolicy != .always)
        }
        if let immediate { wait.resolve(immediate) }
        if needsSync { requestSync() }
        return wait
    }

    /// Wakes every wait on `lane` with `.interrupted` (the broker is shutting down and
    /// its subscribers must look at once); their owners wait again if they still need to.
    public func interruptWaits(_ lane: WatermarkLane) {
        state.withLock { $0.waits.resolve([lane], with: .interrupted) }
    }
}
