import NIOCore
import SluiceAPI
import Testing

/// Encodes and decodes, asserting the decoded value equals the original and that a
/// second encoding gives identical bytes (encoding is deterministic).
@discardableResult
func expectRoundTrip<Message: ProtobufMessage>(
    _ message: Message, sourceLocation: SourceLocation = #_sourceLocation
) throws -> ByteBuffer {
    let bytes = message.protobufBytes()
    let decoded = try Message(protobuf: bytes)
    #expect(decoded == message, sourceLocation: sourceLocation)
    #expect(decoded.protobufBytes() == bytes, sourceLocation: sourceLocation)
    return bytes
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer {
    ByteBuffer(bytes: bytes)
}

func buffer(_ string: String) -> ByteBuffer {
    ByteBuffer(string: string)
}

func bytes(_ buffer: ByteBuffer) -> [UInt8] {
    Array(buffer.readableBytesView)
}
