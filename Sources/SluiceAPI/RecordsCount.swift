import NIOCore

extension Records {
    /// The number of records in serialized `Records` bytes (uncompressed), found by
    /// walking the message's top-level fields without decoding or copying anything:
    /// the broker's check that a batch's `record_count` is true, since offsets are
    /// assigned from it. nil when the bytes are not a well-formed `Records` message at
    /// the top level (records themselves are not looked into).
    ///
    /// Wire format walked (protobuf encoding, as in `ProtobufSliceDecoder`): a key varint
    /// `(field number << 3) | wire type` of at most 5 bytes with a field number >= 1, then
    ///
    ///     wire type 0  varint        1-10 bytes, high bit = more follows
    ///     wire type 1  64-bit        8 bytes
    ///     wire type 2  length-delim  varint length (at most 5 bytes, at most 2^31-1), then
    ///                                that many bytes
    ///     wire type 5  32-bit        4 bytes
    ///
    /// Field 1 (`repeated Record records`) with wire type 2 is one record; field 1 with
    /// any other wire type is malformed (protobuf-c refuses it, so no consumer of ours
    /// could read the batch). Other field numbers are unknown fields a newer writer may
    /// add: skipped, as every protobuf reader does. Groups (wire types 3 and 4) are
    /// malformed, as in protobuf-c.
    public static func count(inSerialized bytes: ByteBuffer) -> Int? {
        bytes.withUnsafeReadableBytes { raw in count(inSerialized: raw) }
    }

    public static func count(inSerialized raw: UnsafeRawBufferPointer) -> Int? {
        var walker = RecordsWalker(raw)
        var records = 0
        while !walker.isAtEnd {
            guard let key = walker.varint(maxBytes: 5) else { return nil }
            let number = key >> 3
            guard number >= 1, number <= 0x1FFF_FFFF else { return nil }
            switch key & 7 {
            case 0:
                guard number != 1, walker.varint(maxBytes: 10) != nil else { return nil }
            case 1:
                guard number != 1, walker.skip(8) else { return nil }
            case 2:
                guard let length = walker.varint(maxBytes: 5), length <= UInt64(Int32.max),
                      walker.skip(Int(length)) else { return nil }
                if number == 1 { records += 1 }
            case 5:
                guard number != 1, walker.skip(4) else { return nil }
            default:
                return nil
            }
        }
        return records
    }
}

/// A cursor over raw bytes for `Records.count`: bounds-checked, never past the end.
private struct RecordsWalker {
    let raw: UnsafeRawBufferPointer
    var position = 0

    init(_ raw: UnsafeRawBufferPointer) { self.raw = raw }

    var isAtEnd: Bool { position >= raw.count }

    mutating func varint(maxBytes: Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        let limit = min(raw.count, position + maxBytes)
        while position < limit {
            let byte = raw[position]
            position += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    mutating func skip(_ count: Int) -> Bool {
        guard count <= raw.count - position else { return false }
        position += count
        return true
    }
}
