import Synchronization

/// Producer-state snapshots next to the segments, and rebuilding the state when a log
/// opens (docs/idempotence.md). The owner of the state (the broker's `Partition`)
/// decides when to snapshot: at each segment roll and at a clean close.
extension PartitionLog {
    /// Snapshots kept; older ones are removed when a new one is written.
    static let retainedProducerSnapshots = StorageLimits.defaults.retainedProducerSnapshots.value

    /// The base offset of the segment appends go to; it changes when the log rolls.
    public var activeSegmentBaseOffset: Int64 { state.withLock { $0.active.baseOffset } }

    /// Offsets of the snapshot files present, oldest first.
    public func producerSnapshotOffsets() throws(LogError) -> [Int64] {
        do throws(StorageIOError) {
            return try listedSnapshotOffsets()
        } catch {
            throw LogError(error)
        }
    }

    private func listedSnapshotOffsets() throws(StorageIOError) -> [Int64] {
        try fileSystem.listDirectory(directory).compactMap(ProducerSnapshot.offset(fromFileName:)).sorted()
    }

    /// Writes `state` as of `offset` (it covers every batch below it) and removes all
    /// but the newest snapshots. Durable when it returns.
    public func writeProducerSnapshot(_ state: ProducerState, offset: Int64) throws(LogError) {
        let snapshot = ProducerSnapshot(offset: offset, state: state)
        do throws(StorageIOError) {
            try fileSystem.replaceAtomically(
                directory + "/" + ProducerSnapshot.fileName(offset: offset), with: snapshot.encoded(), directory: directory)
            let offsets = try listedSnapshotOffsets()
            for old in offsets.dropLast(Self.retainedProducerSnapshots) {
                try fileSystem.remove(directory + "/" + ProducerSnapshot.fileName(offset: old))
            }
        } catch {
            throw LogError(error)
        }
    }

    /// Rebuilds the producer state: the newest snapshot at or below the log end that
    /// decodes, then every batch header from its offset (or from the log start, with
    /// none) to the log end. Snapshots above the log end describe batches a crash took
    /// back, and undecodable ones are useless: both are removed, so that a later append
    /// past their offset can never make a stale one look valid.
    ///
    /// A producer seen in the replayed headers counts as last active at `replayTimeMs`
    /// (the recovery time): the batch timestamps are the producer's own clock (or 0),
    /// and expiring a live producer's state would turn its retries into
    /// UNKNOWN_PRODUCER_ID, whereas keeping it a little longer costs only memory.
    ///
    /// Call before the first append, or (after a truncation) under the lock that orders
    /// the appends.
    public func recoverProducerState(replayTimeMs: Int64) throws(LogError) -> ProducerRecovery {
        let logEnd = logEndOffset
        let logStart = logStartOffset
        var recovery = ProducerRecovery()
        var loaded: ProducerSnapshot?
        do throws(StorageIOError) {
            for offset in try listedSnapshotOffsets().reversed() {
                let path = directory + "/" + ProducerSnapshot.fileName(offset: offset)
                if loaded == nil && offset <= logEnd {
                    let file = try fileSystem.open(path, mode: .readOnly)
                    let bytes: [UInt8]
                    do throws(StorageIOError) {
                        bytes = try file.readAll()
                    } catch {
                        file.close()
                        throw error
                    }
                    file.close()
                    switch ProducerSnapshot.decode(bytes) {
                    case .success(let snapshot) where snapshot.offset == offset:
                        loaded = snapshot
                        continue
                    case .success:
                        recovery.discarded.append("\(path): its offset differs from its name")
                    case .failure(let defect):
                        recovery.discarded.append("\(path): \(defect)")
                    }
                } else if offset > logEnd {
                    recovery.discarded.append("\(path): above the log end \(logEnd)")
                } else {
                    continue  // older than the one loaded: kept for the next recovery
                }
                try fileSystem.remove(path)
            }
            if !recovery.discarded.isEmpty { try fileSystem.syncDirectory(directory) }
        } catch {
            throw LogError(error)
        }
        var state = loaded?.state ?? ProducerState()
        recovery.snapshotOffset = loaded?.offset
        var position = max(loaded?.offset ?? logStart, logStart)
        while position < logEnd {
            let read = try read(from: position, maxBytes: StorageLimits.defaults.scanReadBytes.value, upTo: logEnd)
            var advanced = false
            for batch in StoredBatches(read.batches) {
                let header = batch.header
                state.record(storedBatch: header, appendMs: replayTimeMs)
                recovery.batchesScanned += 1
                if header.nextOffset > position {
                    position = header.nextOffset
                    advanced = true
                }
            }
            guard advanced else { break }
        }
        recovery.state = state
        return recovery
    }
}

/// What rebuilding a partition's producer state found.
public struct ProducerRecovery: Sendable, Equatable {
    public var state = ProducerState()
    /// The offset of the snapshot recovery started from; nil when it scanned the whole log.
    public var snapshotOffset: Int64?
    /// Batch headers read after the snapshot.
    public var batchesScanned = 0
    /// Snapshot files removed, with why.
    public var discarded: [String] = []
}
