import SluiceChecksum

/// Each leader epoch a log holds with the offset its first batch has: the file
/// `leader-epoch-checkpoint` in the partition directory (Kafka's leader-epoch cache,
/// KIP-101/279). A follower's divergence from a new leader is found with it
/// (`PartitionLog.endOffset(forEpoch:)`), without reading a batch.
///
/// ```
///  offset size field        meaning
///       0    4 magic        "SLEP"
///       4    4 version      1 (big-endian, like every integer here)
///       8    4 count        n, the entries that follow
///      12  12n entries      oldest first, each:
///                 4 epoch        >= 0, strictly increasing
///                 8 startOffset  the first offset of that epoch in the log,
///                                strictly increasing, >= 0
///  12+12n    4 crc          CRC32C of every byte before it
/// ```
///
/// Written by `replaceAtomically` (tmp, fdatasync, rename, directory fsync) before the
/// first batch of a new epoch is written, and again whenever a truncation or the log
/// start moving changes it. The log is the truth: on open the entries at or past the
/// log end are dropped, and a file that is missing, fails its checks or does not end
/// with the newest batch's epoch is rebuilt from the batch headers.
struct LeaderEpochCheckpoint: Sendable, Equatable {
    static let fileName = "leader-epoch-checkpoint"
    static let magic: [UInt8] = Array("SLEP".utf8)
    static let version: UInt32 = 1
    static let headerSize = 12
    static let entrySize = 12

    /// Oldest first; epochs and start offsets strictly increase.
    private(set) var entries: [EpochStart] = []

    init(entries: [EpochStart] = []) {
        self.entries = entries
        assertOrdered()
    }

    var latestEpoch: Int32 { entries.last?.epoch ?? -1 }

    /// Notes that `epoch` starts at `offset` if it is newer than every epoch held (a batch
    /// of an epoch already held changes nothing); returns whether it added an entry.
    /// Negative epochs (none) are never held. An entry starting at `offset` already holds
    /// no batch (the log start was moved up to its end, as deleting every sealed segment
    /// below an empty active one does): the new epoch replaces it, as in Kafka's cache.
    mutating func assign(epoch: Int32, startOffset: Int64) -> Bool {
        guard epoch >= 0, epoch > latestEpoch else { return false }
        entries.removeAll { $0.startOffset >= startOffset }
        entries.append(EpochStart(epoch: epoch, startOffset: startOffset))
        return true
    }

    /// Drops the entries at or past `endOffset` (the log was truncated there).
    mutating func truncate(fromEnd endOffset: Int64) {
        entries.removeAll { $0.startOffset >= endOffset }
    }

    /// The log now starts at `startOffset`: entries of epochs wholly below it go, and
    /// the epoch holding it starts there (Kafka's truncateFromStart).
    mutating func truncate(fromStart startOffset: Int64) {
        guard let holding = entries.lastIndex(where: { $0.startOffset <= startOffset }) else { return }
        entries.removeFirst(holding)
        entries[0].startOffset = startOffset
    }

    /// Where `epoch` ends in a log ending at `logEnd` (KIP-279): the largest epoch held
    /// at or below it, ending where the next one starts, or at the log end for the
    /// latest; `.unknown` when the log holds no epoch at or below it.
    func endOffset(forEpoch epoch: Int32, logEnd: Int64) -> EpochEndOffset {
        guard let floor = entries.lastIndex(where: { $0.epoch <= epoch }) else { return .unknown }
        let end = floor + 1 < entries.count ? entries[floor + 1].startOffset : logEnd
        return EpochEndOffset(epoch: entries[floor].epoch, endOffset: end)
    }

    func encoded() -> [UInt8] {
        var bytes = Self.magic
        appendBigEndian(Self.version, to: &bytes)
        appendBigEndian(UInt32(entries.count), to: &bytes)
        for entry in entries {
            appendBigEndian(entry.epoch, to: &bytes)
            appendBigEndian(entry.startOffset, to: &bytes)
        }
        appendBigEndian(CRC32C.checksum(bytes), to: &bytes)
        assert(bytes.count == Self.headerSize + Self.entrySize * entries.count + 4, "leader-epoch checkpoint layout")
        return bytes
    }

    /// Decodes and verifies; the error names what is wrong.
    static func decode(_ bytes: [UInt8]) -> Result<LeaderEpochCheckpoint, CheckpointProblem> {
        guard bytes.count >= headerSize + 4 else { return .failure(CheckpointProblem("\(bytes.count) bytes, shorter than a header")) }
        guard Array(bytes[0..<4]) == magic else { return .failure(CheckpointProblem("bad magic")) }
        let storedCRC: UInt32 = loadBigEndian(bytes, at: bytes.count - 4)
        guard CRC32C.checksum(bytes[0..<(bytes.count - 4)]) == storedCRC else { return .failure(CheckpointProblem("CRC32C mismatch")) }
        let version: UInt32 = loadBigEndian(bytes, at: 4)
        guard version == Self.version else { return .failure(CheckpointProblem("unknown version \(version)")) }
        let count = Int(loadBigEndian(bytes, at: 8) as UInt32)
        guard bytes.count == headerSize + entrySize * count + 4 else {
            return .failure(CheckpointProblem("\(bytes.count) bytes for \(count) entries"))
        }
        var entries: [EpochStart] = []
        for index in 0..<count {
            let at = headerSize + entrySize * index
            let entry = EpochStart(epoch: loadBigEndian(bytes, at: at), startOffset: loadBigEndian(bytes, at: at + 4))
            guard entry.epoch >= 0, entry.startOffset >= 0,
                  entry.epoch > (entries.last?.epoch ?? -1), entry.startOffset > (entries.last?.startOffset ?? -1)
            else { return .failure(CheckpointProblem("entry \(index) (\(entry)) is out of order")) }
            entries.append(entry)
        }
        return .success(LeaderEpochCheckpoint(entries: entries))
    }

    private func assertOrdered() {
        for (earlier, later) in zip(entries, entries.dropFirst()) {
            assert(earlier.epoch < later.epoch && earlier.startOffset < later.startOffset, "epoch entries out of order")
        }
    }
}
