import SluiceChecksum

/// A snapshot of a partition's `ProducerState` as of an offset: the file
/// `<offset, 20 digits>.producers` in the partition directory, next to the segment that
/// starts there. It holds the state built from every batch below `offset`; recovery
/// loads the newest usable one and replays the batch headers from `offset` on.
///
/// Layout (integers big-endian, like every storage file):
///
/// ```
///  offset size field
///       0    4 magic           "SLPS"
///       4    4 version         1
///       8    8 offset          the state covers every batch below this offset
///      16    4 producerCount   n
///      20      n producers, ascending by producer id, each:
///               8 producerId    > 0
///               2 epoch         >= 0
///               8 lastAppendMs  ms since the Unix epoch (expiry counts from it)
///               2 batchCount    k, 1...5
///               k batches, oldest first, each 24 bytes:
///                 4 baseSequence  >= 0
///                 4 lastSequence  >= 0
///                 8 baseOffset
///                 8 lastOffset    >= baseOffset
///    end-4    4 crc             CRC32C of every byte before it
/// ```
///
/// Written with `replaceAtomically` (tmp, fdatasync, rename, directory fsync), so a
/// crash leaves a whole file or none; a file that fails any check is ignored (and
/// removed) and recovery scans further back instead.
public struct ProducerSnapshot: Sendable, Equatable {
    public static let suffix = ".producers"
    static let magic: [UInt8] = Array("SLPS".utf8)
    static let version: UInt32 = 1
    static let headerSize = 20
    static let producerPrefixSize = 20
    static let batchSize = 24

    public var offset: Int64
    public var state: ProducerState

    public init(offset: Int64, state: ProducerState) {
        self.offset = offset
        self.state = state
    }

    public static func fileName(offset: Int64) -> String {
        let digits = String(offset)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// The offset in a snapshot file's name, nil for any other name.
    public static func offset(fromFileName name: String) -> Int64? {
        Segment.baseOffset(fromFileName: name, suffix: suffix)
    }

    public func encoded() -> [UInt8] {
        var bytes = Self.magic
        appendBigEndian(Self.version, to: &bytes)
        appendBigEndian(offset, to: &bytes)
        appendBigEndian(UInt32(state.producers.count), to: &bytes)
        for (id, producer) in state.producers.sorted(by: { $0.key < $1.key }) {
            appendBigEndian(id, to: &bytes)
            appendBigEndian(producer.epoch, to: &bytes)
            appendBigEndian(producer.lastAppendMs, to: &bytes)
            appendBigEndian(UInt16(producer.batches.count), to: &bytes)
            for batch in producer.batches {
                appendBigEndian(batch.baseSequence, to: &bytes)
                appendBigEndian(batch.lastSequence, to: &bytes)
                appendBigEndian(batch.baseOffset, to: &bytes)
                appendBigEndian(batch.lastOffset, to: &bytes)
            }
        }
        appendBigEndian(CRC32C.checksum(bytes), to: &bytes)
        return bytes
    }

    /// Decodes and verifies; the error says what is wrong.
    public static func decode(_ bytes: [UInt8]) -> Result<ProducerSnapshot, SnapshotDefect> {
        guard bytes.count >= headerSize + 4 else { return .failure(.init("\(bytes.count) bytes, shorter than a header")) }
        guard Array(bytes[0..<4]) == magic else { return .failure(.init("bad magic")) }
        let storedCRC: UInt32 = loadBigEndian(bytes, at: bytes.count - 4)
        guard CRC32C.checksum(bytes[0..<(bytes.count - 4)]) == storedCRC else { return .failure(.init("CRC32C mismatch")) }
        let version: UInt32 = loadBigEndian(bytes, at: 4)
        guard version == Self.version else { return .failure(.init("unknown version \(version)")) }
        let offset: Int64 = loadBigEndian(bytes, at: 8)
        guard offset >= 0 else { return .failure(.init("negative offset \(offset)")) }
        let count: UInt32 = loadBigEndian(bytes, at: 16)
        var position = headerSize
        let end = bytes.count - 4
        var producers: [Int64: ProducerState.Producer] = [:]
        for _ in 0..<count {
            guard position + producerPrefixSize <= end else { return .failure(.init("truncated producer entry")) }
            let id: Int64 = loadBigEndian(bytes, at: position)
            let epoch: Int16 = loadBigEndian(bytes, at: position + 8)
            let lastAppendMs: Int64 = loadBigEndian(bytes, at: position + 10)
            let batchCount = Int(loadBigEndian(bytes, at: position + 18) as UInt16)
            position += producerPrefixSize
            guard id > 0, epoch >= 0, producers[id] == nil else { return .failure(.init("bad producer id \(id) or epoch \(epoch)")) }
            guard (1...ProducerState.retainedBatches).contains(batchCount), position + batchCount * batchSize <= end else {
                return .failure(.init("bad batch count \(batchCount) for producer \(id)"))
            }
            var batches: [ProducerState.AppendedBatch] = []
            for _ in 0..<batchCount {
                let batch = ProducerState.AppendedBatch(
                    baseSequence: loadBigEndian(bytes, at: position), lastSequence: loadBigEndian(bytes, at: position + 4),
                    baseOffset: loadBigEndian(bytes, at: position + 8), lastOffset: loadBigEndian(bytes, at: position + 16))
                guard batch.baseSequence >= 0, batch.lastSequence >= 0, batch.baseOffset >= 0,
                      batch.lastOffset >= batch.baseOffset, batch.lastOffset < offset
                else { return .failure(.init("bad batch of producer \(id)")) }
                batches.append(batch)
                position += batchSize
            }
            producers[id] = ProducerState.Producer(epoch: epoch, lastAppendMs: lastAppendMs, batches: batches)
        }
        guard position == end else { return .failure(.init("\(end - position) bytes after the last producer")) }
        return .success(ProducerSnapshot(offset: offset, state: ProducerState(producers: producers)))
    }
}

public struct SnapshotDefect: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
