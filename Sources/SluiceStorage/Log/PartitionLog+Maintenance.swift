import Synchronization

/// Changing settings of an open log, and rolling by age without an append: what the
/// broker's background maintenance needs besides `enforceRetention`.
extension PartitionLog {
    /// Replaces the settings in force (a topic's settings were altered). Size, age,
    /// retention and batch limits apply from the next append, roll or retention pass;
    /// nothing already written is rewritten. The fsync policy and `replicated` (they pick
    /// the high watermark's rule), the open-segment bound and the bound of waits are fixed
    /// when the log opens (the interval task is started for the policy), so a change to
    /// any of them is refused.
    public func reconfigure(_ newConfig: LogConfig) throws(LogError) {
        if let problem = newConfig.validate() { throw LogError.invalidConfiguration(problem) }
        try settings.withLock { (current) throws(LogError) in
            guard newConfig.fsyncPolicy == current.fsyncPolicy else {
                throw LogError.invalidConfiguration("the fsync policy of an open log cannot change")
            }
            guard newConfig.replicated == current.replicated else {
                throw LogError.invalidConfiguration("whether an open log is a replica cannot change")
            }
            guard newConfig.maxOpenSealedSegments == current.maxOpenSealedSegments else {
                throw LogError.invalidConfiguration("maxOpenSealedSegments of an open log cannot change")
            }
            guard newConfig.maxWatermarkWaits == current.maxWatermarkWaits else {
                throw LogError.invalidConfiguration("maxWatermarkWaits of an open log cannot change")
            }
            current = newConfig
        }
    }

    /// Rolls the active segment if its first batch is older than `segmentMs`, so an
    /// idle partition's data becomes a sealed segment that retention can delete (an
    /// append would roll it too, but an idle partition gets none). Returns whether it
    /// rolled. An empty active segment never rolls.
    @discardableResult
    public func rollIfAged() throws(LogError) -> Bool {
        let now = clock.nowMilliseconds()
        let segmentMs = config.segmentMs
        return try state.withLock { (s) throws(LogError) -> Bool in
            try checkWritable(s)
            let active = s.active
            guard !active.isEmpty, let basis = active.rollBasisMs, now - basis >= segmentMs else { return false }
            try leaveCleanState(&s)
            try roll(&s)
            return true
        }
    }
}
