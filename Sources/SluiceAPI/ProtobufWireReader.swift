/// A minimal protobuf wire-format reader, used for descriptor sets (ServiceDescriptors);
/// messages go through protobuf-c.
///
/// Wire format: each field is a key varint `(field number << 3) | wire type`, then
///
///     wire type 0  varint       1-10 bytes, 7 bits each, low group first, high bit = more
///     wire type 1  64-bit       8 bytes little-endian
///     wire type 2  length-delim varint length, then that many bytes
///     wire type 5  32-bit       4 bytes little-endian
///
/// Groups (types 3 and 4) are obsolete and treated as malformed. Reading stops at the end
/// or at the first malformed field, after which `failed` is true.
struct ProtobufWireReader {
    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case lengthDelimited(ArraySlice<UInt8>)
        case fixed32(UInt32)
    }

    struct Field {
        var number: Int
        var value: Value
    }

    private var bytes: ArraySlice<UInt8>
    private(set) var failed = false

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
    }

    mutating func next() -> Field? {
        guard !failed, !bytes.isEmpty else { return nil }
        guard let key = readVarint(), key >> 3 > 0, key >> 3 <= 0x1FFF_FFFF else { return fail() }
        let number = Int(key >> 3)
        switch key & 7 {
        case 0:
            guard let value = readVarint() else { return fail() }
            return Field(number: number, value: .varint(value))
        case 1:
            guard let value = readLittleEndian(byteCount: 8) else { return fail() }
            return Field(number: number, value: .fixed64(value))
        case 2:
            guard let length = readVarint(), length <= UInt64(bytes.count) else { return fail() }
            let value = bytes.prefix(Int(length))
            bytes = bytes.dropFirst(Int(length))
            return Field(number: number, value: .lengthDelimited(value))
        case 5:
            guard let value = readLittleEndian(byteCount: 4) else { return fail() }
            return Field(number: number, value: .fixed32(UInt32(truncatingIfNeeded: value)))
        default:
            return fail()
        }
    }

    private mutating func fail() -> Field? {
        failed = true
        return nil
    }

    private mutating func readVarint() -> UInt64? {
        var result: UInt64 = 0
        for shift in stride(from: UInt64(0), to: 64, by: 7) {
            guard let byte = bytes.popFirst() else { return nil }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
        }
        return nil
    }

    private mutating func readLittleEndian(byteCount: Int) -> UInt64? {
        guard bytes.count >= byteCount else { return nil }
        var result: UInt64 = 0
        for (index, byte) in bytes.prefix(byteCount).enumerated() {
            result |= UInt64(byte) << (8 * UInt64(index))
        }
        bytes = bytes.dropFirst(byteCount)
        return result
    }
}
