import CSluiceProto
import NIOCore

/// Owns the C memory a protobuf-c struct tree points at while it is packed.
///
/// Encoding builds the tree with every pointer into this arena, packs it once, then frees
/// everything with `deallocateAll()`; protobuf-c only reads the tree, so nothing here is
/// shared or outlives one `ProtobufCCodec.encode` call (hence not Sendable).
///
/// `bytes` fields are not copied: the arena retains the `ByteBuffer`'s storage and points
/// at its readable bytes. A retained storage cannot be written in place (ByteBuffer copies
/// on write when its storage is shared), so the bytes stay valid until `deallocateAll()`.
/// A `RecordBatch.records` slice is therefore copied exactly once, by protobuf-c's pack,
/// straight into the outgoing buffer.
final class ProtobufCArena {
    private var blocks: [UnsafeMutableRawPointer] = []
    private var retainedStorages: [Unmanaged<AnyObject>] = []
    /// The first string given to `string(_:)` that holds a NUL byte (its first 64
    /// characters): protobuf-c will cut it there, so a checked encode refuses the message.
    private(set) var firstStringWithNUL: String?
    /// Only a checked encode looks for NULs: the broker's own responses need no scan.
    private let looksForNUL: Bool

    init(looksForNUL: Bool = false) {
        self.looksForNUL = looksForNUL
    }

    /// Zeroed memory for `count` values of a C type (all-zero is a valid C struct).
    func allocate<T>(_: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        precondition(count > 0)
        let byteCount = MemoryLayout<T>.stride * count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: MemoryLayout<T>.alignment)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: count)
    }

    /// A NUL-terminated copy. A Swift string containing NUL is cut there by protobuf-c's
    /// pack (it measures with strlen): decoding refuses such strings (ProtobufStringCheck),
    /// and a checked encode refuses them through `firstStringWithNUL`.
    func string(_ string: String) -> UnsafeMutablePointer<CChar>? {
        if looksForNUL, firstStringWithNUL == nil, string.utf8.contains(0) { firstStringWithNUL = String(string.prefix(64)) }
        var string = string
        return string.withUTF8 { utf8 in
            let copy = allocate(CChar.self, count: utf8.count + 1)  // zeroed: the NUL is there
            if let source = utf8.baseAddress {
                UnsafeMutableRawPointer(copy).copyMemory(from: source, byteCount: utf8.count)
            }
            return copy
        }
    }

    func bytes(_ buffer: ByteBuffer) -> ProtobufCBinaryData {
        guard buffer.readableBytes > 0 else { return ProtobufCBinaryData(len: 0, data: nil) }
        return buffer.withUnsafeReadableBytesWithStorageManagement { raw, storage in
            retainedStorages.append(storage.retain())
            let start = raw.baseAddress.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: UInt8.self)) }
            return ProtobufCBinaryData(len: raw.count, data: start)
        }
    }

    func elements<Element>(_ values: [Element]) -> UnsafeMutablePointer<Element>? {
        guard !values.isEmpty else { return nil }
        let start = allocate(Element.self, count: values.count)
        for (index, value) in values.enumerated() { (start + index).pointee = value }
        return start
    }

    func message<Message: ProtobufCConvertible>(_ value: Message) -> UnsafeMutablePointer<Message.CMessage> {
        let message = allocate(Message.CMessage.self)
        Message.cInit(message)
        value.fill(message, arena: self)
        return message
    }

    func messages<Message: ProtobufCConvertible>(
        _ values: [Message]
    ) -> UnsafeMutablePointer<UnsafeMutablePointer<Message.CMessage>?>? {
        elements(values.map { Optional(message($0)) })
    }

    /// Map entries in key order, so that equal maps encode to equal bytes.
    func stringMap<Entry>(
        _ map: [String: String], initEntry: (UnsafeMutablePointer<Entry>?) -> Void,
        set: (UnsafeMutablePointer<Entry>, UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<CChar>?) -> Void
    ) -> UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>? {
        let entries = map.sorted { $0.key < $1.key }.map { key, value -> UnsafeMutablePointer<Entry>? in
            let entry = allocate(Entry.self)
            initEntry(entry)
            set(entry, string(key), string(value))
            return entry
        }
        return elements(entries)
    }

    func deallocateAll() {
        for storage in retainedStorages { storage.release() }
        retainedStorages.removeAll()
        for block in blocks { block.deallocate() }
        blocks.removeAll()
    }
}
