import SluiceStorage
import Synchronization

/// Wraps the real file system to count syncs, fail chosen operations with an errno,
/// and hold syncs at a turnstile (`syncs`), so tests can inject faults without a full
/// simulator.
public final class InstrumentedFileSystem: StorageFileSystem {
    public struct Rules: Sendable {
        public var failWritesWith: Int32?
        public var failSyncsWith: Int32?
        public var syncCount = 0
        public var openFiles = 0
        public var peakOpenFiles = 0
    }

    public let inner = PosixFileSystem()
    public let rules = Mutex(Rules())
    /// Hold syncs here (`syncs.hold(1)`), wait until they arrive, let them go.
    public let syncs = SyncTurnstile()

    public init() {}

    public func update(_ change: (inout Rules) -> Void) { rules.withLock { change(&$0) } }
    public var syncCount: Int { rules.withLock { $0.syncCount } }
    public var openFiles: Int { rules.withLock { $0.openFiles } }
    public var peakOpenFiles: Int { rules.withLock { $0.peakOpenFiles } }

    fileprivate func opened() {
        rules.withLock { rules in
            rules.openFiles += 1
            rules.peakOpenFiles = max(rules.peakOpenFiles, rules.openFiles)
        }
    }

    fileprivate func closed() { rules.withLock { $0.openFiles -= 1 } }

    fileprivate func beforeSync() throws(StorageIOError) {
        syncs.pass()
        let failure = rules.withLock { $0.failSyncsWith }
        if let failure { throw StorageIOError(errno: failure, operation: "fdatasync", path: "(injected)") }
        rules.withLock { $0.syncCount += 1 }
    }

    fileprivate func beforeWrite(_ path: String) throws(StorageIOError) {
        if let failure = rules.withLock({ $0.failWritesWith }) {
            throw StorageIOError(errno: failure, operation: "pwrite", path: path)
        }
    }

    public func open(_ path: String, mode: StorageOpenMode) throws(StorageIOError) -> any StorageFile {
        let file = InstrumentedFile(inner: try inner.open(path, mode: mode), owner: self)
        opened()
        return file
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

private final class InstrumentedFile: StorageFile {
    let inner: any StorageFile
    let owner: InstrumentedFileSystem
    init(inner: any StorageFile, owner: InstrumentedFileSystem) {
        self.inner = inner
        self.owner = owner
    }
    var path: String { inner.path }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        try owner.beforeWrite(path)
        return try inner.write(bytes, at: offset)
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        try inner.read(into: buffer, at: offset)
    }
    func size() throws(StorageIOError) -> Int64 { try inner.size() }
    func truncate(to length: Int64) throws(StorageIOError) { try inner.truncate(to: length) }
    func sync() throws(StorageIOError) {
        try owner.beforeSync()
        try inner.sync()
    }
    private var isClosed = false
    func close() {
        // Counted once: closing twice is the caller's bug, and would hide a leak.
        precondition(!isClosed, "file closed twice: \(path)")
        isClosed = true
        inner.close()
        owner.closed()
    }
}
