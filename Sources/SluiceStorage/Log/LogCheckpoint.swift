import SluiceChecksum

/// The offsets a log persists apart from its segments, in the file `checkpoint`.
///
/// Version 1 (a single node):
/// ```
///  offset size field           meaning
///       0    4 magic           "SLCP"
///       4    4 version         1 (big-endian, like every integer here)
///       8    8 logStartOffset  reads below it are out of range; segments wholly
///                              below it are deleted on open (an interrupted retention)
///      16    8 recoveryPoint   every batch below it was fsynced, data and indexes:
///                              recovery after a crash checks only what lies above it
///      24    4 crc             CRC32C of bytes 0..<24
/// ```
/// Version 2 (a replica, `LogConfig.replicated`): the same, then the high watermark.
/// ```
///       0   24 as version 1, with version 2
///      24    8 highWatermark   the replica's high watermark when it was written: it
///                              opens there again (never above the log end)
///      32    4 crc             CRC32C of bytes 0..<32
/// ```
/// Written by `replaceAtomically` (tmp, fdatasync, rename, directory fsync). Either
/// version is read whatever the log is; a replica opened from a version 1 file has no
/// high watermark to start from and starts at its log start.
public struct LogCheckpoint: Sendable, Equatable {
    public static let fileName = "checkpoint"
    static let magic: [UInt8] = Array("SLCP".utf8)
    static let singleNodeVersion: UInt32 = 1
    static let replicaVersion: UInt32 = 2

    public var logStartOffset: Int64
    public var recoveryPoint: Int64
    /// A replica's high watermark; nil in a single node's checkpoint.
    public var highWatermark: Int64?

    public init(logStartOffset: Int64, recoveryPoint: Int64, highWatermark: Int64? = nil) {
        self.logStartOffset = logStartOffset
        self.recoveryPoint = recoveryPoint
        self.highWatermark = highWatermark
    }

    static func size(version: UInt32) -> Int { version == singleNodeVersion ? 28 : 36 }

    func encoded() -> [UInt8] {
        var bytes = LogCheckpoint.magic
        let version = highWatermark == nil ? LogCheckpoint.singleNodeVersion : LogCheckpoint.replicaVersion
        appendBigEndian(version, to: &bytes)
        appendBigEndian(logStartOffset, to: &bytes)
        appendBigEndian(recoveryPoint, to: &bytes)
        if let highWatermark { appendBigEndian(highWatermark, to: &bytes) }
        appendBigEndian(CRC32C.checksum(bytes), to: &bytes)
        assert(bytes.count == LogCheckpoint.size(version: version), "checkpoint layout")
        return bytes
    }

    /// Decodes and verifies; the error names what is wrong.
    static func decode(_ bytes: [UInt8]) -> Result<LogCheckpoint, CheckpointProblem> {
        guard bytes.count >= 8 else { return .failure(CheckpointProblem("\(bytes.count) bytes, shorter than a header")) }
        guard Array(bytes[0..<4]) == magic else { return .failure(CheckpointProblem("bad magic")) }
        let version: UInt32 = loadBigEndian(bytes, at: 4)
        guard version == singleNodeVersion || version == replicaVersion else {
            return .failure(CheckpointProblem("unknown version \(version)"))
        }
        let size = size(version: version)
        guard bytes.count == size else { return .failure(CheckpointProblem("\(bytes.count) bytes, expected \(size)")) }
        let storedCRC: UInt32 = loadBigEndian(bytes, at: size - 4)
        guard CRC32C.checksum(bytes[0..<(size - 4)]) == storedCRC else { return .failure(CheckpointProblem("CRC32C mismatch")) }
        let checkpoint = LogCheckpoint(
            logStartOffset: loadBigEndian(bytes, at: 8), recoveryPoint: loadBigEndian(bytes, at: 16),
            highWatermark: version == replicaVersion ? loadBigEndian(bytes, at: 24) : nil)
        guard checkpoint.logStartOffset >= 0, checkpoint.recoveryPoint >= checkpoint.logStartOffset else {
            return .failure(CheckpointProblem("offsets out of order: start \(checkpoint.logStartOffset), recovery point \(checkpoint.recoveryPoint)"))
        }
        guard (checkpoint.highWatermark ?? 0) >= 0 else { return .failure(CheckpointProblem("negative high watermark")) }
        return .success(checkpoint)
    }
}

func appendBigEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
}

func loadBigEndian<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int) -> T {
    bytes.withUnsafeBytes { T(bigEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
}

struct CheckpointProblem: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
