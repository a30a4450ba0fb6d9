import Logging
import SluiceAPI
import SluiceStorage
import Synchronization

/// A partition's idempotent-producer state and the lock that orders its appends.
///
/// Every append to the partition (idempotent or not) runs under `lock`, so the check
/// against the producer state, the append and the state update are one step: two
/// batches of one producer in flight on different streams, or five pipelined on one,
/// cannot both pass a check before either is recorded. The log's own lock is taken
/// inside; the append itself only writes to the page cache, so the lock is held for
/// microseconds. Snapshot files are written outside it (under `snapshotLock`, which
/// only orders snapshot writers).
final class PartitionProducers: Sendable {
    struct Ledger {
        var state: ProducerState
        /// The active segment's base offset as of the last append: when it changes, the
        /// log rolled and a snapshot is due.
        var activeBase: Int64
        /// Truncations of the log so far (`Partition.truncate`): a snapshot made before
        /// one may describe batches it removed, and is not written after it.
        var truncations = 0

        func pending(_ snapshot: ProducerSnapshot) -> PendingSnapshot {
            PendingSnapshot(snapshot: snapshot, truncations: truncations)
        }
    }

    /// A snapshot made under the append lock, written once it is released.
    struct PendingSnapshot {
        let snapshot: ProducerSnapshot
        let truncations: Int
    }

    let lock: Mutex<Ledger>
    let snapshotLock = Mutex<Void>(())

    init(state: ProducerState, activeBase: Int64) {
        lock = Mutex(Ledger(state: state, activeBase: activeBase))
    }
}

/// The answer to an append under the producer rules.
enum PartitionAppendOutcome: Sendable {
    case appended(AppendResult)
    /// A retry of a batch already in the log: nothing was appended; the original's offsets.
    case duplicate(AppendResult)
    case refused(ProduceFailure)
}

extension Partition {
    /// Appends `batch` at `leaderEpoch` (see `append(_:leaderEpoch:)`): the epoch the
    /// leadership check answered for it in a cluster; nil where no leader ever changes (a
    /// single node, a partition the cluster's metadata does not know), which appends at
    /// the log's latest epoch (0 for a log only a single node wrote). A batch whose epoch
    /// is older than the log's latest raced a change of leader and is refused NOT_LEADER.
    /// First checking an idempotent producer's
    /// sequence and epoch against what this partition knows, all under the append
    /// lock. At a segment roll, snapshots the producer state as of the new segment's
    /// base offset (after the lock is released).
    func append(_ batch: NewBatch, nowMs: Int64, leaderEpoch: Int32?) throws(LogError) -> PartitionAppendOutcome {
        let idempotent = batch.producerId > 0
        let (outcome, snapshot) = try producers.lock.withLock {
            (ledger) throws(LogError) -> (PartitionAppendOutcome, PartitionProducers.PendingSnapshot?) in
            // Under the append lock, so the epochs of appended batches never go back.
            let latest = log.latestLeaderEpoch
            let epoch = leaderEpoch ?? max(0, latest)
            guard epoch >= latest else {
                return (.refused(.leaderEpochEnded(topic: topicName, partition: index, epoch: epoch, latest: latest)), nil)
            }
            if idempotent {
                let verdict = ledger.state.check(
                    producerId: batch.producerId, epoch: batch.producerEpoch, baseSequence: batch.baseSequence,
                    recordCount: batch.recordCount)
                if case .duplicate(let original) = verdict {
                    return (.duplicate(original.appendResult), nil)
                }
                if let refusal = ProduceFailure(verdict) { return (.refused(refusal), nil) }
            }
            // Only this producer's entry changes: keeping it (not the whole state) is
            // enough to rebuild the state before this batch if the append rolled.
            let previous = idempotent ? ledger.state.producers[batch.producerId] : nil
            let result = try append(batch, leaderEpoch: epoch)
            if idempotent {
                ledger.state.record(
                    producerId: batch.producerId, epoch: batch.producerEpoch, baseSequence: batch.baseSequence,
                    recordCount: batch.recordCount, baseOffset: result.baseOffset, appendMs: nowMs)
            }
            let active = log.activeSegmentBaseOffset
            guard active != ledger.activeBase else { return (.appended(result), nil) }
            ledger.activeBase = active
            // The roll happened inside this append, so the new segment starts with this
            // batch and the state before it covers exactly the offsets below.
            assert(active == result.baseOffset, "a roll starts the new segment with the batch that caused it")
            var before = ledger.state
            if idempotent { before.restore(producerId: batch.producerId, to: previous) }
            return (.appended(result), ledger.pending(ProducerSnapshot(offset: active, state: before)))
        }
        if let snapshot { writeSnapshot(snapshot) }
        return outcome
    }

    /// Rolls the log if its active segment is older than `segment.ms`, snapshotting the
    /// producer state at the roll. Returns whether it rolled.
    func rollIfAged() throws(LogError) -> Bool {
        let snapshot = try producers.lock.withLock { (ledger) throws(LogError) -> PartitionProducers.PendingSnapshot? in
            guard try log.rollIfAged() else { return nil }
            ledger.activeBase = log.activeSegmentBaseOffset
            return ledger.pending(ProducerSnapshot(offset: ledger.activeBase, state: ledger.state))
        }
        guard let snapshot else { return false }
        writeSnapshot(snapshot)
        return true
    }

    /// Forgets producers idle since before `cutoffMs`; returns how many.
    func expireProducers(lastAppendBefore cutoffMs: Int64) -> Int {
        producers.lock.withLock { $0.state.expire(lastAppendBefore: cutoffMs) }
    }

    /// The producer state now (for tests and tools).
    var producerState: ProducerState { producers.lock.withLock { $0.state } }

    /// Snapshots the state at the log end, so the next open replays nothing. Called
    /// just before a clean close; a crash after it leaves a snapshot that is either
    /// covered by the log (used) or above its recovered end (discarded).
    ///
    /// A log unchanged since a clean close still has that close's snapshot at its end:
    /// nothing was appended, and what expiry dropped since then the next expiry drops
    /// again, so writing (and syncing) it afresh would only cost an idle partition time.
    func snapshotAtClose() {
        if log.isUnchangedSinceCleanClose { return }
        let snapshot = producers.lock.withLock { ledger in
            ledger.pending(ProducerSnapshot(offset: log.logEndOffset, state: ledger.state))
        }
        writeSnapshot(snapshot)
    }

    /// Writes a snapshot unless a truncation came between its making and now: it would
    /// describe batches the log no longer holds, and a later append past its offset could
    /// make it look valid.
    func writeSnapshot(_ pending: PartitionProducers.PendingSnapshot) {
        let snapshot = pending.snapshot
        producers.snapshotLock.withLock { _ in
            // Lock order: the snapshot lock, then the append lock (as `truncate` takes them).
            guard producers.lock.withLock({ $0.truncations }) == pending.truncations else { return }
            do throws(LogError) {
                try log.writeProducerSnapshot(snapshot.state, offset: snapshot.offset)
            } catch {
                // Only recovery time suffers: it replays from an older snapshot.
                logger.warning("cannot write a producer state snapshot", metadata: [
                    "topic": "\(topicName)", "partition": "\(index)", "offset": "\(snapshot.offset)", "error": "\(error)"])
            }
        }
    }
}
