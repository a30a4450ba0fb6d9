/// The sparse offset index of one segment, file `<baseOffset>.index`.
///
/// ```
///  per entry (8 bytes, big-endian, no header):
///   0  4  relativeOffset  a batch's base offset minus the segment's base offset
///   4  4  position        byte position of that batch in the .log file
/// ```
/// One entry per `indexIntervalBytes` of batches (the first batch of a segment gets
/// none: position 0 is implied), both columns strictly increasing. Not checksummed:
/// it is derived data. After an unclean shutdown it is rebuilt from the segment for
/// every segment recovery scans, and a sealed segment's index that fails the
/// ordering checks on load is rebuilt too, so a stale index costs a scan, never a
/// wrong answer. A lookup is a binary search for the last entry at or below the
/// target, then a forward scan of at most about `indexIntervalBytes` plus one batch.
/// Kept in memory for the active segment (whose entries reach the file when it is
/// sealed or the log is closed) and for sealed segments that are open.
struct OffsetIndex: Equatable {
    struct Entry: Equatable {
        var relativeOffset: UInt32
        var position: UInt32
    }

    static let entrySize = 8
    private(set) var entries: [Entry] = []

    var last: Entry? { entries.last }

    mutating func append(relativeOffset: UInt32, position: UInt32) {
        if let last = entries.last {
            precondition(relativeOffset > last.relativeOffset && position > last.position, "index entries must increase")
        }
        entries.append(Entry(relativeOffset: relativeOffset, position: position))
    }

    /// The last entry whose relative offset is at most `relativeOffset`; the implied
    /// entry (0, 0) of the segment's first batch if none. Readers also use its relative
    /// offset: the batch at that position must start there.
    func entry(atOrBefore relativeOffset: UInt32) -> Entry {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].relativeOffset <= relativeOffset { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? Entry(relativeOffset: 0, position: 0) : entries[low - 1]
    }

    /// Drops entries for batches at or after `position` (a truncation).
    mutating func removeEntries(fromPosition position: Int64) {
        while let last = entries.last, Int64(last.position) >= position { entries.removeLast() }
    }

    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * OffsetIndex.entrySize)
        for entry in entries { OffsetIndex.encode(entry, into: &bytes) }
        return bytes
    }

    static func encode(_ entry: Entry, into bytes: inout [UInt8]) {
        appendBigEndian(entry.relativeOffset, to: &bytes)
        appendBigEndian(entry.position, to: &bytes)
    }

    /// Decodes an index file, or nil when it is not a consistent index of a segment
    /// of `logSize` bytes spanning `offsetSpan` offsets.
    static func decode(_ bytes: [UInt8], logSize: Int64, offsetSpan: Int64) -> OffsetIndex? {
        guard bytes.count % entrySize == 0 else { return nil }
        var index = OffsetIndex()
        var at = 0
        while at < bytes.count {
            let entry = Entry(relativeOffset: loadBigEndian(bytes, at: at), position: loadBigEndian(bytes, at: at + 4))
            if let last = index.entries.last,
               entry.relativeOffset <= last.relativeOffset || entry.position <= last.position { return nil }
            if Int64(entry.position) >= logSize || Int64(entry.relativeOffset) >= offsetSpan { return nil }
            index.entries.append(entry)
            at += entrySize
        }
        return index
    }
}
