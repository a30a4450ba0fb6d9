#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore

/// The JSON of the metadata values in etcd: keys sorted, no whitespace, `/` unescaped, so
/// one value has one spelling and `etcdctl get` shows it as written.
enum MetadataJSON {
    static func encode(_ value: some Encodable) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return ByteBuffer(bytes: try encoder.encode(value))
        } catch {
            // Numbers, strings, arrays and string-keyed objects always encode.
            preconditionFailure("\(type(of: value)) failed to encode: \(error)")
        }
    }

    /// The value, or nil when the bytes are not its JSON.
    static func decode<Value: Decodable>(_ type: Value.Type, from bytes: ByteBuffer) -> Value? {
        try? JSONDecoder().decode(type, from: Data(bytes.readableBytesView))
    }
}
