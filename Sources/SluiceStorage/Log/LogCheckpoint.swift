import SluiceChecksum

/// The two offsets a log persists apart from its segments, in the file `checkpoint`.
///
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
/// Written by `replaceAtomically` (tmp, fdatasync, rename, directory fsync).
public struct LogCheckpoint: Sendable, Equatable {
    public static let fileName = "checkpoint"
    static let magic: [UInt8] = Array("SLCP".utf8)
    static let version: UInt32 = 1
    static let size = 28

    public var logStartOffset: Int64
    public var recoveryPoint: Int64

    func encoded() -> [UInt8] {
        var bytes = LogCheckpoint.magic
        appendBigEndian(LogCheckpoint.version, to: &bytes)
        appendBigEndian(logStartOffset, to: &bytes)
        appendBigEndian(recoveryPoint, to: &bytes)
        appendBigEndian(CRC32C.checksum(bytes), to: &bytes)
        assert(bytes.count == LogCheckpoint.size, "checkpoint layout")
        return bytes
    }

    /// Decodes and verifies; the error names what is wrong.
    static func decode(_ bytes: [UInt8]) -> Result<LogCheckpoint, CheckpointProblem> {
        guard bytes.count == size else { return .failure(CheckpointProblem("\(bytes.count) bytes, expected \(size)")) }
        guard Array(bytes[0..<4]) == magic else { return .failure(CheckpointProblem("bad magic")) }
        let storedCRC: UInt32 = loadBigEndian(bytes, at: 24)
        guard CRC32C.checksum(bytes[0..<24]) == storedCRC else { return .failure(CheckpointProblem("CRC32C mismatch")) }
        let version: UInt32 = loadBigEndian(bytes, at: 4)
        guard version == LogCheckpoint.version else { return .failure(CheckpointProblem("unknown version \(version)")) }
        let checkpoint = LogCheckpoint(logStartOffset: loadBigEndian(bytes, at: 8), recoveryPoint: loadBigEndian(bytes, at: 16))
        guard checkpoint.logStartOffset >= 0, checkpoint.recoveryPoint >= checkpoint.logStartOffset else {
            return .failure(CheckpointProblem("offsets out of order: start \(checkpoint.logStartOffset), recovery point \(checkpoint.recoveryPoint)"))
        }
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
