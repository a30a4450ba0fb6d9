public import NIOCore
import SluiceChecksum

/// One batch as stored, viewed inside bytes returned by `PartitionLog.read`: the
/// decoded header plus slices of the same buffer (no copy, no record decoding).
public struct StoredBatch: Sendable {
    public let header: BatchHeader
    /// Header and records exactly as stored (what a subscriber is sent).
    public let bytes: ByteBuffer
    /// The producer's record bytes.
    public var records: ByteBuffer {
        bytes.getSlice(at: bytes.readerIndex + BatchHeader.size, length: Int(header.recordsLength)) ?? ByteBuffer()
    }

    /// Parses the batch at the start of `buffer`'s readable bytes; nil if the bytes
    /// do not hold a whole batch. Checks nothing else: call `defect()` for that.
    public init?(parsing buffer: ByteBuffer) {
        guard let header = BatchHeader.decode(buffer, at: buffer.readerIndex),
              let bytes = buffer.getSlice(at: buffer.readerIndex, length: header.storedSize)
        else { return nil }
        self.header = header
        self.bytes = bytes
    }

    /// Both CRCs, the format version and the field relations; nil when the batch is whole.
    public func defect(maxRecordsLength: Int = Int(UInt32.max)) -> BatchDefect? {
        let headerDefect = bytes.withUnsafeReadableBytes { raw in
            BatchHeader.defect(ofEncoded: raw, maxRecordsLength: maxRecordsLength)
        }
        if let headerDefect { return headerDefect }
        return CRC32C.checksum(records) == header.recordsCRC ? nil : .recordsChecksumMismatch
    }
}

/// Walks the batches in bytes returned by `PartitionLog.read`, in order. Stops at
/// the first incomplete batch (there is none in what the log returns).
public struct StoredBatches: Sequence, Sendable {
    public let buffer: ByteBuffer

    public init(_ buffer: ByteBuffer) { self.buffer = buffer }

    public struct Iterator: IteratorProtocol {
        var remaining: ByteBuffer

        public mutating func next() -> StoredBatch? {
            guard let batch = StoredBatch(parsing: remaining) else { return nil }
            remaining.moveReaderIndex(forwardBy: batch.header.storedSize)
            return batch
        }
    }

    public func makeIterator() -> Iterator { Iterator(remaining: buffer) }
}
