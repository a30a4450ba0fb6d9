import NIOCore

/// A protobuf message of `proto/` as a Swift value.
///
/// Encoding and decoding go through protobuf-c (the `CSluiceProto` target); no C type
/// appears in this protocol or in any conforming type's public surface.
public protocol ProtobufMessage: Sendable, Equatable {
    /// Decodes the serialized message (without gRPC's 5-byte prefix). Unknown fields are
    /// skipped; malformed input throws rather than traps.
    init(protobuf bytes: ByteBuffer) throws(ProtobufDecodingError)

    /// The serialized message. Fields at their proto3 default are omitted, as every
    /// protobuf encoder does; map entries are written in key order so equal values encode
    /// to equal bytes.
    func protobufBytes() -> ByteBuffer
}

/// Bytes that are not a valid encoding of the expected message: truncated, a malformed
/// varint or length, a wrong wire type for a known field, or an out-of-range field number.
public struct ProtobufDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The proto message that was being decoded, e.g. `sluice.v1.ProduceRequest`.
    public var messageName: String
    /// How many bytes were offered.
    public var byteCount: Int

    public init(messageName: String, byteCount: Int) {
        self.messageName = messageName
        self.byteCount = byteCount
    }

    public var description: String {
        "\(byteCount) bytes are not a valid \(messageName) protobuf encoding"
    }
}
