/// The indexing rule, in one place so that appending and rebuilding after a crash
/// produce byte-identical index files (recovery compares them to decide whether to
/// rewrite). Feed it every batch of a segment in order.
struct SegmentIndexer: Equatable {
    let baseOffset: Int64
    let intervalBytes: Int
    var offsetIndex = OffsetIndex()
    var timeIndex = TimeIndex()
    /// Bytes of batches since the last offset-index entry (or the segment start).
    var bytesSinceIndexEntry = 0
    /// Largest maxTimestamp seen; Int64.min while the segment is empty.
    var maxTimestamp = Int64.min
    /// Base offset of the last batch added.
    var lastBatchBaseOffset: Int64?

    init(baseOffset: Int64, intervalBytes: Int) {
        self.baseOffset = baseOffset
        self.intervalBytes = intervalBytes
    }

    /// Indexes the batch stored at `position`; returns the entries it added, which
    /// the caller appends to the index files.
    mutating func add(_ header: BatchHeader, at position: Int64) -> (OffsetIndex.Entry?, TimeIndex.Entry?) {
        let relative = relativeOffset(header.baseOffset)
        maxTimestamp = max(maxTimestamp, header.maxTimestamp)
        lastBatchBaseOffset = header.baseOffset
        var added: (OffsetIndex.Entry?, TimeIndex.Entry?) = (nil, nil)
        if bytesSinceIndexEntry >= intervalBytes {
            offsetIndex.append(relativeOffset: relative, position: UInt32(position))
            added.0 = offsetIndex.last
            if timeIndex.appendIfGreater(timestamp: maxTimestamp, relativeOffset: relative) { added.1 = timeIndex.last }
            bytesSinceIndexEntry = 0
        }
        bytesSinceIndexEntry += header.storedSize
        return added
    }

    /// The closing time-index entry of a sealed segment: its largest timestamp.
    mutating func seal() -> TimeIndex.Entry? {
        guard let last = lastBatchBaseOffset else { return nil }
        return timeIndex.appendIfGreater(timestamp: maxTimestamp, relativeOffset: relativeOffset(last))
            ? timeIndex.last : nil
    }

    func relativeOffset(_ offset: Int64) -> UInt32 {
        precondition(offset >= baseOffset && offset - baseOffset <= Int64(UInt32.max), "offset outside the segment")
        return UInt32(offset - baseOffset)
    }
}
