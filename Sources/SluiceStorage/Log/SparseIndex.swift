/// What a segment's two indexes (`OffsetIndex`, `TimeIndex`) share: fixed-size big-endian
/// entries without a header, strictly ordered by their key, searched by bisection, and
/// written and read back whole (the byte layouts are beside each index).
protocol SparseIndex {
    associatedtype Entry
    static var entrySize: Int { get }
    var entries: [Entry] { get }
    init(checkedEntries: [Entry])
    static func encode(_ entry: Entry, into bytes: inout [UInt8])
    static func decodeEntry(_ bytes: [UInt8], at offset: Int) -> Entry
}

extension SparseIndex {
    /// An empty index (a new segment's).
    init() { self.init(checkedEntries: []) }

    var last: Entry? { entries.last }

    /// How many entries, from the first, satisfy `isBefore`; the entries are ordered, so
    /// those that do are a prefix. A binary search.
    func prefixCount(where isBefore: (Entry) -> Bool) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if isBefore(entries[middle]) { low = middle + 1 } else { high = middle }
        }
        return low
    }

    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * Self.entrySize)
        for entry in entries { Self.encode(entry, into: &bytes) }
        return bytes
    }

    /// Writes the entries from the `written`th on to their place in `file`, in one
    /// write; returns how many entries the file now holds.
    func writeEntries(from written: Int, to file: any StorageFile) throws(StorageIOError) -> Int {
        guard written < entries.count else { return written }
        var bytes: [UInt8] = []
        for entry in entries[written...] { Self.encode(entry, into: &bytes) }
        try file.writeFully(bytes, at: Int64(written * Self.entrySize))
        return entries.count
    }

    /// Decodes an index file, or nil when it is not a whole number of entries or
    /// `follows(entry, previous)` refuses an entry (out of order, or pointing outside
    /// the segment): an index that is not consistent with its segment is rebuilt.
    static func decode(_ bytes: [UInt8], follows: (Entry, Entry?) -> Bool) -> Self? {
        guard bytes.count % entrySize == 0 else { return nil }
        var entries: [Entry] = []
        entries.reserveCapacity(bytes.count / entrySize)
        for at in stride(from: 0, to: bytes.count, by: entrySize) {
            let entry = decodeEntry(bytes, at: at)
            guard follows(entry, entries.last) else { return nil }
            entries.append(entry)
        }
        return Self(checkedEntries: entries)
    }
}
