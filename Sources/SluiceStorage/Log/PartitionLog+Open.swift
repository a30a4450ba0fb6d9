import Glibc
public import NIOPosix
import Synchronization

/// Opening a log directory, with crash recovery.
///
/// After a clean close (the `clean-shutdown` marker exists: close writes it last,
/// after syncing everything) the log opens without scanning: only the batches of
/// the active segment after its last index entry are read. Otherwise every segment
/// that reaches past the checkpointed recovery point is checked batch by batch
/// (both CRCs, lengths, offset continuity) and its indexes rebuilt where they
/// differ. In the last segment a bad batch at or above the recovery point is a torn
/// write: the tail from it on is cut. Anywhere else (a sealed segment, or below the
/// recovery point) it is corruption and `open` throws `corruptSegment`: data that
/// was acknowledged durable is never dropped silently.
///
/// The marker stays until the first change to the log's files (an append, a roll, a
/// retention deletion, a truncation: `leaveCleanState` removes it and syncs the directory
/// first), so a crash from then on counts as unclean, while a partition that is opened and
/// closed again without a write costs no sync at either end: with 10,000 idle partitions
/// that is the difference between seconds and a minute of restart and shutdown.
extension PartitionLog {
    /// The length bound used when verifying stored batches: any length the format
    /// allows, so lowering `maxBatchBytes` never makes old batches unreadable.
    static let maxStoredRecordsLength = Int(UInt32.max)

    public static func open(
        directory: String, fileSystem: any StorageFileSystem = PosixFileSystem(), config: LogConfig = LogConfig(),
        clock: any LogClock = SystemLogClock(), createIfMissing: Bool = true,
        syncThreads: NIOThreadPool = SyncThreads.shared
    ) throws(LogError) -> PartitionLog {
        if let problem = config.validate() { throw LogError.invalidConfiguration(problem) }
        // From here on every sync, recovery's included, goes through the log's gate.
        let gate = SyncGate()
        let fileSystem = SyncGatedFileSystem(inner: fileSystem, gate: gate)
        var report = LogRecoveryReport(cleanShutdown: false)
        let names = try listOrCreate(directory, fileSystem: fileSystem, createIfMissing: createIfMissing)
        var segments = try discoverSegments(
            directory: directory, names: names, fileSystem: fileSystem, config: config, report: &report)
        report.cleanShutdown = names.contains(cleanShutdownMarker)
        let storedCheckpoint = try readCheckpoint(directory: directory, names: names, fileSystem: fileSystem)
        report.created = segments.isEmpty && storedCheckpoint == nil
        var checkpoint = storedCheckpoint
            ?? LogCheckpoint(logStartOffset: segments.first?.baseOffset ?? 0, recoveryPoint: segments.first?.baseOffset ?? 0)

        // Segments wholly below the log start are left from an interrupted retention.
        var directoryChanged = false
        while segments.count > 1 && segments[1].baseOffset <= checkpoint.logStartOffset {
            let doomed = segments.removeFirst()
            do throws(StorageIOError) {
                for path in [doomed.logPath, doomed.indexPath, doomed.timeIndexPath] where fileSystem.fileExists(path) {
                    try fileSystem.remove(path)
                    report.filesRemoved.append(path)
                    directoryChanged = true
                }
            } catch {
                throw LogError(error)
            }
        }
        do throws(StorageIOError) {
            if segments.isEmpty {
                let fresh = try Segment.create(
                    directory: directory, baseOffset: checkpoint.logStartOffset,
                    indexIntervalBytes: config.indexIntervalBytes, fileSystem: fileSystem)
                fresh.unload()
                segments.append(fresh)
                directoryChanged = true
            }
            // After a clean close the directory was synced and nothing in it changed since.
            if directoryChanged || !report.cleanShutdown { try fileSystem.syncDirectory(directory) }
        } catch {
            throw LogError(error)
        }
        checkpoint.logStartOffset = max(checkpoint.logStartOffset, segments[0].baseOffset)
        checkpoint.recoveryPoint = max(checkpoint.recoveryPoint, checkpoint.logStartOffset)

        let now = clock.nowMilliseconds()
        if report.cleanShutdown {
            try openActive(segments, fullCheck: false, recoveryPoint: checkpoint.recoveryPoint,
                           fileSystem: fileSystem, now: now, report: &report)
        } else {
            try recover(segments, directory: directory, recoveryPoint: checkpoint.recoveryPoint,
                        fileSystem: fileSystem, now: now, report: &report)
        }
        guard let logEnd = segments.last?.nextOffset else { preconditionFailure("a log has at least one segment") }
        let checkpointNeeded = !report.cleanShutdown || checkpoint.recoveryPoint != logEnd
        let state = LogState(
            segments: segments, logStartOffset: checkpoint.logStartOffset, recoveryPoint: logEnd,
            highWatermarkRule: config.replicated ? .replicated : HighWatermarkRule(config.fsyncPolicy),
            ownEndIsDurable: config.fsyncPolicy == .always,
            replicatedStart: checkpoint.highWatermark ?? checkpoint.logStartOffset,
            waitLimit: config.maxWatermarkWaits)
        let log = PartitionLog(
            directory: directory, config: config, fileSystem: fileSystem, syncGate: gate, clock: clock,
            syncThreads: syncThreads, state: state, recovery: report)
        try log.finishOpening(checkpointNeeded: checkpointNeeded)
        return log
    }

    /// Epochs, checkpoints and marker: the steps that need the constructed log.
    private func finishOpening(checkpointNeeded: Bool) throws(LogError) {
        try state.withLock { (s) throws(LogError) in
            do {
                s.lastLeaderEpoch = try lastLeaderEpoch(&s)
                let epochsNeeded = s.keepsLeaderEpochs ? try openLeaderEpochs(&s) : false
                // A checkpoint to write is a change: the marker goes first.
                s.cleanMarkerPresent = fileSystem.fileExists(directory + "/" + PartitionLog.cleanShutdownMarker)
                if checkpointNeeded || epochsNeeded { try leaveCleanState(&s) }
                if checkpointNeeded { try writeCheckpoint(s) }
                if epochsNeeded { try writeLeaderEpochs(s.epochs) }
            } catch let error as StorageIOError {
                s.isClosed = true
                for segment in s.segments { segment.unload() }
                throw LogError(error)
            } catch let error as LogError {
                s.isClosed = true
                for segment in s.segments { segment.unload() }
                throw error
            } catch {
                preconditionFailure("unexpected error \(error)")
            }
        }
    }

    private static func listOrCreate(
        _ directory: String, fileSystem: any StorageFileSystem, createIfMissing: Bool
    ) throws(LogError) -> [String] {
        if !fileSystem.fileExists(directory) {
            guard createIfMissing else { throw LogError.directoryMissing(directory) }
            do throws(StorageIOError) {
                try fileSystem.createDirectory(directory)
                // Make the new directory's own entry durable in its parent.
                if let slash = directory.lastIndex(of: "/"), slash != directory.startIndex {
                    try fileSystem.syncDirectory(String(directory[..<slash]))
                }
            } catch {
                throw LogError(error)
            }
        }
        do throws(StorageIOError) {
            return try fileSystem.listDirectory(directory)
        } catch {
            if error.errno == ENOENT { throw LogError.directoryMissing(directory) }
            throw LogError(error)
        }
    }

    /// Segments from the directory listing, removing temporary files and index files
    /// whose log is gone (both are debris of a crash).
    private static func discoverSegments(
        directory: String, names: [String], fileSystem: any StorageFileSystem, config: LogConfig,
        report: inout LogRecoveryReport
    ) throws(LogError) -> [Segment] {
        let bases = names.compactMap { Segment.baseOffset(fromFileName: $0, suffix: Segment.logSuffix) }.sorted()
        let known = Set(bases)
        for name in names {
            let orphan = [Segment.indexSuffix, Segment.timeIndexSuffix].contains { suffix in
                Segment.baseOffset(fromFileName: name, suffix: suffix).map { !known.contains($0) } ?? false
            }
            guard name.hasSuffix(".tmp") || orphan else { continue }
            do throws(StorageIOError) {
                try fileSystem.remove(directory + "/" + name)
            } catch {
                throw LogError(error)
            }
            report.filesRemoved.append(directory + "/" + name)
        }
        return bases.indices.map { index in
            let next = index + 1 < bases.count ? bases[index + 1] : bases[index]
            return Segment(
                directory: directory, baseOffset: bases[index], nextOffset: next,
                indexIntervalBytes: config.indexIntervalBytes)
        }
    }

    private static func readCheckpoint(
        directory: String, names: [String], fileSystem: any StorageFileSystem
    ) throws(LogError) -> LogCheckpoint? {
        guard names.contains(LogCheckpoint.fileName) else { return nil }
        let path = directory + "/" + LogCheckpoint.fileName
        let bytes: [UInt8]
        do throws(StorageIOError) {
            let file = try fileSystem.open(path, mode: .readOnly)
            defer { file.close() }
            bytes = try file.readAll()
        } catch {
            throw LogError(error)
        }
        switch LogCheckpoint.decode(bytes) {
        case .success(let checkpoint): return checkpoint
        case .failure(let problem): throw LogError.corruptCheckpoint(path: path, reason: problem.reason)
        }
    }

    /// Checks every segment reaching past the recovery point; see the type comment.
    private static func recover(
        _ segments: [Segment], directory: String, recoveryPoint: Int64, fileSystem: any StorageFileSystem, now: Int64,
        report: inout LogRecoveryReport
    ) throws(LogError) {
        for segment in segments.dropLast() where segment.nextOffset > recoveryPoint {
            let rebuilt = try segment.loadSealed(
                fileSystem: fileSystem, directory: directory, maxRecordsLength: maxStoredRecordsLength, fullCheck: true)
            segment.unload()
            report.segmentsChecked += 1
            if rebuilt { report.indexesRebuilt += 1 }
        }
        try openActive(segments, fullCheck: true, recoveryPoint: recoveryPoint,
                       fileSystem: fileSystem, now: now, report: &report)
    }

    /// Loads the active segment, cutting a torn tail after an unclean shutdown and
    /// refusing anything else that fails verification; after an unclean shutdown, syncs
    /// what it keeps.
    private static func openActive(
        _ segments: [Segment], fullCheck: Bool, recoveryPoint: Int64, fileSystem: any StorageFileSystem, now: Int64,
        report: inout LogRecoveryReport
    ) throws(LogError) {
        guard let active = segments.last else { preconditionFailure("a log has at least one segment") }
        let scan = try active.loadActive(
            fileSystem: fileSystem, maxRecordsLength: maxStoredRecordsLength, fullCheck: fullCheck, now: now)
        if fullCheck { report.segmentsChecked += 1 }
        if scan.indexesRewritten { report.indexesRebuilt += 1 }
        if let defect = scan.defect {
            // A torn write can only be above what was synced, and only after a crash.
            guard fullCheck, scan.nextOffset >= recoveryPoint else {
                active.unload()
                throw LogError.corruptSegment(path: active.logPath, position: scan.validEnd, reason: defect)
            }
            do throws(StorageIOError) {
                guard let log = active.log, let size = active.size else { preconditionFailure("active is loaded") }
                try log.file.truncate(to: scan.validEnd)
                report.bytesTruncated = size - scan.validEnd
                report.truncationReason = defect
                active.size = scan.validEnd
            } catch {
                active.unload()
                throw LogError(error)
            }
        }
        if scan.nextOffset < recoveryPoint {
            active.unload()
            throw LogError.corruptSegment(
                path: active.logPath, position: scan.validEnd,
                reason: "log ends at offset \(scan.nextOffset), below the recovery point \(recoveryPoint)")
        }
        // What survived a crash may still sit only in the page cache: sync it before
        // counting it durable. After a clean close it was synced, and an index the open
        // rewrote was synced by the rewrite.
        guard fullCheck else { return }
        do throws(StorageIOError) {
            try active.syncAll()
        } catch {
            active.unload()
            throw LogError(error)
        }
    }
}
