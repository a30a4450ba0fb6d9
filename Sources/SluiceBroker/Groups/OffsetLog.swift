public import Logging
import NIOCore
import SluiceAPI
import SluiceChecksum
public import SluiceStorage
import Synchronization

/// Committed offsets kept durably in the internal topic `__consumer_offsets` (one
/// partition, an ordinary `PartitionLog`, so replication will carry it like any other);
/// the record format is in `OffsetLogFormat.swift`.
///
/// Bounded by snapshots: once more than `offsetsCompactionBytes` were appended since the
/// last snapshot (on top of that snapshot's own size, so a large live set does not
/// snapshot on every commit), every live offset is written again between a snapshot
/// begin and end record; when the end is durable, every segment wholly before the begin
/// is deleted (`PartitionLog.deleteSegments(below:)`). The log then holds at most the
/// segment the snapshot starts in, the snapshot, and the threshold's worth after it.
/// Time-based retention is off for this topic: offsets leave only by these snapshots.
public final class OffsetLog: OffsetJournal {
    let log: PartitionLog
    private let compactionBytes: Int64
    private let clock: any GroupClock
    private let logger: Logger
    private let appended: @Sendable (Int64) -> Void
    private let state = Mutex(Progress())

    private struct Progress {
        /// Bytes appended since the last complete snapshot ended.
        var bytesSinceSnapshot: Int64 = 0
        /// Bytes of the last complete snapshot.
        var snapshotBytes: Int64 = 0
        var snapshots = 0
    }

    /// `appended` is told the last offset of every append (the broker wakes subscribers
    /// of `__consumer_offsets` with it).
    public init(
        log: PartitionLog, compactionBytes: Int64, clock: any GroupClock = SystemGroupClock(), logger: Logger,
        appended: @escaping @Sendable (Int64) -> Void = { _ in }
    ) {
        precondition(compactionBytes > 0, "the offsets log's compaction threshold must be positive")
        self.log = log
        self.appended = appended
        self.compactionBytes = compactionBytes
        self.clock = clock
        self.logger = logger
    }

    /// Snapshots written since this process opened the log (for tests and operators).
    public var snapshotsWritten: Int { state.withLock { $0.snapshots } }

    // MARK: Loading

    public func load() throws(BrokerError) -> [String: [GroupPartition: CommittedOffsetValue]] {
        var live = OffsetStore()
        var snapshot: (store: OffsetStore, expected: Int64, written: Int64, bytes: Int64)?
        var bytesSinceSnapshot: Int64 = 0
        var snapshotBytes: Int64 = 0
        var position = log.logStartOffset
        let end = log.logEndOffset
        var skipped = 0
        while position < end {
            let read: LogReadResult
            do throws(LogError) {
                read = try log.read(from: position, maxBytes: StorageLimits.defaults.scanReadBytes.value, upTo: end)
            } catch {
                throw BrokerError(.storageFailed, "reading the offsets log at \(position) failed: \(error)")
            }
            var progressed = false
            for stored in StoredBatches(read.batches) {
                progressed = true
                position = stored.header.nextOffset
                let size = Int64(stored.header.storedSize)
                bytesSinceSnapshot += size
                if snapshot != nil { snapshot?.bytes += size }
                guard let records = try? Records(protobuf: stored.records) else {
                    skipped += Int(stored.header.recordCount)
                    continue
                }
                for record in records.records {
                    switch OffsetLogRecord(record) {
                    case .change(let change)?:
                        live.apply(change)
                    case .snapshotBegin(let count)?:
                        snapshot = (OffsetStore(), count, 0, size)
                    case .snapshotEntry(let group, let partition, let value)?:
                        snapshot?.store.apply(.commit(group: group, partition: partition, value: value))
                        snapshot?.written += 1
                    case .snapshotEnd(let count)?:
                        if let finished = snapshot, finished.expected == count, finished.written == count {
                            live = finished.store
                            snapshotBytes = finished.bytes
                            bytesSinceSnapshot = 0
                        }
                        snapshot = nil
                    case nil:
                        skipped += 1
                    }
                }
            }
            guard progressed else { break }
        }
        if skipped > 0 {
            logger.warning("the offsets log holds records this broker does not understand; they were skipped",
                           metadata: ["records": "\(skipped)"])
        }
        state.withLock {
            $0.bytesSinceSnapshot = bytesSinceSnapshot
            $0.snapshotBytes = snapshotBytes
        }
        return live.offsets
    }

    // MARK: Appending

    public func append(_ changes: [OffsetChange]) throws(BrokerError) -> Int64 {
        try write(changes.map(OffsetLogRecord.change))
    }

    public func waitUntilDurable(_ token: Int64) async throws(BrokerError) {
        do throws(LogError) {
            try await log.waitUntilDurable(token)
        } catch {
            throw BrokerError(.storageFailed, "making committed offsets durable failed: \(error)")
        }
    }

    public func compactIfNeeded(live: () -> [OffsetChange]) {
        let due = state.withLock { $0.bytesSinceSnapshot > compactionBytes + $0.snapshotBytes }
        guard due else { return }
        let entries = live().compactMap { change -> OffsetLogRecord? in
            guard case .commit(let group, let partition, let value) = change else { return nil }
            return .snapshotEntry(group: group, partition: partition, value: value)
        }
        let begin = log.logEndOffset
        let bytesBefore = state.withLock { $0.bytesSinceSnapshot }
        let end: Int64
        do {
            let count = Int64(entries.count)
            end = try write([.snapshotBegin(count: count)] + entries + [.snapshotEnd(count: count)])
        } catch {
            // The commits are in the log already; compaction retries after later commits.
            logger.error("writing an offsets snapshot failed", metadata: ["error": "\(error)"])
            return
        }
        state.withLock {
            $0.snapshotBytes = $0.bytesSinceSnapshot - bytesBefore
            $0.bytesSinceSnapshot = 0
            $0.snapshots += 1
        }
        // The old segments go only once the snapshot that replaces them is on disk.
        Task { [log, logger] in
            do throws(LogError) {
                try await log.waitUntilDurable(end)
                let dropped = try log.deleteSegments(below: begin)
                if dropped.segmentsDeleted > 0 {
                    logger.debug("offsets log compacted", metadata: [
                        "segmentsDeleted": "\(dropped.segmentsDeleted)", "logStartOffset": "\(dropped.logStartOffset)"])
                }
            } catch .closed {
                // Shutdown came first; the next start compacts after its next snapshot.
            } catch {
                logger.error("compacting the offsets log failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Appends records in batches small enough for the log; returns the last offset.
    private func write(_ records: [OffsetLogRecord]) throws(BrokerError) -> Int64 {
        precondition(!records.isEmpty, "nothing to write")
        let budget = max(1024, (log.config.batchLimitBytes - BatchHeader.size) / 2)
        var last: Int64 = -1
        var chunk: [Record] = []
        var chunkBytes = 0
        func flush() throws(BrokerError) {
            guard !chunk.isEmpty else { return }
            last = try appendBatch(chunk)
            chunk.removeAll(keepingCapacity: true)
            chunkBytes = 0
        }
        for record in records {
            let encoded = record.record
            let size = encoded.protobufBytes().readableBytes + 8
            if chunkBytes + size > budget { try flush() }
            chunk.append(encoded)
            chunkBytes += size
        }
        try flush()
        return last
    }

    private func appendBatch(_ records: [Record]) throws(BrokerError) -> Int64 {
        let bytes = Records(records: records).protobufBytes()
        let now = clock.wallMilliseconds()
        let batch = NewBatch(
            recordCount: Int32(records.count), firstTimestamp: now, maxTimestamp: now,
            recordsCRC: CRC32C.checksum(bytes), records: bytes)
        do throws(LogError) {
            let result = try log.appendBuffered(batch, leaderEpoch: 0)
            state.withLock { $0.bytesSinceSnapshot += Int64(BatchHeader.size + bytes.readableBytes) }
            appended(result.lastOffset)
            return result.lastOffset
        } catch {
            throw BrokerError(.storageFailed, "appending to the offsets log failed: \(error)")
        }
    }
}
