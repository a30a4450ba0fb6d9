import NIOCore

/// One segment: `<baseOffset>.log` holding stored batches back to back (header and
/// records, see `BatchHeader`), with its `.index` and `.timeindex`. The base offset,
/// zero-padded to 20 digits so names sort, is the offset of its first batch.
///
/// Not thread-safe: every method is called with the owning `PartitionLog`'s lock
/// held. A sealed segment may be unloaded (no file open, indexes dropped) and is
/// loaded again on demand; the active segment, the last one, is always loaded and
/// is the only one written.
final class Segment {
    static let logSuffix = ".log"
    static let indexSuffix = ".index"
    static let timeIndexSuffix = ".timeindex"

    let baseOffset: Int64
    /// The directory and zero-padded base offset its three files' names share.
    let pathStem: String
    /// Kept, not derived like the index paths, because every read plan names it.
    let logPath: String
    var indexPath: String { pathStem + Segment.indexSuffix }
    var timeIndexPath: String { pathStem + Segment.timeIndexSuffix }
    /// The offset after its last batch. For an unloaded sealed segment this is the
    /// next segment's base offset (offsets are contiguous across segments).
    var nextOffset: Int64
    /// Known once loaded, then kept when unloaded (sealed segments do not change).
    var size: Int64?
    var maxTimestamp: Int64?
    /// Last batch's leader epoch, once known.
    var lastLeaderEpoch: Int32?
    /// When the active segment's age starts, for rolling by age.
    var rollBasisMs: Int64?

    var log: SegmentFile?
    var indexer: SegmentIndexer
    /// Set while this is the active segment. Its index files are opened only to write
    /// and sync pending entries (on seal and on a clean close), never held open, so an
    /// idle partition costs one descriptor (its `.log`), not three.
    var activeFileSystem: (any StorageFileSystem)?
    /// Index entries already in the files. The active segment's entries are written
    /// when it is sealed or closed, not per append: after a crash recovery rebuilds
    /// them from the batches anyway, so writing them earlier would buy nothing.
    var offsetEntriesWritten = 0
    var timeEntriesWritten = 0

    var isLoaded: Bool { log != nil }
    var isEmpty: Bool { nextOffset == baseOffset }

    init(directory: String, baseOffset: Int64, nextOffset: Int64, indexIntervalBytes: Int) {
        self.baseOffset = baseOffset
        self.nextOffset = nextOffset
        pathStem = directory + "/" + Segment.fileStem(baseOffset)
        logPath = pathStem + Segment.logSuffix
        indexer = SegmentIndexer(baseOffset: baseOffset, intervalBytes: indexIntervalBytes)
    }

    static func fileStem(_ baseOffset: Int64) -> String {
        let digits = String(baseOffset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// The base offset a segment file name encodes, or nil for any other name.
    static func baseOffset(fromFileName name: String, suffix: String) -> Int64? {
        guard name.hasSuffix(suffix) else { return nil }
        let stem = name.dropLast(suffix.count)
        guard stem.count == 20, stem.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int64(stem)
    }

    // MARK: Writing (active segment)

    /// Appends one stored batch whose header is final (offsets, epoch, header CRC).
    /// On error nothing in memory changes; the caller fences the log.
    func append(_ header: BatchHeader, records: ByteBuffer) throws(StorageIOError) {
        precondition(Int(header.recordsLength) == records.readableBytes, "records length")
        try append(header) { (file, position) throws(StorageIOError) in
            try withUnsafeTemporaryAllocation(byteCount: BatchHeader.size, alignment: 8) { (scratch) throws(StorageIOError) in
                header.encode(into: scratch)
                try file.writeFully(UnsafeRawBufferPointer(scratch), at: position)
            }
            try records.withUnsafeReadableBytes { (raw) throws(StorageIOError) in
                try file.writeFully(raw, at: position + Int64(BatchHeader.size))
            }
        }
    }

    /// Appends one stored batch exactly as `stored` holds it (header and records, the
    /// header's CRC as given: a replica writes its leader's bytes, never a re-encoding).
    /// `header` is its decoded, checked header.
    func append(_ header: BatchHeader, stored: ByteBuffer) throws(StorageIOError) {
        precondition(header.storedSize == stored.readableBytes, "stored size")
        try append(header) { (file, position) throws(StorageIOError) in
            try stored.withUnsafeReadableBytes { (raw) throws(StorageIOError) in try file.writeFully(raw, at: position) }
        }
    }

    private func append(
        _ header: BatchHeader, write: (any StorageFile, Int64) throws(StorageIOError) -> Void
    ) throws(StorageIOError) {
        guard let log, let size else { preconditionFailure("append to an unloaded segment") }
        precondition(header.baseOffset == nextOffset, "offsets must be contiguous")
        try write(log.file, size)
        _ = indexer.add(header, at: size)
        self.size = size + Int64(header.storedSize)
        nextOffset = header.nextOffset
        maxTimestamp = indexer.maxTimestamp
        lastLeaderEpoch = header.leaderEpoch
    }

    /// Writes the index entries not yet in the files, one write per file.
    private func writePendingIndexEntries(_ indexFile: any StorageFile, _ timeIndexFile: any StorageFile) throws(StorageIOError) {
        offsetEntriesWritten = try indexer.offsetIndex.writeEntries(from: offsetEntriesWritten, to: indexFile)
        timeEntriesWritten = try indexer.timeIndex.writeEntries(from: timeEntriesWritten, to: timeIndexFile)
    }

    /// Seals the active segment: closing time-index entry, then the log and both
    /// indexes fdatasynced, index files closed. The log file stays open for reads.
    func seal() throws(StorageIOError) {
        _ = indexer.seal()
        try syncAll()
        activeFileSystem = nil
    }

    /// Writes pending index entries and syncs the log and index files (a clean close),
    /// in that order: the log before the entries that point into it.
    func syncAll() throws(StorageIOError) {
        guard let fileSystem = activeFileSystem else {
            try log?.file.sync()
            return
        }
        let indexFile = try openOrCreate(indexPath, fileSystem)
        defer { indexFile.close() }
        let timeIndexFile = try openOrCreate(timeIndexPath, fileSystem)
        defer { timeIndexFile.close() }
        try writePendingIndexEntries(indexFile, timeIndexFile)
        try log?.file.sync()
        try indexFile.sync()
        try timeIndexFile.sync()
    }

    /// Closes every file and drops the in-memory indexes; size and timestamps stay known.
    func unload() {
        log?.close()
        log = nil
        activeFileSystem = nil
        indexer = SegmentIndexer(baseOffset: baseOffset, intervalBytes: indexer.intervalBytes)
        offsetEntriesWritten = 0
        timeEntriesWritten = 0
    }

    // MARK: Reading

    /// The header stored at `position`, unverified; nil past the end.
    func header(at position: Int64) throws(LogError) -> BatchHeader? {
        guard let log, let size, position + Int64(BatchHeader.size) <= size else { return nil }
        let file = log.file
        do throws(StorageIOError) {
            return try withUnsafeTemporaryAllocation(byteCount: BatchHeader.size, alignment: 8) {
                (scratch) throws(StorageIOError) -> BatchHeader? in
                let read = try file.readFully(into: scratch, at: position)
                guard read == BatchHeader.size, let header = BatchHeader.decode(UnsafeRawBufferPointer(scratch)) else {
                    return nil
                }
                return header
            }
        } catch {
            throw LogError(error)
        }
    }

    /// Position of the batch holding `offset` (which must lie in this segment), found
    /// by an index lookup and a short forward scan, with that batch's header. Every
    /// header walked is checked (`checkedHeader`): a damaged one would send the scan
    /// to a wrong position or hand out a changed field.
    ///
    /// The index is derived data without a checksum, so when the scan from its entry
    /// fails, the segment is scanned again from its start: an entry that does not point
    /// at the batch it names costs a scan, never a failed read. A damaged batch header
    /// on the way fails that scan too.
    func locate(offset: Int64) throws(LogError) -> (position: Int64, header: BatchHeader)? {
        let entry = indexer.offsetIndex.entry(atOrBefore: indexer.relativeOffset(offset))
        do throws(LogError) {
            return try scan(to: offset, from: Int64(entry.position), expected: baseOffset + Int64(entry.relativeOffset))
        } catch {
            guard entry.position > 0 else { throw error }
            return try scan(to: offset, from: 0, expected: baseOffset)
        }
    }

    /// Walks checked headers from `position`, where the batch with base offset `expected`
    /// must start, to the batch holding `offset`.
    private func scan(
        to offset: Int64, from position: Int64, expected: Int64
    ) throws(LogError) -> (position: Int64, header: BatchHeader)? {
        var position = position
        var expected = expected
        while let header = try checkedHeader(at: position, expectedBaseOffset: expected) {
            if header.lastOffset >= offset { return (position, header) }
            position += Int64(header.storedSize)
            expected = header.nextOffset
        }
        return nil
    }

    /// The header stored at `position`, checked (`checkHeader`); nil past the end.
    /// A header that fails is `corruptSegment`: whatever the segment, the bytes read
    /// were whole when the read was planned, so a torn write cannot explain them.
    func checkedHeader(at position: Int64, expectedBaseOffset: Int64) throws(LogError) -> BatchHeader? {
        guard let log, let size, position + Int64(BatchHeader.size) <= size else { return nil }
        let file = log.file
        let checked: Result<BatchHeader, HeaderDamage>
        do throws(StorageIOError) {
            checked = try withUnsafeTemporaryAllocation(byteCount: BatchHeader.size, alignment: 8) {
                (scratch) throws(StorageIOError) -> Result<BatchHeader, HeaderDamage> in
                let read = try file.readFully(into: scratch, at: position)
                guard read == BatchHeader.size else { return .failure(HeaderDamage("\(BatchDefect.truncated)")) }
                return Self.checkHeader(UnsafeRawBufferPointer(scratch), expectedBaseOffset: expectedBaseOffset)
            }
        } catch {
            throw LogError(error)
        }
        switch checked {
        case .success(let header): return header
        case .failure(let damage):
            throw Self.damagedHeader(path: logPath, position: position, expected: expectedBaseOffset, damage)
        }
    }

    /// A stored header that passes every check a reader can make on it alone (format
    /// version, reserved bytes, header CRC, field relations) and carries the base offset
    /// its position implies: the segment's base offset, an index entry's, or the end of
    /// the batch before it. The second check catches what a CRC cannot (a whole header
    /// copied from elsewhere).
    static func checkHeader(_ raw: UnsafeRawBufferPointer, expectedBaseOffset: Int64) -> Result<BatchHeader, HeaderDamage> {
        switch BatchHeader.checked(raw, maxRecordsLength: PartitionLog.maxStoredRecordsLength) {
        case .success(let header) where header.baseOffset == expectedBaseOffset: return .success(header)
        case .success(let header): return .failure(HeaderDamage("its base offset is \(header.baseOffset)"))
        case .failure(let defect): return .failure(HeaderDamage("\(defect)"))
        }
    }

    static func checkHeader(_ buffer: ByteBuffer, at index: Int, expectedBaseOffset: Int64) -> Result<BatchHeader, HeaderDamage> {
        guard let view = buffer.viewBytes(at: index, length: BatchHeader.size) else {
            return .failure(HeaderDamage("\(BatchDefect.truncated)"))
        }
        return view.withUnsafeBytes { checkHeader($0, expectedBaseOffset: expectedBaseOffset) }
    }

    /// The error for a stored header that failed `checkHeader`: DATA_LOSS to a
    /// subscriber, naming the segment file, the byte and the offset the batch holds.
    static func damagedHeader(path: String, position: Int64, expected: Int64, _ damage: HeaderDamage) -> LogError {
        .corruptSegment(
            path: path, position: position,
            reason: "the header of the batch at offset \(expected) is damaged (\(damage.reason)); it is not served")
    }

    /// Plans reading whole batches from `position`: the first one whatever its
    /// size, then more while they fit in `maxBytes` and end before `endOffset`.
    func planRead(
        at position: Int64, first: BatchHeader, maxBytes: Int, endOffset: Int64, truncations: UInt64
    ) -> ReadPlan {
        guard let log, let size else { preconditionFailure("read from an unloaded segment") }
        return ReadPlan(
            file: log, path: logPath, position: position,
            length: Int(min(Int64(max(maxBytes, first.storedSize)), size - position)),
            firstBaseOffset: first.baseOffset, firstStoredSize: first.storedSize, endOffset: endOffset,
            truncations: truncations)
    }

    /// Base offset of the first batch in this segment whose maxTimestamp is at
    /// least `timestamp` (one time-index lookup, then a forward scan), or nil.
    func firstOffset(atOrAfterTimestamp timestamp: Int64) throws(LogError) -> Int64? {
        let startRelative = indexer.timeIndex.scanStart(forTimestamp: timestamp)
        guard var (position, header) = try locate(offset: baseOffset + Int64(startRelative)) else { return nil }
        while true {
            if header.maxTimestamp >= timestamp { return header.baseOffset }
            position += Int64(header.storedSize)
            guard let next = try checkedHeader(at: position, expectedBaseOffset: header.nextOffset) else { return nil }
            header = next
        }
    }
}

/// Why a stored header failed `Segment.checkHeader`.
struct HeaderDamage: Error, Sendable {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
