public import NIOCore
import SluiceChecksum

/// Batches whose every byte follows from a sequence number, so a checker that trusts
/// nothing the log says can tell whether a stored batch is exactly the one appended
/// (used by the crash writer, the crash and fault tests, and the benchmark).
///
/// Batch `sequence` has `recordCount` records of `recordBytes` bytes each, all drawn
/// from `SeededRandom(seed: sequence)`; its header carries producer id 1, epoch 0,
/// base sequence `sequence` (so a stored batch names its own sequence), timestamps
/// 1_700_000_000_000 + sequence, and the records' CRC32C.
public struct DeterministicBatches: Sendable {
    public var recordCount: Int
    public var recordBytes: Int

    public static let producerId: Int64 = 1
    public static let baseTimestamp: Int64 = 1_700_000_000_000

    public init(recordCount: Int, recordBytes: Int) {
        precondition(recordCount >= 1 && recordBytes >= 1, "a batch holds at least one non-empty record")
        self.recordCount = recordCount
        self.recordBytes = recordBytes
    }

    /// Record bytes of batch `sequence`.
    public func records(sequence: Int) -> ByteBuffer {
        let total = recordCount * recordBytes
        var buffer = ByteBufferAllocator().buffer(capacity: total)
        var random = SeededRandom(seed: UInt64(truncatingIfNeeded: sequence) &+ 1)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { raw in
            var position = 0
            while position < total {
                let word = random.next()
                let count = min(8, total - position)
                Swift.withUnsafeBytes(of: word.littleEndian) { wordBytes in
                    UnsafeMutableRawBufferPointer(rebasing: raw[position..<(position + count)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: wordBytes[0..<count]))
                }
                position += count
            }
            return total
        }
        return buffer
    }

    /// Batch `sequence` as a producer would send it.
    public func newBatch(sequence: Int) -> NewBatch {
        let records = records(sequence: sequence)
        let timestamp = Self.baseTimestamp + Int64(sequence)
        return NewBatch(
            attributes: 0, recordCount: Int32(recordCount), firstTimestamp: timestamp, maxTimestamp: timestamp,
            producerId: Self.producerId, producerEpoch: 0, baseSequence: Int32(truncatingIfNeeded: sequence),
            recordsCRC: CRC32C.checksum(records), records: records)
    }

    /// Why `batch` is not batch `sequence` stored at `baseOffset`; nil if it is,
    /// byte for byte, with valid CRCs.
    public func mismatch(_ batch: StoredBatch, sequence: Int, baseOffset: Int64) -> String? {
        if let defect = batch.defect() { return "batch \(sequence): \(defect)" }
        let header = batch.header
        if header.baseOffset != baseOffset { return "batch \(sequence): base offset \(header.baseOffset), expected \(baseOffset)" }
        if header.baseSequence != Int32(truncatingIfNeeded: sequence) {
            return "batch at offset \(baseOffset): sequence \(header.baseSequence), expected \(sequence)"
        }
        if header.recordCount != Int32(recordCount) || header.producerId != Self.producerId
            || header.firstTimestamp != Self.baseTimestamp + Int64(sequence)
        {
            return "batch \(sequence): header fields differ from what was appended"
        }
        if batch.records != records(sequence: sequence) { return "batch \(sequence): record bytes differ" }
        return nil
    }
}
