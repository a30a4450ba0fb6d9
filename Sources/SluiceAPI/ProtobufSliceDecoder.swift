import NIOCore

/// Zero-copy decoding of the messages that carry record batches (`RecordBatch`,
/// `ProduceRequest`, `SubscribeResponse`) and of the records inside a batch (`Records`,
/// `Record`, `RecordHeader`): `bytes` fields become slices of the received buffer instead
/// of two copies (protobuf-c's unpack copies every `bytes` field, and the Swift value
/// copies it again). On the broker's produce path and the consumer's read path those bytes
/// are nearly everything a message holds.
///
/// Only the canonical encoding is handled here: every field a known number with its
/// expected wire type, each singular field at most once, strings Sluice accepts (no NUL,
/// valid UTF-8: ProtobufStringCheck). Anything else (an unknown or repeated field, a field
/// added to the proto later, a malformed varint, a refused string) returns nil and the
/// message goes through protobuf-c and the string check, so the result always equals
/// theirs (`ProtobufSliceDecoderTests` checks it on valid and corrupted input), and a
/// refused string is reported, with its field, in one place.
///
/// Wire format (protobuf encoding): a key varint `(field number << 3) | wire type`, then
/// wire type 0 a varint (7 bits per byte, low group first, high bit = more follows, at most
/// 10 bytes), 2 a varint length and that many bytes, 5 four bytes little-endian. 32-bit
/// fields keep the low 32 bits of the varint, as protobuf-c does.
struct ProtobufSliceDecoder {
    private let buffer: ByteBuffer
    /// Absolute reader position within `buffer`, and the end of the current message.
    private var position: Int
    private let end: Int

    private init(_ buffer: ByteBuffer, position: Int, end: Int) {
        self.buffer = buffer
        self.position = position
        self.end = end
    }

    init(_ buffer: ByteBuffer) {
        self.init(buffer, position: buffer.readerIndex, end: buffer.writerIndex)
    }

    var isAtEnd: Bool { position >= end }

    /// The next field's number and wire type; nil at a malformed key. protobuf-c reads keys
    /// of at most 5 bytes.
    mutating func key() -> (number: Int, wireType: UInt64)? {
        guard let key = varint(maxBytes: 5), key >> 3 > 0, key >> 3 <= 0x1FFF_FFFF else { return nil }
        return (Int(key >> 3), key & 7)
    }

    mutating func varint(maxBytes: Int = 10) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let limit = min(end, position + maxBytes)
        while position < limit, let byte = buffer.getInteger(at: position, as: UInt8.self) {
            position += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    /// A length prefix: protobuf-c takes at most 5 bytes and at most INT_MAX.
    private mutating func length() -> Int? {
        guard let length = varint(maxBytes: 5), length <= UInt64(Int32.max), length <= UInt64(end - position)
        else { return nil }
        return Int(length)
    }

    mutating func fixed32() -> UInt32? {
        guard end - position >= 4, let value = buffer.getInteger(at: position, endianness: .little, as: UInt32.self)
        else { return nil }
        position += 4
        return value
    }

    /// A length-delimited field's bytes as a slice of the received buffer.
    mutating func slice() -> ByteBuffer? {
        guard let length = length(), let slice = buffer.getSlice(at: position, length: length) else { return nil }
        position += length
        return slice
    }

    /// A string field; nil if Sluice refuses it (a NUL, or not UTF-8), so that the general
    /// path reports it (ProtobufStringCheck).
    mutating func string() -> String? {
        guard let bytes = slice() else { return nil }
        return bytes.withUnsafeReadableBytes { raw in
            ProtobufStringCheck.problem(in: raw) == nil ? String(decoding: raw, as: UTF8.self) : nil
        }
    }

    /// Steps over one field's value. Groups (wire types 3 and 4) are obsolete and
    /// protobuf-c refuses them, so they are malformed here too (false).
    mutating func skip(wireType: UInt64) -> Bool {
        switch wireType {
        case 0: return varint() != nil
        case 1:
            guard end - position >= 8 else { return false }
            position += 8
            return true
        case 2:
            // Stepped over, not sliced: a skip makes no ByteBuffer (Records.count skips
            // every record of every produced batch).
            guard let length = length() else { return false }
            position += length
            return true
        case 5: return fixed32() != nil
        default: return false
        }
    }

    /// An embedded message: a decoder over its bytes only.
    mutating func message() -> ProtobufSliceDecoder? {
        guard let length = length() else { return nil }
        let nested = ProtobufSliceDecoder(buffer, position: position, end: position + length)
        position += length
        return nested
    }
}

extension RecordBatch {
    static func decodeSlicing(_ bytes: ByteBuffer) -> RecordBatch? {
        var decoder = ProtobufSliceDecoder(bytes)
        return decodeSlicing(&decoder)
    }

    static func decodeSlicing(_ decoder: inout ProtobufSliceDecoder) -> RecordBatch? {
        var batch = RecordBatch()
        var seen: UInt32 = 0
        while !decoder.isAtEnd {
            guard let (number, wireType) = decoder.key(), (1...12).contains(number) else { return nil }
            guard seen & (1 << number) == 0 else { return nil }
            seen |= 1 << number
            switch (number, wireType) {
            case (11, 5):
                guard let value = decoder.fixed32() else { return nil }
                batch.recordsCrc32c = value
            case (12, 2):
                guard let value = decoder.slice() else { return nil }
                batch.records = value
            case (1...10, 0):
                guard let value = decoder.varint() else { return nil }
                switch number {
                case 1: batch.formatVersion = UInt32(truncatingIfNeeded: value)
                case 2: batch.attributes = UInt32(truncatingIfNeeded: value)
                case 3: batch.baseOffset = Int64(bitPattern: value)
                case 4: batch.recordCount = UInt32(truncatingIfNeeded: value)
                case 5: batch.firstTimestampMs = Int64(bitPattern: value)
                case 6: batch.maxTimestampMs = Int64(bitPattern: value)
                case 7: batch.partitionLeaderEpoch = Int32(truncatingIfNeeded: value)
                case 8: batch.producerId = Int64(bitPattern: value)
                case 9: batch.producerEpoch = Int32(truncatingIfNeeded: value)
                default: batch.baseSequence = Int32(truncatingIfNeeded: value)
                }
            default:
                return nil
            }
        }
        return batch
    }
}

extension ProduceRequest {
    static func decodeSlicing(_ bytes: ByteBuffer) -> ProduceRequest? {
        var decoder = ProtobufSliceDecoder(bytes)
        var request = ProduceRequest()
        var seen: UInt32 = 0
        while !decoder.isAtEnd {
            guard let (number, wireType) = decoder.key(), (1...6).contains(number) else { return nil }
            guard seen & (1 << number) == 0 else { return nil }
            seen |= 1 << number
            switch (number, wireType) {
            case (2, 2):
                guard let value = decoder.string() else { return nil }
                request.topic = value
            case (6, 2):
                guard var nested = decoder.message(), let batch = RecordBatch.decodeSlicing(&nested) else { return nil }
                request.batch = batch
            case (1, 0), (3, 0), (4, 0), (5, 0):
                guard let value = decoder.varint() else { return nil }
                switch number {
                case 1: request.correlationId = value
                case 3: request.partition = UInt32(truncatingIfNeeded: value)
                case 4: request.acks = Acks(rawValue: Int32(truncatingIfNeeded: value))
                default: request.timeoutMs = UInt32(truncatingIfNeeded: value)
                }
            default:
                return nil
            }
        }
        return request
    }
}

extension SubscribeResponse {
    static func decodeSlicing(_ bytes: ByteBuffer) -> SubscribeResponse? {
        var decoder = ProtobufSliceDecoder(bytes)
        var response = SubscribeResponse()
        var seen: UInt32 = 0
        while !decoder.isAtEnd {
            guard let (number, wireType) = decoder.key(), (1...4).contains(number) else { return nil }
            // `batches` is repeated: each occurrence is one more batch.
            guard number == 2 || seen & (1 << number) == 0 else { return nil }
            seen |= 1 << number
            switch (number, wireType) {
            case (2, 2):
                guard var nested = decoder.message(), let batch = RecordBatch.decodeSlicing(&nested) else { return nil }
                response.batches.append(batch)
            case (1, 0), (3, 0), (4, 0):
                guard let value = decoder.varint() else { return nil }
                switch number {
                case 1: response.partition = UInt32(truncatingIfNeeded: value)
                case 3: response.highWatermark = Int64(bitPattern: value)
                default: response.logStartOffset = Int64(bitPattern: value)
                }
            default:
                return nil
            }
        }
        return response
    }
}

extension Records {
    /// The consumer's per-record path: every key, value and header value is a slice of the
    /// batch's `records` bytes (protobuf-c made two copies of each, with a malloc apiece).
    static func decodeSlicing(_ bytes: ByteBuffer) -> Records? {
        var decoder = ProtobufSliceDecoder(bytes)
        var records: [Record] = []
        while !decoder.isAtEnd {
            guard let (number, wireType) = decoder.key(), number == 1, wireType == 2,
                var nested = decoder.message(), let record = Record.decodeSlicing(&nested)
            else { return nil }
            records.append(record)
        }
        return Records(records: records)
    }
}

extension Record {
    static func decodeSlicing(_ bytes: ByteBuffer) -> Record? {
        var decoder = ProtobufSliceDecoder(bytes)
        return decodeSlicing(&decoder)
    }

    static func decodeSlicing(_ decoder: inout ProtobufSliceDecoder) -> Record? {
        var record = Record()
        var seen: UInt32 = 0
        while !decoder.isAtEnd {
            guard let (number, wireType) = decoder.key(), (1...4).contains(number) else { return nil }
            // `headers` is repeated: each occurrence is one more header.
            guard number == 4 || seen & (1 << number) == 0 else { return nil }
            seen |= 1 << number
            switch (number, wireType) {
            case (1, 0):
                // sint64: zigzag, n -> (n >> 1) ^ -(n & 1).
                guard let value = decoder.varint() else { return nil }
                record.timestampDeltaMs = Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
            case (2, 2):
                // proto3 `optional`: present, even when empty.
                guard let value = decoder.slice() else { return nil }
                record.key = value
            case (3, 2):
                guard let value = decoder.slice() else { return nil }
                record.value = value
            case (4, 2):
                guard var nested = decoder.message(), let header = RecordHeader.decodeSlicing(&nested) else { return nil }
                record.headers.append(header)
            default:
                return nil
            }
        }
        return record
    }
}

extension RecordHeader {
    static func decodeSlicing(_ bytes: ByteBuffer) -> RecordHeader? {
        var decoder = ProtobufSliceDecoder(bytes)
        return decodeSlicing(&decoder)
    }

    static func decodeSlicing(_ decoder: inout ProtobufSliceDecoder) -> RecordHeader? {
        var header = RecordHeader()
        var seen: UInt32 = 0
        while !decoder.isAtEnd {
            guard let (number, wireType) = decoder.key(), (1...2).contains(number) else { return nil }
            guard seen & (1 << number) == 0 else { return nil }
            seen |= 1 << number
            switch (number, wireType) {
            case (1, 2):
                guard let value = decoder.string() else { return nil }
                header.key = value
            case (2, 2):
                guard let value = decoder.slice() else { return nil }
                header.value = value
            default:
                return nil
            }
        }
        return header
    }
}
