import Synchronization

/// Dropping a prefix of the log on the owner's word, for logs whose content is
/// superseded rather than aged out (the consumer-offsets log after a snapshot).
extension PartitionLog {
    /// Deletes every sealed segment that lies wholly below `offset` (the next segment
    /// starts at or before it) and moves the log start to the first remaining segment.
    /// Never the active segment, never an offset at or above `offset`. Like retention, the
    /// new log start is checkpointed before any file is removed, so a crash midway
    /// finishes the deletion on open.
    @discardableResult
    public func deleteSegments(below offset: Int64) throws(LogError) -> RetentionResult {
        try state.withLock { (s) throws(LogError) -> RetentionResult in
            try checkWritable(s)
            var doomed = 0
            while doomed < s.segments.count - 1 && s.segments[doomed + 1].baseOffset <= offset { doomed += 1 }
            return try deleteLeadingSegments(&s, count: doomed)
        }
    }
}
