public import NIOCore
import SluiceChecksum
import Synchronization

// The storage a replica needs (issue 15): a follower's verbatim appends, the replica
// floor under the replicated high watermark, where an epoch ends, and the scrub.

/// Where one leader epoch ends in a log (KIP-101/279): the start offset of the next
/// larger epoch the log holds, or the log end for its latest epoch.
public struct EpochEndOffset: Sendable, Equatable, CustomStringConvertible {
    /// The largest epoch the log holds at or below the one asked for; -1 when none.
    public var epoch: Int32
    /// Where that epoch ends (exclusive); -1 when `epoch` is -1.
    public var endOffset: Int64

    public init(epoch: Int32, endOffset: Int64) {
        self.epoch = epoch
        self.endOffset = endOffset
    }

    public static let unknown = EpochEndOffset(epoch: -1, endOffset: -1)
    public var description: String { "epoch \(epoch) ends at \(endOffset)" }
}

/// One leader epoch's first offset in a log: an entry of its leader-epoch checkpoint.
public struct EpochStart: Sendable, Equatable, CustomStringConvertible {
    public var epoch: Int32
    public var startOffset: Int64

    public init(epoch: Int32, startOffset: Int64) {
        self.epoch = epoch
        self.startOffset = startOffset
    }

    public var description: String { "epoch \(epoch) from \(startOffset)" }
}

/// What `PartitionLog.appendReplicated(_:)` stored.
public struct ReplicatedAppend: Sendable, Equatable {
    /// The first and last offsets stored; when nothing was stored, the log end and the
    /// offset below it (an empty range).
    public var firstOffset: Int64
    public var lastOffset: Int64
    /// The headers of the batches stored, in order (their producer fields feed the
    /// partition's producer state).
    public var headers: [BatchHeader]

    public init(firstOffset: Int64, lastOffset: Int64, headers: [BatchHeader]) {
        self.firstOffset = firstOffset
        self.lastOffset = lastOffset
        self.headers = headers
    }
}

/// What a check of stored batches found (`PartitionLog.verifyStoredBatches`).
public enum StoredBatchCheck: Sendable, Equatable {
    /// Every batch from the start offset up to `nextOffset` passed both CRCs.
    case intact(nextOffset: Int64)
    /// The batch at `offset` fails a check; everything below it passed.
    case damaged(offset: Int64, reason: String)
}

/// `PartitionLog.appendReplicatedReporting(_:)`'s answer: what was stored and, when it
/// stopped before the end of its input, why.
public struct ReplicatedAppendOutcome: Sendable, Equatable {
    public var stored: ReplicatedAppend
    /// The refusal (or the write failure) that stopped it; nil when every batch was stored.
    public var stoppedBy: LogError?
}

extension PartitionLog {
    /// Appends stored batches fetched from the partition's leader exactly as they are:
    /// `batches` is zero or more stored batches back to back (BatchHeader + records). Each
    /// must pass its header CRC and records CRC, start where the log ends (the first at
    /// `logEndOffset`, each next right after the one before), and carry a leader epoch no
    /// older than the log's latest. A batch that fails any check throws
    /// `LogError.invalidBatch` and nothing from it on is stored (the ones before it are).
    /// The bytes are written unchanged (no re-encoding, no new header CRC). A batch of a
    /// new epoch adds an entry to the leader-epoch checkpoint before it is written.
    /// Under `FsyncPolicy.always` the sync is requested as for any append; the caller
    /// waits with `wait(for: DurableEndOffset.self, ...)` if it must.
    public func appendReplicated(_ batches: ByteBuffer) throws(LogError) -> ReplicatedAppend {
        let outcome = appendReplicatedReporting(batches)
        if let error = outcome.stoppedBy { throw error }
        return outcome.stored
    }

    /// `appendReplicated` that reports the batches it stored even when a later one stops
    /// it: the partition records their producers whatever came after them.
    public func appendReplicatedReporting(_ batches: ByteBuffer) -> ReplicatedAppendOutcome {
        // Outside the lock: the CRC passes over every byte, the CPU work of the append.
        let (checked, refusal) = checkReplicated(batches, limit: config.batchLimitBytes)
        var stoppedBy = refusal
        let now = clock.nowMilliseconds()
        let (stored, startsSyncRun) = state.withLock { s -> (ReplicatedAppend, Bool) in
            var stored = ReplicatedAppend(firstOffset: s.logEndOffset, lastOffset: s.logEndOffset - 1, headers: [])
            do throws(LogError) {
                try checkWritable(s)
                for (header, bytes) in checked {
                    guard header.baseOffset == s.logEndOffset else {
                        throw LogError.invalidBatch(.invalidField(
                            "base offset \(header.baseOffset) does not continue the log, which ends at \(s.logEndOffset)"))
                    }
                    guard header.leaderEpoch >= s.lastLeaderEpoch else {
                        throw LogError.invalidBatch(.invalidField(
                            "leader epoch \(header.leaderEpoch) is older than the log's latest, \(s.lastLeaderEpoch)"))
                    }
                    try store(&s, header, now: now) { (active) throws(StorageIOError) in
                        try active.append(header, stored: bytes)
                    }
                    stored.lastOffset = header.lastOffset
                    stored.headers.append(header)
                }
            } catch {
                stoppedBy = error
            }
            guard !stored.headers.isEmpty else { return (stored, false) }
            s.moveWatermarks()
            return (stored, alwaysSyncs && s.claimSyncRun())
        }
        if startsSyncRun { startSyncRun() }
        return ReplicatedAppendOutcome(stored: stored, stoppedBy: stoppedBy)
    }

    /// The batches of `batches` that pass every check made on their bytes alone (format,
    /// header CRC, field relations, size limit, length, records CRC), in order, each
    /// with its header; and the refusal of the first that does not, which ends them.
    private func checkReplicated(
        _ batches: ByteBuffer, limit: Int
    ) -> (checked: [(BatchHeader, ByteBuffer)], stoppedBy: LogError?) {
        var rest = batches
        var checked: [(BatchHeader, ByteBuffer)] = []
        while rest.readableBytes > 0 {
            let header: BatchHeader
            switch BatchHeader.checked(rest, at: rest.readerIndex, maxRecordsLength: Self.maxStoredRecordsLength) {
            case .failure(let defect): return (checked, .invalidBatch(defect))
            case .success(let decoded): header = decoded
            }
            guard header.storedSize <= limit else { return (checked, .batchTooLarge(bytes: header.storedSize, limit: limit)) }
            guard let bytes = rest.readSlice(length: header.storedSize) else { return (checked, .invalidBatch(.truncated)) }
            let records = bytes.getSlice(at: bytes.readerIndex + BatchHeader.size, length: Int(header.recordsLength))
            guard let records, CRC32C.checksum(records) == header.recordsCRC else {
                return (checked, .invalidBatch(.recordsChecksumMismatch))
            }
            checked.append((header, bytes))
        }
        return (checked, nil)
    }

    /// Under `HighWatermarkRule.replicated`: the end every in-sync follower holds (their
    /// log ends, or their durable ends under `FsyncPolicy.always`), nil while the ISR is
    /// this replica alone. The high watermark becomes the smaller of it and this log's
    /// own end (the durable end under `always`, else the log end), and never goes back: a
    /// floor below the high watermark leaves it where it is. On a follower the floor is
    /// the leader's high watermark. Wakes the waits it covers (acks=all, subscribers).
    ///
    /// Until the first call the floor is the high watermark the log opened with, so
    /// nothing above it becomes readable on this log's word alone.
    public func setReplicaFloor(_ offset: Int64?) {
        state.withLock { s in
            precondition(s.highWatermarkRule == .replicated, "a replica floor on a log opened without LogConfig.replicated")
            s.replicaFloor = offset
            s.moveWatermarks()
        }
    }

    /// Checks stored batches from `offset` (a batch start, or the log start) up to
    /// `endOffset` (default: the log end), reading at most about `maxBytes`, against both
    /// CRCs, their offsets and their lengths; a follower scrubs its log with it before it
    /// reports itself intact, and reads it in bounded steps so it never holds the lock long.
    ///
    /// One step reads like `read` (the index lookup under the log's lock, the bulk pread
    /// without it), which checks every header it hands out and each base offset against
    /// the batch before; the records CRCs are checked here. An offset below the log start
    /// (retention moved it) starts at the log start. `.intact(nextOffset:)` says where the
    /// next step starts; it is `offset` itself when the batch there reaches past
    /// `endOffset`. `.damaged` names the first batch that fails, by its base offset (or,
    /// when its header cannot be read as one, by the offset asked for).
    public func verifyStoredBatches(from offset: Int64, upTo endOffset: Int64? = nil, maxBytes: Int) throws(LogError)
        -> StoredBatchCheck
    {
        let start = max(offset, logStartOffset)
        let read: LogReadResult
        do throws(LogError) {
            read = try self.read(from: start, maxBytes: maxBytes, upTo: endOffset)
        } catch {
            guard case .corruptSegment = error else { throw error }
            return .damaged(offset: start, reason: error.description)
        }
        var next = start
        for batch in StoredBatches(read.batches) {
            guard CRC32C.checksum(batch.records) == batch.header.recordsCRC else {
                return .damaged(
                    offset: batch.header.baseOffset,
                    reason: "the batch at offset \(batch.header.baseOffset): \(BatchDefect.recordsChecksumMismatch)")
            }
            next = batch.header.nextOffset
        }
        return .intact(nextOffset: next)
    }
}
