import Glibc

/// Everything the log can refuse or fail with. A write or sync failure also fences
/// the log: the same error is then returned by every later append and flush.
public enum LogError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A read, search or truncation below the log start or past the log end.
    case offsetOutOfRange(offset: Int64, logStartOffset: Int64, logEndOffset: Int64)
    case batchTooLarge(bytes: Int, limit: Int)
    case invalidBatch(BatchDefect)
    /// An append's leader epoch is below the epoch of the last batch in the log.
    case diskFull(StorageIOError)
    case permissionDenied(StorageIOError)
    /// EROFS: the file system was mounted (or remounted, after errors) read-only. Not a
    /// permission problem: chmod will not help, the mount has to be fixed.
    case readOnlyFileSystem(StorageIOError)
    case directoryMissing(String)
    case io(StorageIOError)
    /// Stored bytes that fail verification where a torn write cannot explain them
    /// (a sealed segment, or below the recovery point). Never skipped silently.
    case corruptSegment(path: String, position: Int64, reason: String)
    case corruptCheckpoint(path: String, reason: String)
    /// A durability wait whose offset a truncation removed before it was synced.
    case truncatedBeforeDurable(offset: Int64)
    case invalidConfiguration(String)
    /// A watermark wait found the log holding its bound of waits (`LogConfig.maxWatermarkWaits`).
    case tooManyWaits(limit: Int)
    /// The task waiting (for durability) was cancelled.
    case cancelled
    case closed

    public var description: String {
        switch self {
        case .offsetOutOfRange(let offset, let start, let end):
            "offset \(offset) is out of range: the log holds \(start)..<\(end)"
        case .batchTooLarge(let bytes, let limit): "batch of \(bytes) bytes exceeds the limit of \(limit)"
        case .invalidBatch(let defect): "invalid batch: \(defect)"
        case .diskFull(let error): "disk full: \(error)"
        case .permissionDenied(let error): "permission denied: \(error)"
        case .readOnlyFileSystem(let error): "read-only file system: \(error)"
        case .directoryMissing(let path): "log directory \(path) does not exist"
        case .io(let error): "I/O error: \(error)"
        case .corruptSegment(let path, let position, let reason): "corrupt segment \(path) at byte \(position): \(reason)"
        case .corruptCheckpoint(let path, let reason): "corrupt checkpoint \(path): \(reason)"
        case .truncatedBeforeDurable(let offset): "offset \(offset) was truncated before it became durable"
        case .invalidConfiguration(let reason): "invalid log configuration: \(reason)"
        case .tooManyWaits(let limit):
            "the partition already holds \(limit) waits for its watermarks (acks=durable batches and subscribers waiting); try again later"
        case .cancelled: "the wait was cancelled"
        case .closed: "the log is closed"
        }
    }

    /// Maps a file-layer error to the clearest log error for it.
    init(_ error: StorageIOError) {
        switch error.errno {
        case ENOSPC, EDQUOT: self = .diskFull(error)
        case EACCES, EPERM: self = .permissionDenied(error)
        case EROFS: self = .readOnlyFileSystem(error)
        default: self = .io(error)
        }
    }
}
