import CSluiceProto
import NIOCore

/// The one check every `string` field of every decoded message passes, made on the field's
/// bytes as they arrived: a NUL byte, or bytes that are not UTF-8, refuse the message.
///
/// Why on the wire bytes: protobuf-c unpacks a `string` into a NUL-terminated `char *` and
/// keeps no length, so a name sent as `orders\0-staging` reached the broker as `orders`
/// (DeleteTopic deleted `orders`, a Produce to `nt\0evil` appended to `nt`). protobuf-c does
/// not check UTF-8 either, and `String(cString:)` repairs bad sequences to U+FFFD, so two
/// different names sent by a client could become the same name. After the unpacked tree is
/// gone, neither can be told from a valid string.
///
/// Why a walk and not comparing `strlen` with the wire length: the comparison catches a
/// NUL but not invalid UTF-8, needs each string's wire length anyway (which only a walk of
/// the bytes gives), and would have to be written into every generated conversion. The
/// walk is generic instead: protobuf-c's message descriptor (reached through the unpacked
/// message, so nothing is looked up) says which field numbers are strings and which are
/// messages, so nested messages, repeated ones, map entries (`configs.key`,
/// `configs.value`) and oneof members are covered for every message in proto/, including
/// ones added later, with no change to codegen.
///
/// It runs after protobuf-c accepted the bytes (ProtobufCCodec.decodeWithProtobufC), so the
/// encoding is known to be well formed and only strings can be refused; a field this walk
/// cannot read after all is reported as malformed, never skipped. The hot messages that
/// ProtobufSliceDecoder decodes apply `problem(in:)` in its `string()` and fall back to
/// protobuf-c and this walk only when a string is refused, so no message is walked twice on
/// the way to being accepted.
enum ProtobufStringCheck {
    enum Outcome: Equatable {
        case accepted
        case refused(RefusedString)
        /// The walk could not read a field protobuf-c had accepted.
        case malformed
    }

    static func check(_ bytes: ByteBuffer, descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> Outcome {
        var decoder = ProtobufSliceDecoder(bytes)
        return check(&decoder, descriptor)
    }

    /// Wire format as in ProtobufSliceDecoder: a key varint `(field number << 3) | wire
    /// type`; only wire type 2 (a varint length, then that many bytes) can hold a string or
    /// a message, so every other field is stepped over. Unknown field numbers and packed
    /// repeated scalars are length-delimited too; they are stepped over whole.
    private static func check(
        _ decoder: inout ProtobufSliceDecoder, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>
    ) -> Outcome {
        while !decoder.isAtEnd {
            guard let (number, wireType) = decoder.key() else { return .malformed }
            guard wireType == 2 else {
                guard decoder.skip(wireType: wireType) else { return .malformed }
                continue
            }
            guard let field = protobuf_c_message_descriptor_get_field(descriptor, UInt32(number)) else {
                guard decoder.slice() != nil else { return .malformed }
                continue
            }
            switch field.pointee.type {
            case PROTOBUF_C_TYPE_STRING:
                guard let value = decoder.slice() else { return .malformed }
                if let reason = problem(in: value) {
                    return .refused(RefusedString(field: name(of: field), reason: reason))
                }
            case PROTOBUF_C_TYPE_MESSAGE:
                guard var nested = decoder.message() else { return .malformed }
                guard let nestedDescriptor = field.pointee.descriptor else {
                    assertionFailure("protoc-c gave message field \(name(of: field)) no descriptor")
                    return .malformed
                }
                let outcome = check(&nested, nestedDescriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self))
                guard case .refused(var refused) = outcome else {
                    if outcome == .malformed { return .malformed }
                    continue
                }
                refused.field = name(of: field) + "." + refused.field
                return .refused(refused)
            default:
                guard decoder.slice() != nil else { return .malformed }
            }
        }
        return .accepted
    }

    /// Why `bytes` cannot be a Sluice string, or nil when they can. A NUL is reported
    /// before bad UTF-8 (NUL is itself valid UTF-8, so both are looked for).
    static func problem(in bytes: ByteBuffer) -> RefusedString.Reason? {
        bytes.withUnsafeReadableBytes { problem(in: $0) }
    }

    static func problem(in bytes: UnsafeRawBufferPointer) -> RefusedString.Reason? {
        var ascii = true
        for byte in bytes {
            if byte == 0 { return .containsNUL }
            if byte >= 0x80 { ascii = false }
        }
        if ascii { return nil }
        // The standard library's parser applies Unicode's well-formedness table (3-7):
        // overlong forms, surrogates, values past U+10FFFF and cut sequences are errors.
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return nil
            case .error: return .notUTF8
            }
        }
    }

    /// The proto field name (protoc-c's descriptors hold it as a static C string).
    private static func name(of field: UnsafePointer<ProtobufCFieldDescriptor>) -> String {
        field.pointee.name.map { String(cString: $0) } ?? "field \(field.pointee.id)"
    }
}
