import Synchronization

/// Rolling, retention, truncation and the open-file bound: everything that adds,
/// removes or reopens segments. All run under the log's lock.
extension PartitionLog {
    // MARK: Rolling

    func shouldRoll(_ active: Segment, adding header: BatchHeader, now: Int64) -> Bool {
        guard !active.isEmpty, let size = active.size else { return false }
        if size + Int64(header.storedSize) > config.segmentBytes { return true }
        if let basis = active.rollBasisMs, now - basis >= config.segmentMs { return true }
        // Relative offsets in the indexes are 32-bit.
        return header.lastOffset - active.baseOffset > Int64(UInt32.max)
    }

    /// Seals the active segment (synced with its indexes, so recovery never needs to
    /// rescan it), starts a new one at the log end, and moves the recovery point up.
    func roll(_ s: inout LogState) throws(LogError) {
        let old = s.active
        makeRoomForOneMoreSealed(&s)
        do throws(StorageIOError) {
            try old.seal()
        } catch {
            throw fence(&s, LogError(error))
        }
        s.moveWatermarks(durableEnd: old.nextOffset)
        do throws(StorageIOError) {
            let new = try Segment.create(
                directory: directory, baseOffset: old.nextOffset, indexIntervalBytes: config.indexIntervalBytes,
                fileSystem: fileSystem)
            s.segments.append(new)
            try fileSystem.syncDirectory(directory)
        } catch {
            throw fence(&s, LogError(error))
        }
        touch(&s, old)
        s.recoveryPoint = max(s.recoveryPoint, old.nextOffset)
        do throws(StorageIOError) {
            try writeCheckpoint(s)
        } catch {
            throw fence(&s, LogError(error))
        }
    }

    // MARK: Open segments

    /// The segment at `index`, loading a sealed one (and counting it as recently used).
    func loadedSegment(_ s: inout LogState, _ index: Int) throws(LogError) -> Segment {
        let segment = s.segments[index]
        if index == s.segments.count - 1 { return segment }
        if !segment.isLoaded {
            makeRoomForOneMoreSealed(&s)
            _ = try segment.loadSealed(
                fileSystem: fileSystem, directory: directory, maxRecordsLength: PartitionLog.maxStoredRecordsLength,
                fullCheck: false)
        }
        touch(&s, segment)
        return segment
    }

    /// Marks a sealed segment most recently used, unloading the least recently used
    /// beyond `maxOpenSealedSegments`: the bound on open files.
    /// Unloads least recently used sealed segments so one more fits the bound.
    func makeRoomForOneMoreSealed(_ s: inout LogState) {
        while s.openSealed.count >= config.maxOpenSealedSegments {
            s.openSealed.removeFirst().unload()
        }
    }

    func touch(_ s: inout LogState, _ segment: Segment) {
        s.openSealed.removeAll { $0 === segment }
        s.openSealed.append(segment)
        while s.openSealed.count > config.maxOpenSealedSegments {
            s.openSealed.removeFirst().unload()
        }
    }

    func forget(_ s: inout LogState, _ segment: Segment) {
        s.openSealed.removeAll { $0 === segment }
        segment.unload()
    }

    /// A segment's size in bytes, learned without loading its indexes.
    func segmentSize(_ s: inout LogState, _ index: Int) throws(LogError) -> Int64 {
        let segment = s.segments[index]
        if let size = segment.size { return size }
        do throws(StorageIOError) {
            let file = try fileSystem.open(segment.logPath, mode: .readOnly)
            defer { file.close() }
            let size = try file.size()
            segment.size = size
            return size
        } catch {
            throw LogError(error)
        }
    }

    func removeFiles(of segment: Segment) throws(StorageIOError) {
        // The .log first: an index left behind by a crash is an orphan that open removes.
        for path in [segment.logPath, segment.indexPath, segment.timeIndexPath] where fileSystem.fileExists(path) {
            try fileSystem.remove(path)
        }
    }

    /// Leader epoch of the last batch in the log, -1 when the log holds none.
    func lastLeaderEpoch(_ s: inout LogState) throws(LogError) -> Int32 {
        for index in s.segments.indices.reversed() {
            let segment = s.segments[index]
            if segment.isEmpty { continue }
            if let epoch = segment.lastLeaderEpoch { return epoch }
            let loaded = try loadedSegment(&s, index)
            if let (_, header) = try loaded.locate(offset: loaded.nextOffset - 1) {
                loaded.lastLeaderEpoch = header.leaderEpoch
                return header.leaderEpoch
            }
        }
        return -1
    }

    // MARK: Retention

    /// Deletes whole sealed segments, oldest first, while the oldest is past
    /// `retentionMs` (its largest timestamp against the clock) or while the log
    /// without it would still hold at least `retentionBytes`. Never the active
    /// segment. The log start moves to the first remaining segment; it is
    /// checkpointed before any file is removed, so a crash midway finishes on open.
    /// The caller (the broker) runs this periodically.
    public func enforceRetention() throws(LogError) -> RetentionResult {
        let now = clock.nowMilliseconds()
        return try state.withLock { (s) throws(LogError) -> RetentionResult in
            try checkWritable(s)
            let sealedCount = s.segments.count - 1
            var doomed = 0
            if let retentionMs = config.retentionMs {
                while doomed < sealedCount {
                    let segment = s.segments[doomed]
                    if segment.maxTimestamp == nil { _ = try loadedSegment(&s, doomed) }
                    guard let largest = segment.maxTimestamp, largest != Int64.min, now - largest > retentionMs else { break }
                    doomed += 1
                }
            }
            if let retentionBytes = config.retentionBytes {
                var remaining: Int64 = 0
                for index in doomed..<s.segments.count { remaining += try segmentSize(&s, index) }
                while doomed < sealedCount {
                    let size = try segmentSize(&s, doomed)
                    guard remaining - size >= retentionBytes else { break }
                    remaining -= size
                    doomed += 1
                }
            }
            return try deleteLeadingSegments(&s, count: doomed)
        }
    }

    /// Deletes the first `count` segments (all sealed) and moves the log start to the
    /// next one's base offset. The new log start is checkpointed before any file is
    /// removed, so a crash midway finishes the deletion on open; a failure fences the log.
    func deleteLeadingSegments(_ s: inout LogState, count: Int) throws(LogError) -> RetentionResult {
        precondition(count < s.segments.count, "the active segment is never deleted")
        var result = RetentionResult(segmentsDeleted: count, bytesDeleted: 0, logStartOffset: s.logStartOffset)
        guard count > 0 else { return result }
        try leaveCleanState(&s)
        for index in 0..<count { result.bytesDeleted += try segmentSize(&s, index) }
        s.logStartOffset = max(s.logStartOffset, s.segments[count].baseOffset)
        s.recoveryPoint = max(s.recoveryPoint, s.logStartOffset)
        do throws(StorageIOError) {
            try writeCheckpoint(s)
            for segment in s.segments[0..<count] {
                forget(&s, segment)
                try removeFiles(of: segment)
            }
            s.segments.removeFirst(count)
            try fileSystem.syncDirectory(directory)
        } catch {
            throw fence(&s, LogError(error))
        }
        var epochs = s.epochs
        epochs.truncate(fromStart: s.logStartOffset)
        try replaceLeaderEpochs(&s, with: epochs)
        result.logStartOffset = s.logStartOffset
        return result
    }

    // MARK: Truncation

    /// Removes every batch holding an offset at or after `offset` (a batch that
    /// straddles it goes whole), index entries included, and the leader-epoch entries
    /// starting at or past the new end, and returns the new log end. For a follower after a leader change. The recovery point is lowered and
    /// checkpointed first, so a crash midway leaves a log that recovery checks.
    /// The one way a watermark goes back: the log end, durable end and high watermark
    /// all end at most at the new end, and every wait at or past it resolves as
    /// `.truncated` (a durability wait throws `truncatedBeforeDurable`). Replication's
    /// follower uses it after a leader change.
    @discardableResult
    public func truncate(to offset: Int64) throws(LogError) -> Int64 {
        try state.withLock { (s) throws(LogError) -> Int64 in
            try checkWritable(s)
            guard offset >= s.logStartOffset, offset <= s.logEndOffset else {
                throw LogError.offsetOutOfRange(
                    offset: offset, logStartOffset: s.logStartOffset, logEndOffset: s.logEndOffset)
            }
            guard offset < s.logEndOffset else { return s.logEndOffset }
            try leaveCleanState(&s)
            let index = s.segmentIndex(containing: offset)
            let segment = try loadedSegment(&s, index)
            guard let (position, header) = try segment.locate(offset: offset) else {
                throw LogError.corruptSegment(
                    path: segment.logPath, position: segment.size ?? 0, reason: "offset \(offset) not found below its end")
            }
            let newEnd = header.baseOffset
            s.truncations += 1
            s.recoveryPoint = min(s.recoveryPoint, newEnd)
            s.truncateWatermarks(to: newEnd)
            do throws(StorageIOError) {
                try writeCheckpoint(s)
                for later in s.segments[(index + 1)...].reversed() {
                    forget(&s, later)
                    try removeFiles(of: later)
                }
                s.segments.removeLast(s.segments.count - index - 1)
                try fileSystem.syncDirectory(directory)
                let kept = segment.indexer
                forget(&s, segment)
                try segment.truncateFiles(toPosition: position, nextOffset: newEnd, keeping: kept, fileSystem: fileSystem)
            } catch {
                throw fence(&s, LogError(error))
            }
            let scan = try segment.loadActive(
                fileSystem: fileSystem, maxRecordsLength: PartitionLog.maxStoredRecordsLength, fullCheck: false,
                now: clock.nowMilliseconds())
            if let defect = scan.defect {
                throw fence(&s, .corruptSegment(path: segment.logPath, position: scan.validEnd, reason: defect))
            }
            precondition(s.logEndOffset == newEnd, "truncation must end the log at \(newEnd)")
            s.checkWatermarkOrder()
            s.lastLeaderEpoch = try lastLeaderEpoch(&s)
            var epochs = s.epochs
            epochs.truncate(fromEnd: newEnd)
            try replaceLeaderEpochs(&s, with: epochs)
            assert(
                !s.keepsLeaderEpochs || s.epochs.latestEpoch == s.lastLeaderEpoch,
                "the leader-epoch checkpoint ends with the newest batch's epoch")
            return newEnd
        }
    }
}

public struct RetentionResult: Sendable, Equatable {
    public var segmentsDeleted: Int
    public var bytesDeleted: Int64
    public var logStartOffset: Int64
}
