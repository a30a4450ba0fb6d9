/// Opening a segment's files: the active one for appending, a sealed one for
/// reading, each with its indexes checked and rebuilt when they do not match.
extension Segment {
    /// Opens a sealed segment read-only and loads its indexes. Sealed segments were
    /// synced when sealed, so a batch that fails verification here is corruption,
    /// reported as an error, never skipped.
    /// With `fullCheck` (recovery after an unclean shutdown) every batch is verified
    /// even when the indexes look right. Returns whether the index files were rewritten.
    @discardableResult
    func loadSealed(
        fileSystem: any StorageFileSystem, directory: String, maxRecordsLength: Int, fullCheck: Bool
    ) throws(LogError) -> Bool {
        precondition(!isLoaded, "segment already loaded")
        let file: any StorageFile
        let fileSize: Int64
        do throws(StorageIOError) {
            file = try fileSystem.open(logPath, mode: .readOnly)
            fileSize = try file.size()
        } catch {
            throw LogError(error)
        }
        log = SegmentFile(file)
        size = fileSize
        let span = nextOffset - baseOffset
        let storedIndex = readIndexFile(indexPath, fileSystem)
        let storedTimeIndex = readIndexFile(timeIndexPath, fileSystem)
        let offsetIndex = storedIndex.flatMap { OffsetIndex.decode($0, logSize: fileSize, offsetSpan: span) }
        let timeIndex = storedTimeIndex.flatMap { TimeIndex.decode($0, offsetSpan: span) }
        if !fullCheck, let offsetIndex, let timeIndex, let last = timeIndex.last, fileSize > 0 {
            indexer.offsetIndex = offsetIndex
            indexer.timeIndex = timeIndex
            maxTimestamp = last.timestamp
            return false
        }
        // Missing or inconsistent: rebuild from a full check of the segment.
        var rebuilt = SegmentIndexer(baseOffset: baseOffset, intervalBytes: indexer.intervalBytes)
        let scan: SegmentScan
        do throws(StorageIOError) {
            scan = try SegmentScan.run(
                file: file, fileSize: fileSize, from: 0, expectedOffset: baseOffset,
                maxRecordsLength: maxRecordsLength) { header, position in _ = rebuilt.add(header, at: position) }
        } catch {
            unload()
            throw LogError(error)
        }
        guard scan.defect == nil, scan.nextOffset == nextOffset else {
            unload()
            throw LogError.corruptSegment(
                path: logPath, position: scan.validEnd,
                reason: scan.defect ?? "sealed segment ends at offset \(scan.nextOffset), the next begins at \(nextOffset)")
        }
        _ = rebuilt.seal()
        indexer = rebuilt
        maxTimestamp = rebuilt.maxTimestamp
        lastLeaderEpoch = scan.lastBatch?.leaderEpoch
        let newIndex = rebuilt.offsetIndex.encoded()
        let newTimeIndex = rebuilt.timeIndex.encoded()
        guard newIndex != storedIndex || newTimeIndex != storedTimeIndex else { return false }
        do throws(StorageIOError) {
            try fileSystem.replaceAtomically(indexPath, with: newIndex, directory: directory)
            try fileSystem.replaceAtomically(timeIndexPath, with: newTimeIndex, directory: directory)
        } catch {
            unload()
            throw LogError(error)
        }
        return true
    }

    /// Opens the active segment for appending and checks its batches: all of them
    /// (`fullCheck`, after an unclean shutdown), or only those after the last index
    /// entry (after a clean one, when the indexes check out). Index entries the files
    /// lack are written; indexes that disagree with the batches are rewritten.
    /// Returns the scan: a defect in it means bytes after `validEnd` that the
    /// caller must judge (a torn tail to truncate, or corruption to report).
    func loadActive(
        fileSystem: any StorageFileSystem, maxRecordsLength: Int, fullCheck: Bool, now: Int64
    ) throws(LogError) -> SegmentScan {
        precondition(!isLoaded, "segment already loaded")
        do {
            let file = try fileSystem.open(logPath, mode: .readWrite)
            log = SegmentFile(file)
            let fileSize = try file.size()
            size = fileSize
            let storedIndex = readIndexFile(indexPath, fileSystem) ?? []
            let storedTimeIndex = readIndexFile(timeIndexPath, fileSystem) ?? []
            activeFileSystem = fileSystem

            var start: Int64 = 0
            var expected = baseOffset
            var seeded = SegmentIndexer(baseOffset: baseOffset, intervalBytes: indexer.intervalBytes)
            if !fullCheck,
               let offsetIndex = OffsetIndex.decode(storedIndex, logSize: max(fileSize, 1), offsetSpan: Int64(UInt32.max) + 1),
               let timeIndex = TimeIndex.decode(storedTimeIndex, offsetSpan: Int64(UInt32.max) + 1),
               timeIndex.pointsAtEntries(of: offsetIndex) {
                seeded.offsetIndex = offsetIndex
                seeded.timeIndex = timeIndex
                seeded.maxTimestamp = timeIndex.last?.timestamp ?? Int64.min
                if let last = offsetIndex.last {
                    start = Int64(last.position)
                    expected = baseOffset + Int64(last.relativeOffset)
                }
            }
            indexer = seeded
            var scan = try SegmentScan.run(
                file: file, fileSize: fileSize, from: start, expectedOffset: expected,
                maxRecordsLength: maxRecordsLength) { header, position in _ = indexer.add(header, at: position) }
            nextOffset = scan.nextOffset
            maxTimestamp = indexer.maxTimestamp
            lastLeaderEpoch = scan.lastBatch?.leaderEpoch
            if storedIndex != indexer.offsetIndex.encoded() || storedTimeIndex != indexer.timeIndex.encoded() {
                try rewriteActiveIndexes(fileSystem)
                scan.indexesRewritten = true
            }
            offsetEntriesWritten = indexer.offsetIndex.entries.count
            timeEntriesWritten = indexer.timeIndex.entries.count
            if !isEmpty, let first = try header(at: 0) {
                rollBasisMs = min(first.maxTimestamp, now)
            }
            return scan
        } catch let error as StorageIOError {
            unload()
            throw LogError(error)
        } catch let error as LogError {
            unload()
            throw error
        } catch {
            unload()
            throw LogError.io(StorageIOError(errno: 5, operation: "load", path: logPath))
        }
    }

    /// Cuts the files of this (unloaded) segment at `position`, a batch boundary,
    /// keeping the index entries of the batches before it, all synced. The caller
    /// then loads it as the active segment.
    func truncateFiles(
        toPosition position: Int64, nextOffset newNextOffset: Int64, keeping kept: SegmentIndexer,
        fileSystem: any StorageFileSystem
    ) throws(StorageIOError) {
        precondition(!isLoaded, "truncate files of a loaded segment")
        var offsetIndex = kept.offsetIndex
        offsetIndex.removeEntries(fromPosition: position)
        var timeIndex = kept.timeIndex
        timeIndex.removeEntries(fromRelativeOffset: UInt32(clamping: newNextOffset - baseOffset))
        // A sealed segment's closing entry points past the last offset-index entry;
        // as the active segment it must not (loading recomputes that tail anyway).
        while let last = timeIndex.last, last.relativeOffset > offsetIndex.last?.relativeOffset ?? 0 {
            timeIndex.removeEntries(fromRelativeOffset: last.relativeOffset)
        }
        let log = try fileSystem.open(logPath, mode: .readWrite)
        defer { log.close() }
        try log.truncate(to: position)
        try log.sync()
        for (path, bytes) in [(indexPath, offsetIndex.encoded()), (timeIndexPath, timeIndex.encoded())] {
            let file = try openOrCreate(path, fileSystem)
            defer { file.close() }
            try file.truncate(to: 0)
            try file.writeFully(bytes, at: 0)
            try file.sync()
        }
        nextOffset = newNextOffset
    }

    func rewriteActiveIndexes(_ fileSystem: any StorageFileSystem) throws(StorageIOError) {
        for (path, bytes) in [(indexPath, indexer.offsetIndex.encoded()), (timeIndexPath, indexer.timeIndex.encoded())] {
            let file = try openOrCreate(path, fileSystem)
            defer { file.close() }
            try file.truncate(to: 0)
            try file.writeFully(bytes, at: 0)
            try file.sync()
        }
    }

    /// Creates the three files of a new, empty active segment (the caller syncs the directory).
    static func create(
        directory: String, baseOffset: Int64, indexIntervalBytes: Int, fileSystem: any StorageFileSystem
    ) throws(StorageIOError) -> Segment {
        let segment = Segment(
            directory: directory, baseOffset: baseOffset, nextOffset: baseOffset, indexIntervalBytes: indexIntervalBytes)
        let log = try fileSystem.open(segment.logPath, mode: .createNew)
        segment.log = SegmentFile(log)
        segment.size = 0
        segment.maxTimestamp = Int64.min
        do throws(StorageIOError) {
            // Created now so the caller's directory sync covers them; closed at once.
            try openOrCreate(segment.indexPath, fileSystem).close()
            try openOrCreate(segment.timeIndexPath, fileSystem).close()
            segment.activeFileSystem = fileSystem
        } catch {
            segment.unload()
            throw error
        }
        return segment
    }
}

/// An index file's bytes, or nil if it is missing or unreadable (it is then rebuilt).
private func readIndexFile(_ path: String, _ fileSystem: any StorageFileSystem) -> [UInt8]? {
    guard fileSystem.fileExists(path), let file = try? fileSystem.open(path, mode: .readOnly) else { return nil }
    defer { file.close() }
    return try? file.readAll()
}

func openOrCreate(_ path: String, _ fileSystem: any StorageFileSystem) throws(StorageIOError) -> any StorageFile {
    if fileSystem.fileExists(path) { return try fileSystem.open(path, mode: .readWrite) }
    return try fileSystem.open(path, mode: .createNew)
}
