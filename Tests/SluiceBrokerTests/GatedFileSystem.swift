import Dispatch
import SluiceStorage
import Synchronization

/// A `SimulatedFileSystem` whose file syncs can be held at a gate: while the gate is
/// closed every fdatasync blocks (on the log's sync thread) until it opens. Lets a test
/// observe what the broker does while a sync is in flight, without timing guesses.
final class GatedFileSystem: StorageFileSystem, @unchecked Sendable {
    let inner: SimulatedFileSystem
    private let gate = Mutex<(closed: Bool, waiting: Int)>((false, 0))
    private let released = DispatchSemaphore(value: 0)

    init(_ inner: SimulatedFileSystem = SimulatedFileSystem()) { self.inner = inner }

    func closeGate() { gate.withLock { $0.closed = true } }

    func openGate() {
        let waiting = gate.withLock { state -> Int in
            state.closed = false
            defer { state.waiting = 0 }
            return state.waiting
        }
        for _ in 0..<waiting { released.signal() }
    }

    /// Syncs blocked at the gate right now.
    var blockedSyncs: Int { gate.withLock { $0.waiting } }

    func passGate() {
        let mustWait = gate.withLock { state -> Bool in
            guard state.closed else { return false }
            state.waiting += 1
            return true
        }
        if mustWait { released.wait() }
    }

    func open(_ path: String, mode: StorageOpenMode) throws(StorageIOError) -> any StorageFile {
        GatedFile(try inner.open(path, mode: mode), system: self)
    }
    func listDirectory(_ path: String) throws(StorageIOError) -> [String] { try inner.listDirectory(path) }
    func createDirectory(_ path: String) throws(StorageIOError) { try inner.createDirectory(path) }
    func rename(_ source: String, to destination: String) throws(StorageIOError) { try inner.rename(source, to: destination) }
    func remove(_ path: String) throws(StorageIOError) { try inner.remove(path) }
    func syncDirectory(_ path: String) throws(StorageIOError) { try inner.syncDirectory(path) }
    func fileExists(_ path: String) -> Bool { inner.fileExists(path) }
}

private final class GatedFile: StorageFile {
    let inner: any StorageFile
    let system: GatedFileSystem

    init(_ inner: any StorageFile, system: GatedFileSystem) {
        self.inner = inner
        self.system = system
    }

    var path: String { inner.path }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int { try inner.write(bytes, at: offset) }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int { try inner.read(into: buffer, at: offset) }
    func size() throws(StorageIOError) -> Int64 { try inner.size() }
    func truncate(to length: Int64) throws(StorageIOError) { try inner.truncate(to: length) }
    func sync() throws(StorageIOError) {
        system.passGate()
        try inner.sync()
    }
    func close() { inner.close() }
}
