import Glibc

// Every byte the storage engine reads or writes goes through these two protocols, so
// that tests can swap the real file system for one that injects faults (EIO, ENOSPC,
// short writes) and power cuts deterministically from a seed, and so that a real
// process can record what it has synced for the crash test.
//
// Durability model (what a power cut may undo), which every implementation honours:
// - file bytes are durable only up to the last `StorageFile.sync()` of that file;
// - creating, renaming or removing a directory entry is durable only after
//   `syncDirectory` of the parent directory.

/// An error from the file layer, carrying the errno so callers can tell a full disk
/// from a failing one. Storage turns these into its own errors and fences a partition
/// after any write or sync failure (the kernel may have dropped the dirty pages).
public struct StorageIOError: Error, Sendable, Equatable, CustomStringConvertible {
    public var errno: Int32
    public var operation: String
    public var path: String

    public init(errno: Int32, operation: String, path: String) {
        self.errno = errno
        self.operation = operation
        self.path = path
    }

    /// "pwrite /data/t/0/00000000000000000000.log: Read-only file system (errno 30)":
    /// the system's words for the errno, so an operator need not look the number up.
    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))" }
}

public enum StorageOpenMode: Sendable, Equatable {
    /// Open an existing file for reading only.
    case readOnly
    /// Open an existing file for reading and writing.
    case readWrite
    /// Create the file (failing if it exists) for reading and writing.
    case createNew
}

/// One open file. Not thread-safe: a file belongs to one partition log at a time,
/// which serialises its calls, with one exception the log relies on: `sync()` (the
/// group-commit flusher) and `read(into:at:)` (the bulk part of a read) may run on
/// other threads while the owner calls `write`/`read`/`size`/`truncate` on this
/// file or another handle of it. POSIX descriptors allow this; an in-memory
/// implementation must lock. `sync` then makes durable at least the bytes written
/// before it was called. `close()` is never concurrent with any call.
public protocol StorageFile: AnyObject {
    var path: String { get }
    /// Writes at `offset`; returns how many bytes were written (may be short).
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int
    /// Reads up to `buffer.count` bytes at `offset`; returns how many were read (0 at end).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int
    func size() throws(StorageIOError) -> Int64
    /// Cuts or extends (with zeros) the file to `length` bytes.
    func truncate(to length: Int64) throws(StorageIOError)
    /// fdatasync: the file's bytes written so far survive a power cut.
    func sync() throws(StorageIOError)
    func close()
}

public protocol StorageFileSystem: Sendable {
    func open(_ path: String, mode: StorageOpenMode) throws(StorageIOError) -> any StorageFile
    /// Entry names (not paths) of a directory, in no particular order.
    func listDirectory(_ path: String) throws(StorageIOError) -> [String]
    /// Creates the directory and any missing parents; succeeds if it exists.
    func createDirectory(_ path: String) throws(StorageIOError)
    /// Atomically replaces `destination` with `source` (rename(2)).
    func rename(_ source: String, to destination: String) throws(StorageIOError)
    /// Removes a file or an empty directory.
    func remove(_ path: String) throws(StorageIOError)
    /// fsync of a directory: makes entry creations, renames and removals durable.
    func syncDirectory(_ path: String) throws(StorageIOError)
    func fileExists(_ path: String) -> Bool
}
