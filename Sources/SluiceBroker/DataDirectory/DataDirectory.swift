public import SluiceStorage
import Synchronization

/// The broker's data directory, held exclusively for the life of this value.
///
/// Layout (docs/operations.md has the operator's view):
///
///     <data-dir>/
///       .lock              flock(LOCK_EX) by the running broker; holds its pid as text
///       topics.json        topic metadata (`TopicMetadataFile`)
///       topics.json.tmp    only while a new version is being written; ignored and
///                          removed when found at startup (a write torn by a crash)
///       producers.json     idempotent producers' ids and names (`ProducerIDRegistry`)
///       topics/            the partition logs (`PartitionManager`), one directory per
///         <name>-<id>/     topic (name and topic id) holding one per partition,
///           <partition>/   each a `PartitionLog` (docs/storage-format.md)
///
/// The lock is flock(2) on an open file description, so it is dropped by the kernel
/// when the process dies (no stale lock after kill -9) and it also conflicts between
/// two opens inside one process, which lets tests check it without a second process.
public final class DataDirectory: Sendable {
    public let path: String
    private let lockDescriptor: Mutex<Int32?>

    /// The name of the lock file inside the directory.
    public static let lockFileName = ".lock"

    private init(path: String, lockDescriptor: Int32) {
        self.path = path
        self.lockDescriptor = Mutex(lockDescriptor)
    }

    /// Creates the directory (and parents) if needed and takes its lock.
    /// Throws `.dataDirectoryLocked` when another holder has it.
    public static func open(_ path: String) throws(BrokerError) -> DataDirectory {
        precondition(!path.isEmpty, "data directory path is empty")
        try DurableFiles.createDirectories(path)
        let descriptor = try DurableFiles.lockExclusively(path + "/" + lockFileName, holder: path)
        return DataDirectory(path: path, lockDescriptor: descriptor)
    }

    /// Releases the lock. Idempotent; also done on deinit.
    public func close() {
        lockDescriptor.withLock { descriptor in
            if let open = descriptor {
                DurableFiles.unlockAndClose(open)
                descriptor = nil
            }
        }
    }

    public var isOpen: Bool { lockDescriptor.withLock { $0 != nil } }

    deinit { close() }

    /// The path of a file directly inside the directory.
    public func file(_ name: String) -> String {
        precondition(!name.contains("/"), "data directory file names are flat: \(name)")
        return path + "/" + name
    }
}

extension DataDirectory {
    /// The directory of the partition logs under a data directory (the layout above).
    public static func logsPath(of dataDirectory: String) -> String { dataDirectory + "/topics" }

    /// For crash tests: a file system for the partition logs of `dataDirectory` that
    /// journals every sync to `journal`, so a SIGKILLed broker's logs can be cut back to
    /// what was synced (`cutToSyncedState`). The logs there now count as durable.
    public static func recordingSyncs(of dataDirectory: String, journal: String) throws(StorageIOError) -> SyncRecordingFileSystem {
        try SyncRecordingFileSystem(wrapping: PosixFileSystem(), journal: journal, baselineTree: logsPath(of: dataDirectory))
    }

    /// After a broker whose logs were written through `recordingSyncs(of:journal:)` was
    /// killed: makes its partition logs look as a power cut at that moment would have
    /// left them. Only the logs' tree: the metadata files are written outside the
    /// recording file system, always synced, and stay as they are.
    public static func cutToSyncedState(of dataDirectory: String, journal: String) throws -> SyncRecordingFileSystem.CutReport {
        try SyncRecordingFileSystem.cutToSyncedState(directory: logsPath(of: dataDirectory), journal: journal)
    }
}
