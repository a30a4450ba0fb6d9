/// The journal a `SyncRecordingFileSystem` appends to: what the wrapped process has
/// made durable, so that after the process is killed its files can be cut back to
/// exactly that state.
///
/// Files are named by inode number, not path, because a path can be renamed between a
/// file's sync and the directory's sync; the cut matches inode numbers on disk.
///
/// Layout (all integers little-endian):
///
/// ```
///  file header
///   offset size  field
///      0     4   magic "SSJ1" (0x53 0x53 0x4A 0x31)
///
///  then records, back to back:
///      0     4   bodyLength    bytes after this field (kind + fields below)
///      4     1   kind          1 fileSynced, 2 directorySynced, 3 undo
///
///  kind 1, fileSynced: the file's first `length` bytes are durable (fdatasync returned)
///      5     8   inode
///     13     8   length
///     21     2   pathLength
///     23     n   path (UTF-8; for diagnostics only, the inode is the key)
///
///  kind 2, directorySynced: these are the directory's durable entries (fsync returned)
///      5     2   pathLength
///      7     n   path (UTF-8)
///    7+n     4   entryCount
///            then entryCount times:
///              8   inode
///              2   nameLength
///              m   name (UTF-8)
///
///  kind 3, undo: before an overwrite or a shrink of bytes below the file's synced
///  length, the bytes the file held there; replayed newest first they restore the
///  synced contents
///      5     8   inode
///     13     8   offset
///     21     4   byteCount
///     25     k   bytes
/// ```
///
/// Records are written with one write(2) each, after the sync they describe returned and
/// before the wrapper returns to its caller. The journal is never fsynced: it only has to
/// survive SIGKILL, which keeps the page cache. A record torn by the kill (a short tail)
/// is ignored by the reader, which is safe because its caller was never told.
public enum SyncJournalRecord: Sendable, Equatable {
    case fileSynced(inode: UInt64, length: Int64, path: String)
    case directorySynced(path: String, entries: [SyncJournalEntry])
    case undo(inode: UInt64, offset: Int64, bytes: [UInt8])

    static let magic: [UInt8] = [0x53, 0x53, 0x4A, 0x31]

    /// The record with its length prefix.
    func encoded() -> [UInt8] {
        var body: [UInt8] = []
        switch self {
        case .fileSynced(let inode, let length, let path):
            body.append(1)
            body.appendLittleEndian(inode)
            body.appendLittleEndian(UInt64(bitPattern: length))
            body.appendString(path)
        case .directorySynced(let path, let entries):
            body.append(2)
            body.appendString(path)
            body.appendLittleEndian(UInt32(entries.count))
            for entry in entries {
                body.appendLittleEndian(entry.inode)
                body.appendString(entry.name)
            }
        case .undo(let inode, let offset, let bytes):
            body.append(3)
            body.appendLittleEndian(inode)
            body.appendLittleEndian(UInt64(bitPattern: offset))
            body.appendLittleEndian(UInt32(bytes.count))
            body.append(contentsOf: bytes)
        }
        var record: [UInt8] = []
        record.reserveCapacity(4 + body.count)
        record.appendLittleEndian(UInt32(body.count))
        record.append(contentsOf: body)
        return record
    }

    /// Every whole record of a journal file's bytes; a torn last record is dropped.
    /// Throws if the magic is wrong or a whole record does not parse (not a kill's doing).
    static func decodeAll(_ bytes: [UInt8]) throws(SyncJournalError) -> [SyncJournalRecord] {
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            throw SyncJournalError(message: "not a sync journal (bad magic)")
        }
        var reader = JournalReader(bytes: bytes, position: magic.count)
        var records: [SyncJournalRecord] = []
        while let bodyLength = reader.uint32() {
            guard reader.remaining >= Int(bodyLength) else { break }  // torn by the kill
            let end = reader.position + Int(bodyLength)
            guard let record = reader.record(), reader.position == end else {
                throw SyncJournalError(message: "malformed record ending at byte \(end)")
            }
            records.append(record)
        }
        return records
    }
}

public struct SyncJournalEntry: Sendable, Equatable {
    public var name: String
    public var inode: UInt64
}

public struct SyncJournalError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { "sync journal: \(message)" }
}

private struct JournalReader {
    let bytes: [UInt8]
    var position: Int

    var remaining: Int { bytes.count - position }

    mutating func uint64() -> UInt64? { integer(UInt64.self) }
    mutating func uint32() -> UInt32? { integer(UInt32.self) }
    mutating func uint16() -> UInt16? { integer(UInt16.self) }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { return nil }
        var value: T = 0
        for index in 0..<size { value |= T(bytes[position + index]) << (8 * index) }
        position += size
        return value
    }

    mutating func bytes(_ count: Int) -> [UInt8]? {
        guard count >= 0, remaining >= count else { return nil }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    mutating func string() -> String? {
        guard let length = uint16(), let raw = bytes(Int(length)) else { return nil }
        return String(decoding: raw, as: UTF8.self)
    }

    mutating func record() -> SyncJournalRecord? {
        guard let kind = bytes(1)?.first else { return nil }
        switch kind {
        case 1:
            guard let inode = uint64(), let length = uint64(), let path = string() else { return nil }
            return .fileSynced(inode: inode, length: Int64(bitPattern: length), path: path)
        case 2:
            guard let path = string(), let count = uint32() else { return nil }
            var entries: [SyncJournalEntry] = []
            for _ in 0..<count {
                guard let inode = uint64(), let name = string() else { return nil }
                entries.append(SyncJournalEntry(name: name, inode: inode))
            }
            return .directorySynced(path: path, entries: entries)
        case 3:
            guard let inode = uint64(), let offset = uint64(), let count = uint32(),
                  let saved = bytes(Int(count)) else { return nil }
            return .undo(inode: inode, offset: Int64(bitPattern: offset), bytes: saved)
        default:
            return nil
        }
    }
}

extension [UInt8] {
    fileprivate mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    fileprivate mutating func appendString(_ string: String) {
        let utf8 = Array(string.utf8)
        precondition(utf8.count <= Int(UInt16.max), "journal paths and names are at most 65535 bytes")
        appendLittleEndian(UInt16(utf8.count))
        append(contentsOf: utf8)
    }
}
