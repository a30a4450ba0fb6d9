import NIOCore

/// The gRPC length-prefixed message, as carried in HTTP/2 DATA frames (gRPC over HTTP/2 spec,
/// "Length-Prefixed-Message"):
///
/// ```
/// byte 0      compressed flag: 0 = payload as is, 1 = compressed with the call's grpc-encoding
/// bytes 1-4   payload length, unsigned 32-bit big-endian
/// bytes 5...  payload (a serialized protobuf message; opaque to this layer)
/// ```
///
/// Messages are not aligned to DATA frames: one frame may hold several messages or a piece of one.
enum GRPCMessageFrame {
    static let prefixBytes = 5

    /// The 5-byte prefix of `message`. Senders queue it and the message as two buffers, so
    /// the payload is never copied to be framed. Sluice never compresses: the flag is 0.
    static func prefix(for message: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        precondition(message.readableBytes <= Int(UInt32.max), "a gRPC message is at most 4 GiB")
        var prefix = allocator.buffer(capacity: prefixBytes)
        prefix.writeInteger(UInt8(0))
        prefix.writeInteger(UInt32(message.readableBytes), endianness: .big)
        return prefix
    }

    /// Frames `message` into one buffer (prefix + payload), copying it.
    static func encode(_ message: ByteBuffer, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var framed = prefix(for: message, allocator: allocator)
        framed.writeImmutableBuffer(message)
        return framed
    }
}

/// Why a received byte stream is not a valid sequence of gRPC messages.
enum GRPCFramingError: Error, Equatable {
    /// The length prefix announces more than the receiver allows; detected from the 5-byte
    /// prefix alone, before any payload is buffered.
    case messageTooLarge(length: UInt32, limit: Int)
    /// The compressed flag is set, but no `grpc-encoding` was negotiated (Sluice offers none).
    case compressedWithoutEncoding
    /// The flag byte is neither 0 nor 1.
    case invalidFlag(UInt8)
    /// The stream ended in the middle of a message.
    case truncated(bufferedBytes: Int)

    var status: GRPCStatus {
        switch self {
        case .messageTooLarge(let length, let limit):
            return GRPCStatus(.resourceExhausted, "message of \(length) bytes exceeds the limit of \(limit) bytes")
        case .compressedWithoutEncoding:
            return GRPCStatus(.internalError, "compressed message received but no grpc-encoding was negotiated")
        case .invalidFlag(let flag):
            return GRPCStatus(.internalError, "invalid gRPC message flag \(flag)")
        case .truncated(let bytes):
            return GRPCStatus(.internalError, "stream ended inside a message (\(bytes) bytes buffered)")
        }
    }
}
