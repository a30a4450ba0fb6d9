public import NIOCore
public import SluiceStorage
import Synchronization

/// A follower's writes to its copy of a partition (issue 15).
extension Partition {
    /// Appends stored batches fetched from the leader verbatim (`PartitionLog.appendReplicated`),
    /// under the append lock, and records each idempotent batch in the producer state as the
    /// leader did, so that this replica, once it leads, recognises a producer's retry.
    /// The batches stored before one that is refused are recorded too. At a segment roll
    /// the producer state is snapshotted as of the new segment's base offset, as `append`
    /// does.
    public func appendReplicated(_ batches: ByteBuffer, nowMs: Int64) throws(LogError) -> ReplicatedAppend {
        let (outcome, snapshot) = producers.lock.withLock {
            ledger -> (ReplicatedAppendOutcome, PartitionProducers.PendingSnapshot?) in
            let outcome = log.appendReplicatedReporting(batches)
            let active = log.activeSegmentBaseOffset
            let rolled = active != ledger.activeBase
            ledger.activeBase = active
            var snapshot: PartitionProducers.PendingSnapshot?
            for header in outcome.stored.headers {
                // The roll started the new segment with this batch: the state so far
                // covers exactly the offsets below it.
                if rolled && snapshot == nil && header.baseOffset >= active {
                    assert(header.baseOffset == active, "a roll starts the new segment with the batch that caused it")
                    snapshot = ledger.pending(ProducerSnapshot(offset: active, state: ledger.state))
                }
                ledger.state.record(storedBatch: header, appendMs: nowMs)
            }
            return (outcome, snapshot)
        }
        if let snapshot { writeSnapshot(snapshot) }
        if let error = outcome.stoppedBy { throw error }
        return outcome.stored
    }

    /// Truncates the log to `offset` for a divergence from the leader (never below the high
    /// watermark's caller-checked bound) and rebuilds the producer state to match the log
    /// that is left. Returns the new log end.
    ///
    /// The state is rebuilt as a log's at open is (`PartitionLog.recoverProducerState`):
    /// from the newest snapshot at or below the new end, replaying the batch headers after
    /// it, each producer seen counting as active at `nowMs`; snapshots above the new end
    /// are removed, and one made before the truncation but not yet written is dropped.
    /// So a retry of a batch the truncation removed is no longer a duplicate here.
    @discardableResult
    public func truncate(to offset: Int64, nowMs: Int64) throws(LogError) -> Int64 {
        // Lock order: the snapshot lock, then the append lock (as `writeSnapshot` takes
        // them), so no snapshot write is under way while the files are changed.
        try producers.snapshotLock.withLock { (_) throws(LogError) -> Int64 in
            try producers.lock.withLock { (ledger) throws(LogError) -> Int64 in
                ledger.truncations += 1
                let newEnd = try log.truncate(to: offset)
                ledger.state = try log.recoverProducerState(replayTimeMs: nowMs).state
                ledger.activeBase = log.activeSegmentBaseOffset
                return newEnd
            }
        }
    }
}
