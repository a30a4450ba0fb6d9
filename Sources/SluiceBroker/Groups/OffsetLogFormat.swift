import NIOCore
import SluiceAPI

/// The records of the offsets log (`__consumer_offsets`, partition 0).
///
/// The log is an ordinary partition log of ordinary batches: every batch is the normal
/// 64-byte stored header (docs/storage-format.md) around a serialized `sluice.v1.Records`
/// message (records.proto), with CRC32C, so `sluice consume __consumer_offsets` reads
/// it like any topic. Batch fields: attributes 0 (no compression), first and max
/// timestamp the broker's wall clock at the append, no producer id. Each record has
/// `timestamp_delta_ms` 0 and no headers; its key and value say what it is:
///
/// | record          | key                                  | value                                     |
/// |-----------------|--------------------------------------|-------------------------------------------|
/// | commit          | UTF-8 "group/topic/partition"        | kind 0x01, then the commit body below     |
/// | snapshot entry  | UTF-8 "group/topic/partition"        | kind 0x04, then the commit body below     |
/// | tombstone       | UTF-8 "group/topic/partition"        | empty (0 bytes)                           |
/// | snapshot begin  | absent                               | kind 0x02, int64 BE: entries that follow  |
/// | snapshot end    | absent                               | kind 0x03, int64 BE: entries written      |
///
/// "partition" is the decimal partition number. Group and topic names never contain '/',
/// so the key splits unambiguously at its last two '/'.
///
/// Commit body (after the kind byte), big-endian:
///
///     bytes 0-7    int64   offset: the next offset to read
///     bytes 8-15   int64   commit time, ms since the Unix epoch (broker clock)
///     bytes 16-19  uint32  metadata length N (at most 4096)
///     bytes 20..   N bytes metadata, UTF-8
///
/// Reading the log from its start rebuilds the live offsets: a commit sets an offset, a
/// tombstone removes one; snapshot entries between a begin and its end replace the whole
/// state once the end arrives with the announced count (an unfinished snapshot, cut by a
/// crash, is ignored: the records before it still hold everything).
enum OffsetLogRecord: Equatable {
    case change(OffsetChange)
    case snapshotEntry(group: String, partition: GroupPartition, value: CommittedOffsetValue)
    case snapshotBegin(count: Int64)
    case snapshotEnd(count: Int64)

    enum Kind: UInt8 {
        case commit = 0x01
        case snapshotBegin = 0x02
        case snapshotEnd = 0x03
        case snapshotEntry = 0x04
    }

    var record: Record {
        var value = ByteBuffer()
        switch self {
        case .change(.commit(let group, let partition, let committed)):
            value.writeInteger(Kind.commit.rawValue)
            Self.writeBody(committed, to: &value)
            return Record(key: Self.key(group, partition), value: value)
        case .snapshotEntry(let group, let partition, let committed):
            value.writeInteger(Kind.snapshotEntry.rawValue)
            Self.writeBody(committed, to: &value)
            return Record(key: Self.key(group, partition), value: value)
        case .change(.tombstone(let group, let partition)):
            return Record(key: Self.key(group, partition), value: value)
        case .snapshotBegin(let count):
            value.writeInteger(Kind.snapshotBegin.rawValue)
            value.writeInteger(count, endianness: .big)
            return Record(value: value)
        case .snapshotEnd(let count):
            value.writeInteger(Kind.snapshotEnd.rawValue)
            value.writeInteger(count, endianness: .big)
            return Record(value: value)
        }
    }

    /// Nil for a record this format does not define (the caller reports it).
    init?(_ record: Record) {
        var value = record.value
        guard let key = record.key else {
            guard let kind = value.readInteger(as: UInt8.self).flatMap(Kind.init(rawValue:)),
                  let count = value.readInteger(endianness: .big, as: Int64.self), value.readableBytes == 0
            else { return nil }
            switch kind {
            case .snapshotBegin: self = .snapshotBegin(count: count)
            case .snapshotEnd: self = .snapshotEnd(count: count)
            case .commit, .snapshotEntry: return nil
            }
            return
        }
        guard let (group, partition) = Self.parseKey(key) else { return nil }
        guard value.readableBytes > 0 else {
            self = .change(.tombstone(group: group, partition: partition))
            return
        }
        guard let kind = value.readInteger(as: UInt8.self).flatMap(Kind.init(rawValue:)),
              let offset = value.readInteger(endianness: .big, as: Int64.self),
              let time = value.readInteger(endianness: .big, as: Int64.self),
              let length = value.readInteger(endianness: .big, as: UInt32.self),
              let metadata = value.readString(length: Int(length)), value.readableBytes == 0
        else { return nil }
        let committed = CommittedOffsetValue(offset: offset, metadata: metadata, commitTimeMs: time)
        switch kind {
        case .commit: self = .change(.commit(group: group, partition: partition, value: committed))
        case .snapshotEntry: self = .snapshotEntry(group: group, partition: partition, value: committed)
        case .snapshotBegin, .snapshotEnd: return nil
        }
    }

    private static func writeBody(_ committed: CommittedOffsetValue, to value: inout ByteBuffer) {
        value.writeInteger(committed.offset, endianness: .big)
        value.writeInteger(committed.commitTimeMs, endianness: .big)
        value.writeInteger(UInt32(committed.metadata.utf8.count), endianness: .big)
        value.writeString(committed.metadata)
    }

    private static func key(_ group: String, _ partition: GroupPartition) -> ByteBuffer {
        ByteBuffer(string: "\(group)/\(partition.topic)/\(partition.partition)")
    }

    private static func parseKey(_ key: ByteBuffer) -> (String, GroupPartition)? {
        let parts = String(buffer: key).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, let index = UInt32(parts[2]) else { return nil }
        return (String(parts[0]), GroupPartition(String(parts[1]), index))
    }
}
