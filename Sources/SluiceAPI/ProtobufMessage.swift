public import NIOCore

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

    /// The serialized message, or an error when a string field holds a NUL byte: protobuf-c
    /// measures strings with strlen, so `protobufBytes()` would send `"orders\0-staging"` as
    /// `orders` and a request would act on another name than the caller gave. Clients encode
    /// requests with this; the broker refuses such strings when it decodes them anyway.
    func checkedProtobufBytes() throws(ProtobufEncodingError) -> ByteBuffer
}

/// A value that cannot be encoded as given: a string field holds a NUL byte, which
/// protobuf-c would cut the string at.
public struct ProtobufEncodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The proto message being encoded, e.g. `sluice.v1.DeleteTopicRequest`.
    public var messageName: String
    /// The start of the refused string (at most 64 characters), for the message.
    public var stringPrefix: String

    public var description: String {
        let shown = stringPrefix.unicodeScalars.map { $0 == "\0" ? "\\0" : String($0) }.joined()
        return "a string field of \(messageName) contains a NUL byte (\"\(shown)\"); it cannot be sent"
    }
}

/// Bytes that cannot be taken as the expected message: either not a valid encoding
/// (truncated, a malformed varint or length, a wrong wire type for a known field, an
/// out-of-range field number), or a valid one whose string field Sluice refuses
/// (`refusedString`: a NUL byte, or bytes that are not UTF-8).
public struct ProtobufDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The proto message that was being decoded, e.g. `sluice.v1.ProduceRequest`.
    public var messageName: String
    /// How many bytes were offered.
    public var byteCount: Int
    /// Set when the encoding is well formed but a string field cannot be taken as sent.
    public var refusedString: RefusedString?

    public var description: String {
        guard let refusedString else {
            return "\(byteCount) bytes are not a valid \(messageName) protobuf encoding"
        }
        return "string field \(refusedString.field) of \(messageName) \(refusedString.reason)"
    }
}

/// A string field refused on its wire bytes (ProtobufStringCheck.swift says why each is).
public struct RefusedString: Sendable, Equatable {
    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        /// protobuf-c's strings end at the first NUL, so the rest would be lost silently.
        case containsNUL
        /// A proto `string` must be UTF-8; repairing it (U+FFFD) would change the name.
        case notUTF8

        public var description: String {
            switch self {
            case .containsNUL: "contains a NUL byte"
            case .notUTF8: "is not valid UTF-8"
            }
        }
    }

    /// The proto field names from the decoded message down to the string, joined by dots:
    /// `name`, `configs.key` (a map entry's key), `join.group`, `offsets.topic`.
    public var field: String
    public var reason: Reason

    public init(field: String, reason: Reason) {
        self.field = field
        self.reason = reason
    }
}
