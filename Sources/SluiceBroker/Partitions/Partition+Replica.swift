public import NIOCore
public import SluiceStorage

// CONTRACT (issue 15): a follower's writes to its copy of a partition. Signatures fixed;
// bodies being written (branch `storage`).

extension Partition {
    /// Appends stored batches fetched from the leader verbatim (`PartitionLog.appendReplicated`),
    /// under the append lock, and records each idempotent batch in the producer state as the
    /// leader did, so that this replica, once it leads, recognises a producer's retry.
    public func appendReplicated(_ batches: ByteBuffer, nowMs: Int64) throws(LogError) -> ReplicatedAppend {
        preconditionFailure("Partition.appendReplicated: being written (issue 15, branch storage)")
    }

    /// Truncates the log to `offset` for a divergence from the leader (never below the high
    /// watermark's caller-checked bound) and rebuilds the producer state to match the log
    /// that is left. Returns the new log end.
    @discardableResult
    public func truncate(to offset: Int64, nowMs: Int64) throws(LogError) -> Int64 {
        preconditionFailure("Partition.truncate: being written (issue 15, branch storage)")
    }
}
