public import NIOCore
import SluiceChecksum

/// The fixed-width header the log writes in front of every batch's record bytes.
///
/// A stored batch is this 64-byte header followed by `recordsLength` opaque record
/// bytes exactly as the producer sent them. All integers are big-endian.
///
/// ```
///  offset size field            written by  meaning
///  ------ ---- ---------------- ----------- ---------------------------------------------
///     0     1  formatVersion    log         1; a reader refuses any other value
///     1     1  reserved         log         0
///     2     2  attributes       producer    bits 0-2 compression codec (0 none), bit 4
///                                           transactional, bit 5 control; opaque to the log
///     4     4  headerCRC        log         CRC32C of bytes 0..<4 then 8..<64
///     8     4  recordsLength    log         byte count of the records after the header
///    12     4  recordCount      producer    records in the batch, >= 1
///    16     8  baseOffset       log         offset of the first record; the batch holds
///                                           baseOffset ... baseOffset + recordCount - 1
///    24     8  firstTimestamp   producer    ms since the epoch, of the first record
///    32     8  maxTimestamp     producer    ms, the largest record timestamp (>= first)
///    40     8  producerId       producer    -1 when not idempotent
///    48     4  leaderEpoch      log         epoch of the leader that appended the batch
///    52     4  baseSequence     producer    sequence of the first record, -1 if none
///    56     2  producerEpoch    producer    -1 when not idempotent
///    58     2  reserved         log         0
///    60     4  recordsCRC       producer    CRC32C of the record bytes; checked on append
///                                           and stored unchanged, so a subscriber can check
///                                           it end to end
///    64     n  records          producer    n = recordsLength
/// ```
///
/// Why two checksums: the records CRC is the producer's and must survive untouched,
/// but the log patches `baseOffset` and `leaderEpoch` in place, so it seals those
/// (and every other header field, including the records CRC and length) with its own
/// header CRC. Unlike Kafka's DefaultRecordBatch, the leader epoch is inside a CRC:
/// the log computes the header CRC after setting it, so nothing stored is unchecked.
/// A torn write fails one of the two CRCs or the length; recovery checks both.
public struct BatchHeader: Sendable, Equatable {
    public static let formatVersionOffset = 0
    public static let reservedByteOffset = formatVersionOffset + 1
    public static let attributesOffset = reservedByteOffset + 1
    public static let headerCRCOffset = attributesOffset + 2
    public static let recordsLengthOffset = headerCRCOffset + 4
    public static let recordCountOffset = recordsLengthOffset + 4
    public static let baseOffsetOffset = recordCountOffset + 4
    public static let firstTimestampOffset = baseOffsetOffset + 8
    public static let maxTimestampOffset = firstTimestampOffset + 8
    public static let producerIdOffset = maxTimestampOffset + 8
    public static let leaderEpochOffset = producerIdOffset + 8
    public static let baseSequenceOffset = leaderEpochOffset + 4
    public static let producerEpochOffset = baseSequenceOffset + 4
    public static let reservedShortOffset = producerEpochOffset + 2
    public static let recordsCRCOffset = reservedShortOffset + 2
    /// Bytes before the records.
    public static let size = recordsCRCOffset + 4
    public static let currentFormatVersion: UInt8 = 1

    public var formatVersion: UInt8 = BatchHeader.currentFormatVersion
    public var attributes: UInt16
    public var headerCRC: UInt32 = 0
    public var recordsLength: UInt32
    public var recordCount: Int32
    public var baseOffset: Int64
    public var firstTimestamp: Int64
    public var maxTimestamp: Int64
    public var producerId: Int64
    public var leaderEpoch: Int32
    public var baseSequence: Int32
    public var producerEpoch: Int16
    public var recordsCRC: UInt32

    /// The last offset in the batch.
    public var lastOffset: Int64 { baseOffset + Int64(recordCount) - 1 }
    /// The offset right after the batch.
    public var nextOffset: Int64 { baseOffset + Int64(recordCount) }
    /// Header plus records: the bytes the batch occupies in a segment.
    public var storedSize: Int { BatchHeader.size + Int(recordsLength) }
    /// Bits 0-2 of the attributes.
    public var compressionCodec: Int { Int(attributes & 0x7) }
    public var isTransactional: Bool { attributes & 0x10 != 0 }
    public var isControl: Bool { attributes & 0x20 != 0 }

    /// Writes all fields, `headerCRC` as it is, into the first `size` bytes.
    public func encode(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= BatchHeader.size, "header needs \(BatchHeader.size) bytes")
        bytes.storeBytes(of: formatVersion, toByteOffset: BatchHeader.formatVersionOffset, as: UInt8.self)
        bytes.storeBytes(of: 0, toByteOffset: BatchHeader.reservedByteOffset, as: UInt8.self)
        bytes.storeBytes(of: attributes.bigEndian, toByteOffset: BatchHeader.attributesOffset, as: UInt16.self)
        bytes.storeBytes(of: headerCRC.bigEndian, toByteOffset: BatchHeader.headerCRCOffset, as: UInt32.self)
        bytes.storeBytes(of: recordsLength.bigEndian, toByteOffset: BatchHeader.recordsLengthOffset, as: UInt32.self)
        bytes.storeBytes(of: recordCount.bigEndian, toByteOffset: BatchHeader.recordCountOffset, as: Int32.self)
        bytes.storeBytes(of: baseOffset.bigEndian, toByteOffset: BatchHeader.baseOffsetOffset, as: Int64.self)
        bytes.storeBytes(of: firstTimestamp.bigEndian, toByteOffset: BatchHeader.firstTimestampOffset, as: Int64.self)
        bytes.storeBytes(of: maxTimestamp.bigEndian, toByteOffset: BatchHeader.maxTimestampOffset, as: Int64.self)
        bytes.storeBytes(of: producerId.bigEndian, toByteOffset: BatchHeader.producerIdOffset, as: Int64.self)
        bytes.storeBytes(of: leaderEpoch.bigEndian, toByteOffset: BatchHeader.leaderEpochOffset, as: Int32.self)
        bytes.storeBytes(of: baseSequence.bigEndian, toByteOffset: BatchHeader.baseSequenceOffset, as: Int32.self)
        bytes.storeBytes(of: producerEpoch.bigEndian, toByteOffset: BatchHeader.producerEpochOffset, as: Int16.self)
        bytes.storeBytes(of: 0, toByteOffset: BatchHeader.reservedShortOffset, as: UInt16.self)
        bytes.storeBytes(of: recordsCRC.bigEndian, toByteOffset: BatchHeader.recordsCRCOffset, as: UInt32.self)
    }

    /// Reads the fields of the first `size` bytes, checking nothing; nil if too short.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> BatchHeader? {
        guard bytes.count >= size else { return nil }
        func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        return BatchHeader(
            formatVersion: bytes[formatVersionOffset],
            attributes: load(attributesOffset, UInt16.self),
            headerCRC: load(headerCRCOffset, UInt32.self),
            recordsLength: load(recordsLengthOffset, UInt32.self),
            recordCount: load(recordCountOffset, Int32.self),
            baseOffset: load(baseOffsetOffset, Int64.self),
            firstTimestamp: load(firstTimestampOffset, Int64.self),
            maxTimestamp: load(maxTimestampOffset, Int64.self),
            producerId: load(producerIdOffset, Int64.self),
            leaderEpoch: load(leaderEpochOffset, Int32.self),
            baseSequence: load(baseSequenceOffset, Int32.self),
            producerEpoch: load(producerEpochOffset, Int16.self),
            recordsCRC: load(recordsCRCOffset, UInt32.self))
    }

    /// Reads a header from a ByteBuffer at `index` without moving the reader index.
    public static func decode(_ buffer: ByteBuffer, at index: Int) -> BatchHeader? {
        guard let view = buffer.viewBytes(at: index, length: size) else { return nil }
        return view.withUnsafeBytes { decode($0) }
    }

    /// CRC32C over the encoded header except the 4 bytes that hold it.
    public func computeHeaderCRC() -> UInt32 {
        withUnsafeTemporaryAllocation(byteCount: BatchHeader.size, alignment: 8) { scratch in
            encode(into: scratch)
            let bytes = UnsafeRawBufferPointer(scratch)
            let front = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<BatchHeader.headerCRCOffset]))
            return CRC32C.checksum(
                UnsafeRawBufferPointer(rebasing: bytes[BatchHeader.recordsLengthOffset..<BatchHeader.size]), seed: front)
        }
    }

    /// Checks what can be checked from the header alone, including its CRC and the
    /// reserved bytes (which `decode` does not keep, so they are checked from `raw`).
    public static func defect(ofEncoded raw: UnsafeRawBufferPointer, maxRecordsLength: Int) -> BatchDefect? {
        if case .failure(let defect) = checked(raw, maxRecordsLength: maxRecordsLength) { return defect }
        return nil
    }

    /// The header of the first `size` bytes if they pass every check `defect(ofEncoded:)`
    /// makes. The CRC is taken over `raw` itself, not a re-encoding: with the reserved
    /// bytes checked to be zero the two are the same bytes, and this is what every read
    /// of a stored batch pays, so it stays one pass over 60 bytes.
    public static func checked(_ raw: UnsafeRawBufferPointer, maxRecordsLength: Int) -> Result<BatchHeader, BatchDefect> {
        guard let header = decode(raw) else { return .failure(.truncated) }
        guard header.formatVersion == currentFormatVersion else {
            return .failure(.unknownFormatVersion(header.formatVersion))
        }
        guard raw[reservedByteOffset] == 0, raw[reservedShortOffset] == 0, raw[reservedShortOffset + 1] == 0 else {
            return .failure(.invalidField("reserved bytes are not zero"))
        }
        let front = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<headerCRCOffset]))
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[recordsLengthOffset..<size]), seed: front)
        guard header.headerCRC == crc else { return .failure(.headerChecksumMismatch) }
        if let defect = header.fieldDefect(maxRecordsLength: maxRecordsLength) { return .failure(defect) }
        return .success(header)
    }

    /// `checked` on the 64 bytes at `index` of `buffer`; `.truncated` if fewer remain.
    public static func checked(_ buffer: ByteBuffer, at index: Int, maxRecordsLength: Int) -> Result<BatchHeader, BatchDefect> {
        guard let view = buffer.viewBytes(at: index, length: size) else { return .failure(.truncated) }
        return view.withUnsafeBytes { checked($0, maxRecordsLength: maxRecordsLength) }
    }

    /// Field relations every stored batch satisfies (the header CRC aside).
    func fieldDefect(maxRecordsLength: Int) -> BatchDefect? {
        if recordCount < 1 { return .invalidField("record count \(recordCount) is below 1") }
        if Int(recordsLength) > maxRecordsLength {
            return .invalidField("records length \(recordsLength) exceeds \(maxRecordsLength)")
        }
        if baseOffset < 0 || baseOffset > Int64.max - Int64(recordCount) {
            return .invalidField("base offset \(baseOffset) out of range")
        }
        if maxTimestamp < firstTimestamp {
            return .invalidField("max timestamp \(maxTimestamp) is before first timestamp \(firstTimestamp)")
        }
        return nil
    }
}

/// Why a stored batch failed verification.
public enum BatchDefect: Error, Sendable, Equatable, CustomStringConvertible {
    /// Fewer bytes than the header or its declared records length.
    case truncated
    case unknownFormatVersion(UInt8)
    case headerChecksumMismatch
    case recordsChecksumMismatch
    case invalidField(String)

    public var description: String {
        switch self {
        case .truncated: "batch is truncated"
        case .unknownFormatVersion(let version): "unknown batch format version \(version)"
        case .headerChecksumMismatch: "batch header CRC32C mismatch"
        case .recordsChecksumMismatch: "records CRC32C mismatch"
        case .invalidField(let reason): "invalid batch header: \(reason)"
        }
    }
}
