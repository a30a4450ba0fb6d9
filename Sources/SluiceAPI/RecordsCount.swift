public import NIOCore

extension Records {
    /// The number of records in serialized `Records` bytes (uncompressed), found by
    /// walking the message's top-level fields without decoding or copying anything:
    /// the broker's check that a batch's `record_count` is true, since offsets are
    /// assigned from it. nil when the bytes are not a well-formed `Records` message at
    /// the top level (records themselves are not looked into).
    ///
    /// The walk is `ProtobufSliceDecoder`'s (its comment has the wire format). Field 1
    /// (`repeated Record records`) with wire type 2 is one record; field 1 with any other
    /// wire type is malformed (protobuf-c refuses it, so no consumer of ours could read the
    /// batch). Other field numbers are unknown fields a newer writer may add: skipped, as
    /// every protobuf reader does. Groups (wire types 3 and 4) are malformed, as in protobuf-c.
    public static func count(inSerialized bytes: ByteBuffer) -> Int? {
        var decoder = ProtobufSliceDecoder(bytes)
        var records = 0
        while !decoder.isAtEnd {
            guard let (number, wireType) = decoder.key() else { return nil }
            if number == 1 {
                guard wireType == 2 else { return nil }
                records += 1
            }
            guard decoder.skip(wireType: wireType) else { return nil }
        }
        return records
    }
}
