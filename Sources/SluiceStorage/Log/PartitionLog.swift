public import NIOCore
import NIOPosix
import SluiceChecksum
import Synchronization

/// The append-only log of one partition: a directory of segments (see `Segment`)
/// plus the `checkpoint` file (see `LogCheckpoint`) and, between a clean close and
/// the next open, the `clean-shutdown` marker.
///
/// Concurrency: a class with one lock around its state, usable from any thread or
/// task. Appends, reads and maintenance take the lock and do their (page-cache
/// speed) pread/pwrite under it. fdatasync never runs under it: one sync run at a
/// time per log, on a sync thread (`SyncThreads`), syncs the active segment while appends
/// continue, then reports every append the sync covered as durable in one go (group
/// commit). Under
/// `FsyncPolicy.always`, `append` suspends until then; `appendBuffered` returns at
/// once (having asked for the sync) and `waitUntilDurable` waits separately.
///
/// The log end, the durable end and the high watermark (`Watermarks.swift`) move under
/// the lock, and every wait for one of them is registered there too
/// (`wait(for:toCover:notify:)`, `WatermarkWaiters`).
///
/// Offsets are assigned here, contiguously from the log end. A write or sync
/// failure fences the log: every later append or flush fails with that error (the
/// kernel may have dropped the dirty pages, so retrying could acknowledge lost data).
/// Every sync goes through one `SyncGate`, so a sync under the lock (a roll's seal)
/// waits for the flusher's sync in flight, and after any failed sync no later sync
/// of the log's files succeeds: the durable offset and the recovery point never move
/// past bytes a failed sync may have dropped.
public final class PartitionLog: Sendable {
    public let directory: String
    /// The settings in force; `reconfigure` changes them while the log is open.
    public var config: LogConfig { settings.withLock { $0 } }
    let settings: Mutex<LogConfig>
    /// What opening found and repaired.
    public let recovery: LogRecoveryReport
    /// The file system the log was opened with, every sync gated by `syncGate`.
    let fileSystem: any StorageFileSystem
    let syncGate: SyncGate
    let clock: any LogClock
    /// Where the group-commit fdatasyncs run (`SyncThreads`).
    let syncThreads: NIOThreadPool
    let state: Mutex<LogState>
    /// `FsyncPolicy.always` (fixed while the log is open).
    let alwaysSyncs: Bool

    static let cleanShutdownMarker = "clean-shutdown"

    init(
        directory: String, config: LogConfig, fileSystem: SyncGatedFileSystem, syncGate: SyncGate,
        clock: any LogClock, syncThreads: NIOThreadPool, state: consuming sending LogState, recovery: LogRecoveryReport
    ) {
        self.syncThreads = syncThreads
        self.directory = directory
        self.settings = Mutex(config)
        self.fileSystem = fileSystem
        self.syncGate = syncGate
        self.clock = clock
        self.recovery = recovery
        self.alwaysSyncs = config.fsyncPolicy == .always
        self.state = Mutex(state)
        startIntervalFlusher()
    }

    deinit {
        // An abandoned (never closed) log: let its interval task end (a sync run holds
        // the log while it runs, so none is running now). Its files close as their
        // descriptors are released; the next open recovers as after a crash.
        state.withLock { $0.intervalFlusher?.cancel() }
    }

    // MARK: Offsets

    /// The first offset a read may ask for.
    public var logStartOffset: Int64 { state.withLock { $0.logStartOffset } }
    /// The offset the next appended batch gets.
    public var logEndOffset: Int64 { state.withLock { $0.logEndOffset } }
    /// Every offset below this has been fdatasynced (`watermarks.durableEnd`).
    public var durableEndOffset: Int64 { state.withLock { $0.durableEndOffset } }
    /// Nothing in the log's files has changed since it was opened after a clean close
    /// (its clean-shutdown marker is still there): what that close wrote still stands.
    public var isUnchangedSinceCleanClose: Bool { state.withLock { $0.cleanMarkerPresent } }
    /// Everything below it was synced with its indexes (checkpointed at roll and close).
    public var recoveryPoint: Int64 { state.withLock { $0.recoveryPoint } }
    /// Leader epoch of the last batch, -1 for a log that never held one.
    public var latestLeaderEpoch: Int32 { state.withLock { $0.lastLeaderEpoch } }
    /// The error that fenced the log, if any.
    public var fenceError: LogError? { state.withLock { $0.fenceError } }
    public var segmentCount: Int { state.withLock { $0.segments.count } }
    /// Base offsets of the segments, oldest first.
    public var segmentBaseOffsets: [Int64] { state.withLock { $0.segments.map(\.baseOffset) } }
    /// Bytes in all segments (sealed segments not yet loaded are loaded to learn it).
    public func sizeInBytes() throws(LogError) -> Int64 {
        try state.withLock { (s) throws(LogError) -> Int64 in
            var total: Int64 = 0
            for index in s.segments.indices { total += try segmentSize(&s, index) }
            return total
        }
    }

    // MARK: Append

    /// Appends one batch, assigning its offsets, and under `FsyncPolicy.always`
    /// returns only once an fdatasync covers it (shared with concurrent appends).
    public func append(_ batch: NewBatch, leaderEpoch: Int32) async throws(LogError) -> AppendResult {
        let result = try appendBuffered(batch, leaderEpoch: leaderEpoch)
        if config.fsyncPolicy == .always { try await waitUntilDurable(result.lastOffset) }
        return result
    }

    /// Appends one batch and returns once it is written to the page cache, whatever
    /// the policy. Checks the producer's records CRC and the size limit, asserts that the
    /// leader epoch does not go back (the caller's check: a precondition), then seals the
    /// header with its CRC.
    public func appendBuffered(_ batch: NewBatch, leaderEpoch: Int32) throws(LogError) -> AppendResult {
        let storedSize = BatchHeader.size + batch.records.readableBytes
        guard storedSize <= config.batchLimitBytes else {
            throw LogError.batchTooLarge(bytes: storedSize, limit: config.batchLimitBytes)
        }
        var header = BatchHeader(
            attributes: batch.attributes, recordsLength: UInt32(batch.records.readableBytes),
            recordCount: batch.recordCount, baseOffset: 0, firstTimestamp: batch.firstTimestamp,
            maxTimestamp: batch.maxTimestamp, producerId: batch.producerId, leaderEpoch: leaderEpoch,
            baseSequence: batch.baseSequence, producerEpoch: batch.producerEpoch, recordsCRC: batch.recordsCRC)
        if let defect = header.fieldDefect(maxRecordsLength: config.batchLimitBytes - BatchHeader.size) {
            throw LogError.invalidBatch(defect)
        }
        // Outside the lock: the CPU work of an append.
        guard CRC32C.checksum(batch.records) == batch.recordsCRC else {
            throw LogError.invalidBatch(.recordsChecksumMismatch)
        }
        let now = clock.nowMilliseconds()
        let result = try state.withLock { (s) throws(LogError) -> (appended: AppendResult, startsSyncRun: Bool) in
            try checkWritable(s)
            // Invariant: the leader epoch never goes back. A caller checks it under the lock
            // that orders its appends (the broker answers NOT_LEADER); an older epoch here
            // would store a batch of a term that already ended, so it stops loudly.
            precondition(leaderEpoch >= s.lastLeaderEpoch, "leader epoch \(leaderEpoch) is older than the log's \(s.lastLeaderEpoch)")
            header.baseOffset = s.logEndOffset
            guard header.baseOffset <= Int64.max - Int64(header.recordCount) else {
                throw LogError.invalidBatch(.invalidField("offsets would overflow"))
            }
            header.headerCRC = header.computeHeaderCRC()
            try store(&s, header, now: now) { (active) throws(StorageIOError) in
                try active.append(header, records: batch.records)
            }
            s.moveWatermarks()
            // Under `always` every append is synced by group commit whether or not anyone
            // waits (the high watermark follows the durable end); claimed here, under the
            // lock the run's last check takes, so no append is left unsynced.
            let startsSyncRun = alwaysSyncs && s.claimSyncRun()
            return (AppendResult(baseOffset: header.baseOffset, lastOffset: header.lastOffset), startsSyncRun)
        }
        if result.startsSyncRun { startSyncRun() }
        return result.appended
    }

    /// Under the lock: writes one batch whose header is final at the log end, rolling
    /// first if it is due, and notes its epoch (a new one in the leader-epoch checkpoint
    /// first); both kinds of append end here. A failed
    /// write fences the log. The caller moves the watermarks.
    func store(
        _ s: inout LogState, _ header: BatchHeader, now: Int64, write: (Segment) throws(StorageIOError) -> Void
    ) throws(LogError) {
        precondition(header.baseOffset == s.logEndOffset, "a batch is stored at the log end")
        try leaveCleanState(&s)
        if shouldRoll(s.active, adding: header, now: now) { try roll(&s) }
        // The epoch's entry is on disk before its first batch, so the file never lacks
        // an epoch the log holds (a crash can only leave an entry past the log end).
        var epochs = s.epochs
        if s.keepsLeaderEpochs, epochs.assign(epoch: header.leaderEpoch, startOffset: header.baseOffset) {
            try replaceLeaderEpochs(&s, with: epochs)
        }
        let active = s.active
        let previousEnd = s.logEndOffset
        do throws(StorageIOError) {
            try write(active)
        } catch {
            throw fence(&s, LogError(error))
        }
        if active.rollBasisMs == nil { active.rollBasisMs = now }
        assert(s.logEndOffset > previousEnd, "offsets strictly increase")
        s.lastLeaderEpoch = header.leaderEpoch
    }

    // MARK: Read

    /// Stored batches from the one holding `offset`: at least that whole batch even
    /// if it exceeds `maxBytes`, then more whole batches while they fit, from one
    /// segment, ending before `endOffset` if given (e.g. the high watermark). At the
    /// log end (or `endOffset`) the result is empty; below the log start or past the
    /// log end it is `offsetOutOfRange`. Walk the bytes with `StoredBatches`.
    ///
    /// The index lookup runs under the log's lock; the bulk pread does not, so
    /// subscribers reading do not hold up appends.
    public func read(from offset: Int64, maxBytes: Int, upTo endOffset: Int64? = nil) throws(LogError) -> LogReadResult {
        // A truncation between planning and reading invalidates the bytes: read again,
        // and after two such races, read under the lock.
        for _ in 0..<2 {
            let (result, plan) = try planRead(from: offset, maxBytes: maxBytes, upTo: endOffset)
            guard let plan else { return result }
            let outcome = Result { () throws(LogError) -> ByteBuffer in try plan.execute() }
            let stillValid = state.withLock { s in
                plan.file.endUse()
                return s.truncations == plan.truncations
            }
            guard stillValid else { continue }
            var complete = result
            complete.batches = try outcome.get()
            return complete
        }
        return try state.withLock { (s) throws(LogError) -> LogReadResult in
            var (result, plan) = try planReadLocked(&s, from: offset, maxBytes: maxBytes, upTo: endOffset)
            if let plan { result.batches = try plan.execute() }
            return result
        }
    }

    /// Under the lock: the read's answer when it needs no bytes, else a plan for
    /// them with its file marked in use (the caller ends that use).
    private func planRead(
        from offset: Int64, maxBytes: Int, upTo endOffset: Int64?
    ) throws(LogError) -> (LogReadResult, ReadPlan?) {
        try state.withLock { (s) throws(LogError) -> (LogReadResult, ReadPlan?) in
            let (result, plan) = try planReadLocked(&s, from: offset, maxBytes: maxBytes, upTo: endOffset)
            plan?.file.beginUse()
            return (result, plan)
        }
    }

    private func planReadLocked(
        _ s: inout LogState, from offset: Int64, maxBytes: Int, upTo endOffset: Int64?
    ) throws(LogError) -> (LogReadResult, ReadPlan?) {
        guard !s.isClosed else { throw LogError.closed }
        let logEnd = s.logEndOffset
        guard offset >= s.logStartOffset, offset <= logEnd else {
            throw LogError.offsetOutOfRange(offset: offset, logStartOffset: s.logStartOffset, logEndOffset: logEnd)
        }
        let result = LogReadResult(
            batches: ByteBuffer(), logStartOffset: s.logStartOffset, logEndOffset: logEnd,
            durableEndOffset: s.durableEndOffset)
        let limit = min(endOffset ?? logEnd, logEnd)
        guard offset < limit else { return (result, nil) }
        let index = s.segmentIndex(containing: offset)
        let segment = try loadedSegment(&s, index)
        guard let (position, first) = try segment.locate(offset: offset) else {
            throw LogError.corruptSegment(
                path: segment.logPath, position: segment.size ?? 0, reason: "offset \(offset) not found below its end")
        }
        guard first.nextOffset <= limit else { return (result, nil) }
        let plan = segment.planRead(
            at: position, first: first, maxBytes: maxBytes, endOffset: limit, truncations: s.truncations)
        return (result, plan)
    }

    /// The base offset of the first batch whose largest timestamp is at or after
    /// `timestamp` (so the first record at or after it is in that batch), or nil if
    /// every batch is older. One time-index lookup and a short scan per segment
    /// visited; segments whose largest timestamp is known to be older are skipped.
    public func offset(forTimestamp timestamp: Int64) throws(LogError) -> Int64? {
        try state.withLock { (s) throws(LogError) -> Int64? in
            guard !s.isClosed else { throw LogError.closed }
            for index in s.segments.indices {
                let segment = s.segments[index]
                if segment.isEmpty { continue }
                if let known = segment.maxTimestamp, known < timestamp { continue }
                let loaded = try loadedSegment(&s, index)
                if let found = try loaded.firstOffset(atOrAfterTimestamp: timestamp) {
                    return max(found, s.logStartOffset)
                }
            }
            return nil
        }
    }
}

/// A batch to append: the producer's fields and record bytes. The log sets the
/// base offset, leader epoch and header CRC.
public struct NewBatch: Sendable {
    public var attributes: UInt16
    public var recordCount: Int32
    public var firstTimestamp: Int64
    public var maxTimestamp: Int64
    public var producerId: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32
    /// The producer's CRC32C of `records`; the append is refused if it does not match.
    public var recordsCRC: UInt32
    public var records: ByteBuffer

    public init(
        attributes: UInt16 = 0, recordCount: Int32, firstTimestamp: Int64, maxTimestamp: Int64,
        producerId: Int64 = -1, producerEpoch: Int16 = -1, baseSequence: Int32 = -1,
        recordsCRC: UInt32, records: ByteBuffer
    ) {
        self.attributes = attributes
        self.recordCount = recordCount
        self.firstTimestamp = firstTimestamp
        self.maxTimestamp = maxTimestamp
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
        self.recordsCRC = recordsCRC
        self.records = records
    }
}

public struct AppendResult: Sendable, Equatable {
    public var baseOffset: Int64
    public var lastOffset: Int64
}

public struct LogReadResult: Sendable {
    /// Whole stored batches, header and records, as on disk.
    public var batches: ByteBuffer
    public var logStartOffset: Int64
    public var logEndOffset: Int64
    public var durableEndOffset: Int64
}

/// What `PartitionLog.open` found.
public struct LogRecoveryReport: Sendable, Equatable {
    public var cleanShutdown: Bool
    /// The log was created by this open: its directory held no segment and no checkpoint.
    /// A new log has no clean-shutdown marker either, and is not a recovery.
    public var created: Bool = false
    /// Segments checked batch by batch.
    public var segmentsChecked: Int = 0
    /// Bytes cut from the end of the last segment (a torn or corrupt tail).
    public var bytesTruncated: Int64 = 0
    /// Why the tail was cut, if it was.
    public var truncationReason: String?
    /// Segments whose index files were rewritten.
    public var indexesRebuilt: Int = 0
    /// Leftover files removed (temporary files, indexes without a log, segments below the log start).
    public var filesRemoved: [String] = []
}
