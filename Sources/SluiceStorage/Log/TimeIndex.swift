/// The time index of one segment, file `<baseOffset>.timeindex`.
///
/// ```
///  per entry (12 bytes, big-endian, no header):
///   0  8  timestamp       the largest batch maxTimestamp in the segment so far (ms)
///   8  4  relativeOffset  base offset of a batch, minus the segment's base offset:
///                         every batch before it has maxTimestamp <= timestamp
/// ```
/// An entry is added with each offset-index entry, and once more when the segment is
/// sealed, but only when the running maximum grew: timestamps strictly increase even
/// when producers' clocks do not, so a binary search is valid. The last entry of a
/// sealed segment is its largest timestamp (what retention by age compares).
/// Derived data like the offset index: checked on load, rebuilt when inconsistent.
struct TimeIndex: SparseIndex, Equatable {
    struct Entry: Equatable {
        var timestamp: Int64
        var relativeOffset: UInt32
    }

    static let entrySize = 12
    private(set) var entries: [Entry]

    init(checkedEntries: [Entry]) { entries = checkedEntries }

    /// Appends when `timestamp` is a new maximum; returns whether it did.
    @discardableResult
    mutating func appendIfGreater(timestamp: Int64, relativeOffset: UInt32) -> Bool {
        if let last = entries.last {
            guard timestamp > last.timestamp else { return false }
            precondition(relativeOffset >= last.relativeOffset, "time index offsets must not go back")
        }
        entries.append(Entry(timestamp: timestamp, relativeOffset: relativeOffset))
        return true
    }

    /// The relative offset to start scanning from for the first batch with
    /// maxTimestamp >= `timestamp`: the last entry with a smaller timestamp (every
    /// batch before its offset is too old), or 0.
    func scanStart(forTimestamp timestamp: Int64) -> UInt32 {
        let count = prefixCount { $0.timestamp < timestamp }
        return count == 0 ? 0 : entries[count - 1].relativeOffset
    }

    /// Drops entries pointing at or after `relativeOffset` (a truncation).
    mutating func removeEntries(fromRelativeOffset relativeOffset: UInt32) {
        while let last = entries.last, last.relativeOffset >= relativeOffset { entries.removeLast() }
    }

    /// Whether this could be the time index of an active segment with `offsetIndex`:
    /// entries are only added together with offset-index entries, and the first
    /// offset-index entry always adds one.
    func pointsAtEntries(of offsetIndex: OffsetIndex) -> Bool {
        guard !offsetIndex.entries.isEmpty else { return entries.isEmpty }
        guard !entries.isEmpty else { return false }
        var cursor = 0
        for entry in entries {
            while cursor < offsetIndex.entries.count && offsetIndex.entries[cursor].relativeOffset < entry.relativeOffset {
                cursor += 1
            }
            guard cursor < offsetIndex.entries.count, offsetIndex.entries[cursor].relativeOffset == entry.relativeOffset else {
                return false
            }
        }
        return true
    }

    static func encode(_ entry: Entry, into bytes: inout [UInt8]) {
        appendBigEndian(entry.timestamp, to: &bytes)
        appendBigEndian(entry.relativeOffset, to: &bytes)
    }

    static func decodeEntry(_ bytes: [UInt8], at offset: Int) -> Entry {
        Entry(timestamp: loadBigEndian(bytes, at: offset), relativeOffset: loadBigEndian(bytes, at: offset + 8))
    }

    /// Decodes a time index file, or nil when it is not a consistent time index of a
    /// segment spanning `offsetSpan` offsets.
    static func decode(_ bytes: [UInt8], offsetSpan: Int64) -> TimeIndex? {
        decode(bytes) { entry, last in
            if let last, entry.timestamp <= last.timestamp || entry.relativeOffset < last.relativeOffset { return false }
            return Int64(entry.relativeOffset) < offsetSpan
        }
    }
}
