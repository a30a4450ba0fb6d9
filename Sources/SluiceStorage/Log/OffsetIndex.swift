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
struct OffsetIndex: SparseIndex, Equatable {
    struct Entry: Equatable {
        var relativeOffset: UInt32
        var position: UInt32
    }

    static let entrySize = 8
    private(set) var entries: [Entry]

    init(checkedEntries: [Entry]) { entries = checkedEntries }

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
        let count = prefixCount { $0.relativeOffset <= relativeOffset }
        return count == 0 ? Entry(relativeOffset: 0, position: 0) : entries[count - 1]
    }

    /// Drops entries for batches at or after `position` (a truncation).
    mutating func removeEntries(fromPosition position: Int64) {
        while let last = entries.last, Int64(last.position) >= position { entries.removeLast() }
    }

    static func encode(_ entry: Entry, into bytes: inout [UInt8]) {
        appendBigEndian(entry.relativeOffset, to: &bytes)
        appendBigEndian(entry.position, to: &bytes)
    }

    static func decodeEntry(_ bytes: [UInt8], at offset: Int) -> Entry {
        Entry(relativeOffset: loadBigEndian(bytes, at: offset), position: loadBigEndian(bytes, at: offset + 4))
    }

    /// Decodes an index file, or nil when it is not a consistent index of a segment
    /// of `logSize` bytes spanning `offsetSpan` offsets.
    static func decode(_ bytes: [UInt8], logSize: Int64, offsetSpan: Int64) -> OffsetIndex? {
        decode(bytes) { entry, last in
            if let last, entry.relativeOffset <= last.relativeOffset || entry.position <= last.position { return false }
            return Int64(entry.position) < logSize && Int64(entry.relativeOffset) < offsetSpan
        }
    }
}
