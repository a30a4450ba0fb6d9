import CSluiceProto
import NIOCore

/// The link between a generated Swift message and its protobuf-c struct (see
/// Sources/SluiceAPI/Generated, written by codegen/swiftgen.py).
///
/// Every `ProtobufCMessage`-based struct that protobuf-c generates starts with its
/// `ProtobufCMessage base`, so a pointer to the struct is also a pointer to the base; the
/// generic `protobuf_c_message_*` functions rely on that layout, and so does this file.
protocol ProtobufCConvertible: ProtobufMessage {
    associatedtype CMessage

    /// Sets the descriptor and proto3 defaults (protoc-c's `<message>__init`).
    static func cInit(_ message: UnsafeMutablePointer<CMessage>)
    /// protoc-c's `<message>__unpack`: a malloc'd tree, or nil for malformed input.
    static func cUnpack(_ count: Int, _ bytes: UnsafePointer<UInt8>?) -> UnsafeMutablePointer<CMessage>?
    /// Copies an unpacked tree into Swift values (strings and bytes are copied out).
    init(cMessage message: UnsafePointer<CMessage>)
    /// Points an initialised struct at `arena`-owned C copies of this value's fields.
    func fill(_ message: UnsafeMutablePointer<CMessage>, arena: ProtobufCArena)
    /// A hand-written decoder that slices `bytes` fields out of the input instead of
    /// copying them, for the messages that carry record batches (ProtobufSliceDecoder.swift);
    /// nil declines, and protobuf-c decodes.
    static func decodeSlicing(_ bytes: ByteBuffer) -> Self?
}

extension ProtobufCConvertible {
    static func decodeSlicing(_ bytes: ByteBuffer) -> Self? { nil }
}

/// Packing and unpacking through protobuf-c. Nothing allocated here outlives the call.
enum ProtobufCCodec {
    static func decode<Message: ProtobufCConvertible>(
        _ bytes: ByteBuffer, as _: Message.Type = Message.self
    ) throws(ProtobufDecodingError) -> Message {
        if let sliced = Message.decodeSlicing(bytes) { return sliced }
        return try decodeWithProtobufC(bytes)
    }

    /// protobuf-c's unpack, the string check on the wire bytes (ProtobufStringCheck: the
    /// unpacked `char *` strings have lost their length), then a copy into Swift values.
    static func decodeWithProtobufC<Message: ProtobufCConvertible>(
        _ bytes: ByteBuffer, as _: Message.Type = Message.self
    ) throws(ProtobufDecodingError) -> Message {
        let decoded: Result<Message, ProtobufDecodingError> = bytes.withUnsafeReadableBytes { raw in
            let start = raw.baseAddress?.assumingMemoryBound(to: UInt8.self)
            guard let unpacked = Message.cUnpack(raw.count, start) else {
                return .failure(ProtobufDecodingError(messageName: messageName(Message.self), byteCount: raw.count))
            }
            let header = base(of: unpacked)
            defer { protobuf_c_message_free_unpacked(header, nil) }
            guard let descriptor = header.pointee.descriptor else {
                preconditionFailure("protobuf-c unpacked a \(Message.self) without a descriptor")
            }
            switch ProtobufStringCheck.check(bytes, descriptor: descriptor) {
            case .accepted:
                return .success(Message(cMessage: UnsafePointer(unpacked)))
            case .refused(let refused):
                return .failure(ProtobufDecodingError(
                    messageName: String(cString: descriptor.pointee.name), byteCount: raw.count, refusedString: refused))
            case .malformed:
                return .failure(ProtobufDecodingError(
                    messageName: String(cString: descriptor.pointee.name), byteCount: raw.count))
            }
        }
        return try decoded.get()
    }

    static func encode<Message: ProtobufCConvertible>(_ value: Message) -> ByteBuffer {
        let arena = ProtobufCArena()
        defer { arena.deallocateAll() }
        return pack(arena.message(value))
    }

    /// `encode`, refusing a value with a string protobuf-c would cut at a NUL byte.
    static func checkedEncode<Message: ProtobufCConvertible>(_ value: Message) throws(ProtobufEncodingError) -> ByteBuffer {
        let arena = ProtobufCArena(looksForNUL: true)
        defer { arena.deallocateAll() }
        let message = arena.message(value)
        if let refused = arena.firstStringWithNUL {
            throw ProtobufEncodingError(messageName: messageName(Message.self), stringPrefix: refused)
        }
        return pack(message)
    }

    private static func pack<CMessage>(_ message: UnsafeMutablePointer<CMessage>) -> ByteBuffer {
        let base = base(of: message)
        let size = protobuf_c_message_get_packed_size(base)
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        guard size > 0 else { return buffer }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            guard let start = out.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
            let written = protobuf_c_message_pack(base, start)
            precondition(written == size, "protobuf-c packed \(written) bytes after sizing \(size)")
            return written
        }
        return buffer
    }

    /// The `ProtobufCMessage` header every protoc-c struct starts with.
    static func base<CMessage>(of message: UnsafeMutablePointer<CMessage>) -> UnsafeMutablePointer<ProtobufCMessage> {
        UnsafeMutableRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
    }

    /// The proto name for error messages, read from a freshly initialised struct's
    /// descriptor (no allocation escapes: the struct lives on the arena for this call).
    static func messageName<Message: ProtobufCConvertible>(_: Message.Type) -> String {
        let arena = ProtobufCArena()
        defer { arena.deallocateAll() }
        let message = arena.allocate(Message.CMessage.self)
        Message.cInit(message)
        guard let name = base(of: message).pointee.descriptor?.pointee.name else { return "\(Message.self)" }
        return String(cString: name)
    }
}

/// Reading the C side of an unpacked message. protobuf-c guarantees non-null strings and
/// arrays of the stated length after a successful unpack; the nil checks here only keep a
/// broken guarantee from becoming a crash.
enum ProtobufC {
    static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        // Exact only because ProtobufStringCheck refused, on the wire bytes, every string
        // with a NUL (strlen would stop there: the rest of the name silently lost) or with
        // bytes that are not UTF-8 (String(cString:) would repair them to U+FFFD) before
        // this conversion runs.
        return String(cString: pointer)
    }

    static func bytes(_ data: ProtobufCBinaryData) -> ByteBuffer {
        guard data.len > 0, let start = data.data else { return ByteBuffer() }
        return ByteBuffer(bytes: UnsafeRawBufferPointer(start: start, count: data.len))
    }

    static func elements<Element, Result>(
        _ start: UnsafeMutablePointer<Element>?, count: Int, _ convert: (Element) -> Result
    ) -> [Result] {
        guard count > 0, let start else { return [] }
        return UnsafeBufferPointer(start: start, count: count).map(convert)
    }

    static func messages<CMessage, Result>(
        _ start: UnsafeMutablePointer<UnsafeMutablePointer<CMessage>?>?, count: Int,
        _ convert: (UnsafePointer<CMessage>) -> Result
    ) -> [Result] {
        guard count > 0, let start else { return [] }
        return UnsafeBufferPointer(start: start, count: count).compactMap { $0.map { convert(UnsafePointer($0)) } }
    }

    /// A `map<string, string>` arrives as repeated entry messages; a repeated key keeps
    /// its last value, as the protobuf specification requires.
    static func stringMap<Entry>(
        _ start: UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>?, count: Int,
        _ keyValue: (UnsafePointer<Entry>) -> (UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<CChar>?)
    ) -> [String: String] {
        let pairs = messages(start, count: count) { entry in
            let (key, value) = keyValue(entry)
            return (string(key), string(value))
        }
        return Dictionary(pairs, uniquingKeysWith: { _, last in last })
    }
}
