public import NIOCore
public import SluiceAPI
import SluiceCompression
internal import SluiceChecksum

/// Building the `RecordBatch` a producer sends and reading the records out of a batch a
/// subscriber receives (proto/sluice/v1/records.proto; docs/partitioning.md).
///
/// On the wire a batch is a `RecordBatch` whose `records` field holds a serialized
/// `Records` message:
///
///     Records  = repeated (0x0a, varint length, Record)
///     Record   = [0x08 zigzag-varint timestamp_delta_ms]   omitted when 0
///                [0x12 varint length, key bytes]            present iff the record has a key (even empty)
///                [0x1a varint length, value bytes]          omitted when empty
///                *(0x22 varint length, RecordHeader)
///     RecordHeader = [0x0a varint length, UTF-8 key] [0x12 varint length, value]   each omitted when empty
///
/// compressed as attribute bits 0-2 say (`RecordCompression`: none, zstd or lz4; one standard
/// frame of the serialized `Records`), and `records_crc32c` is CRC32C (Castagnoli, reflected 0x82f63b78, init and final xor
/// 0xffffffff) of exactly those bytes. Record i has offset `base_offset + i` and timestamp
/// `first_timestamp_ms + timestamp_delta_ms`, unless attribute bit 3 (LogAppendTime) is set,
/// when every record's timestamp is the broker's `first_timestamp_ms`.
public enum RecordBatchCodec {
    /// The only batch format version defined.
    public static let formatVersion: UInt32 = 1
    /// Attribute bit 3: the broker replaced the timestamps with its append time.
    public static let logAppendTimeAttribute: UInt32 = 1 << 3
    /// Attribute bits 0-2: compression.
    public static let compressionMask: UInt32 = 0b111

    /// One record as a producer hands it over: timestamp in ms since the epoch.
    public struct Entry: Sendable, Equatable {
        public var key: ByteBuffer?
        public var value: ByteBuffer
        public var headers: [RecordHeader]
        public var timestampMs: Int64

        public init(key: ByteBuffer?, value: ByteBuffer, headers: [RecordHeader] = [], timestampMs: Int64) {
            self.key = key
            self.value = value
            self.headers = headers
            self.timestampMs = timestampMs
        }
    }

    /// The CRC32C the batch must carry.
    public static func checksum(_ records: ByteBuffer) -> UInt32 {
        CRC32C.checksum(records)
    }

    /// The default bound on one batch's decompressed records (a reader's defence against a
    /// compression bomb); `ConsumerConfiguration.maxDecompressedBatchBytes` sets it.
    public static let defaultMaxDecompressedBytes = 64 * 1024 * 1024

    /// A non-idempotent batch of `entries` (at least one), its records compressed with
    /// `compression` at `level` (nil: the codec's default). If the library fails to
    /// compress (it can only run out of memory), the batch goes uncompressed: the
    /// attributes always say what the bytes are.
    ///
    /// With `uncompressedAbove`, compressed records larger than that (incompressible
    /// input grows a little) are sent uncompressed when those fit: a batch sized to a
    /// topic's limit must not be pushed over it by its codec.
    package static func makeBatch(
        _ entries: [Entry], compression: RecordCompression = .none, level: Int? = nil, uncompressedAbove limit: Int? = nil
    ) -> RecordBatch {
        precondition(!entries.isEmpty, "a batch holds at least one record")
        let first = entries[0].timestampMs
        let records = Records(records: entries.map {
            Record(timestampDeltaMs: $0.timestampMs &- first, key: $0.key, value: $0.value, headers: $0.headers)
        })
        let serialized = records.protobufBytes()
        var bytes = serialized
        var attributes: UInt32 = 0
        if compression != .none, let compressed = try? compression.compress(serialized, level: level),
           limit.map({ compressed.readableBytes <= $0 || serialized.readableBytes > $0 }) ?? true {
            bytes = compressed
            attributes = compression.rawValue
        }
        return RecordBatch(
            formatVersion: formatVersion, attributes: attributes, baseOffset: 0, recordCount: UInt32(entries.count),
            firstTimestampMs: first, maxTimestampMs: entries.map(\.timestampMs).max() ?? first,
            recordsCrc32c: checksum(bytes), records: bytes)
    }

    /// The bytes one entry adds to a batch's `records` (its Record plus field key and
    /// length), for the producer's batch-size accounting; exact for the encoding above.
    public static func encodedSize(of entry: Entry, firstTimestampMs: Int64) -> Int {
        var size = 0
        let delta = entry.timestampMs &- firstTimestampMs
        if delta != 0 { size += 1 + varintSize(UInt64(bitPattern: (delta << 1) ^ (delta >> 63))) }
        if let key = entry.key { size += lengthDelimitedSize(key.readableBytes) }
        if entry.value.readableBytes > 0 { size += lengthDelimitedSize(entry.value.readableBytes) }
        for header in entry.headers {
            var headerSize = 0
            let keyBytes = header.key.utf8.count
            if keyBytes > 0 { headerSize += lengthDelimitedSize(keyBytes) }
            if header.value.readableBytes > 0 { headerSize += lengthDelimitedSize(header.value.readableBytes) }
            size += lengthDelimitedSize(headerSize)
        }
        return lengthDelimitedSize(size)
    }

    private static func lengthDelimitedSize(_ payload: Int) -> Int {
        1 + varintSize(UInt64(payload)) + payload
    }

    private static func varintSize(_ value: UInt64) -> Int {
        max(1, (64 - value.leadingZeroBitCount + 6) / 7)
    }

    /// A record read back from a batch.
    public struct DecodedRecord: Sendable, Equatable {
        public var offset: Int64
        public var timestampMs: Int64
        public var key: ByteBuffer?
        public var value: ByteBuffer
        public var headers: [RecordHeader]
    }

    public enum DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        case checksumMismatch(baseOffset: Int64, expected: UInt32, actual: UInt32)
        case unsupportedCompression(baseOffset: Int64, attributes: UInt32)
        case malformedRecords(baseOffset: Int64)
        /// The compressed records are corrupt or decompress past the reader's limit.
        case decompressionFailed(baseOffset: Int64, RecordCompressionError)
        case recordCountMismatch(baseOffset: Int64, header: UInt32, decoded: Int)

        public var description: String {
            switch self {
            case .checksumMismatch(let offset, let expected, let actual):
                "batch at offset \(offset): records CRC32C is \(hex(actual)), the batch says \(hex(expected))"
            case .unsupportedCompression(let offset, let attributes):
                "batch at offset \(offset): compression \(attributes & RecordBatchCodec.compressionMask) is not supported by this client"
            case .decompressionFailed(let offset, let error):
                "batch at offset \(offset): \(error)"
            case .malformedRecords(let offset):
                "batch at offset \(offset): records are not a valid sluice.v1.Records message"
            case .recordCountMismatch(let offset, let header, let decoded):
                "batch at offset \(offset): record_count says \(header), the records hold \(decoded)"
            }
        }

        private func hex(_ value: UInt32) -> String {
            let digits = String(value, radix: 16)
            return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
        }
    }

    /// The records of `batch`, checked against its CRC and record count, decompressed
    /// (refusing more than `maxDecompressedBytes` of records).
    public static func records(
        of batch: RecordBatch, maxDecompressedBytes: Int = defaultMaxDecompressedBytes
    ) throws(DecodingError) -> [DecodedRecord] {
        let actual = checksum(batch.records)
        guard actual == batch.recordsCrc32c else {
            throw .checksumMismatch(baseOffset: batch.baseOffset, expected: batch.recordsCrc32c, actual: actual)
        }
        guard let compression = RecordCompression(attributes: batch.attributes) else {
            throw .unsupportedCompression(baseOffset: batch.baseOffset, attributes: batch.attributes)
        }
        let serialized: ByteBuffer
        do {
            serialized = try compression.decompress(batch.records, maxBytes: maxDecompressedBytes)
        } catch {
            throw .decompressionFailed(baseOffset: batch.baseOffset, error)
        }
        let decoded: Records
        do {
            decoded = try Records(protobuf: serialized)
        } catch {
            throw .malformedRecords(baseOffset: batch.baseOffset)
        }
        guard decoded.records.count == Int(batch.recordCount) else {
            throw .recordCountMismatch(baseOffset: batch.baseOffset, header: batch.recordCount, decoded: decoded.records.count)
        }
        let logAppendTime = batch.attributes & logAppendTimeAttribute != 0
        return decoded.records.enumerated().map { index, record in
            DecodedRecord(
                offset: batch.baseOffset + Int64(index),
                timestampMs: logAppendTime ? batch.firstTimestampMs : batch.firstTimestampMs &+ record.timestampDeltaMs,
                key: record.key, value: record.value, headers: record.headers)
        }
    }
}
