/// Another file system with a hook that runs before every file sync (on the thread doing
/// the sync, which is the log's sync thread, never the Swift concurrency pool). Tests and
/// the broker's test-only slow-disk flag use it to hold or delay fdatasync; everything
/// else passes straight through.
public final class SyncHookFileSystem: StorageFileSystem {
    public let inner: any StorageFileSystem
    let beforeSync: @Sendable () -> Void

    public init(wrapping inner: any StorageFileSystem, beforeSync: @escaping @Sendable () -> Void) {
        self.inner = inner
        self.beforeSync = beforeSync
    }

    public func open(_ path: String, mode: StorageOpenMode) throws(StorageIOError) -> any StorageFile {
        let beforeSync = beforeSync
        return SyncRoutedFile(try inner.open(path, mode: mode)) { (file) throws(StorageIOError) in
            beforeSync()
            try file.sync()
        }
    }
    public func listDirectory(_ path: String) throws(StorageIOError) -> [String] { try inner.listDirectory(path) }
    public func createDirectory(_ path: String) throws(StorageIOError) { try inner.createDirectory(path) }
    public func rename(_ source: String, to destination: String) throws(StorageIOError) {
        try inner.rename(source, to: destination)
    }
    public func remove(_ path: String) throws(StorageIOError) { try inner.remove(path) }
    public func syncDirectory(_ path: String) throws(StorageIOError) { try inner.syncDirectory(path) }
    public func fileExists(_ path: String) -> Bool { inner.fileExists(path) }
}

/// A file whose `sync` goes through `sync` (a hook, a gate), given the file it wraps;
/// everything else goes straight through. The file of `SyncHookFileSystem` and of a
/// log's `SyncGatedFileSystem`.
final class SyncRoutedFile: StorageFile {
    let inner: any StorageFile
    private let route: (any StorageFile) throws(StorageIOError) -> Void

    init(_ inner: any StorageFile, sync route: @escaping (any StorageFile) throws(StorageIOError) -> Void) {
        self.inner = inner
        self.route = route
    }

    var path: String { inner.path }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        try inner.write(bytes, at: offset)
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        try inner.read(into: buffer, at: offset)
    }
    func size() throws(StorageIOError) -> Int64 { try inner.size() }
    func truncate(to length: Int64) throws(StorageIOError) { try inner.truncate(to: length) }
    func sync() throws(StorageIOError) { try route(inner) }
    func close() { inner.close() }
}
