import Synchronization

/// Every fdatasync and directory fsync of one `PartitionLog`, whoever asks for it (the
/// group-commit flusher on a pool thread, or a roll, truncation, retention, checkpoint
/// or close under the log's lock), passes through this one gate, which:
///
/// - runs the syncs of one file (by path, whatever the descriptor) one at a time, so a
///   sync under the log's lock waits for the flusher's sync of that file in flight and
///   learns its result before going on. Without this, a roll could
///   seal the segment whose fdatasync had just failed on the flusher's thread: Linux
///   reports a writeback error once per file description, so the seal's fdatasync
///   returns 0 although the pages the failed one dropped never reached the disk, and
///   the roll then moved the durable offset and the recovery point past them;
/// - remembers the first failure and refuses every later sync of this log with it
///   ("poisoned"). After a failed sync no sync of any of the log's files may claim
///   durability again: not of the same descriptor (the kernel reports the error once),
///   and not of a new descriptor of the same file (it never sees an error that
///   happened before it was opened), as a truncation or a reload would use. The log
///   fences on the first failure anyway, so refusing all of them costs nothing.
///
/// Holding a path's turn across its sync is the point: the only code run under it is
/// the sync itself, which never takes the log's lock, so the order is always log lock,
/// then turn, and nothing can deadlock on it.
final class SyncGate: Sendable {
    /// One per path with a sync running or waiting: syncs of one file (any descriptor)
    /// take turns; syncs of different files (a checkpoint while the flusher syncs the
    /// active segment) need not wait for each other.
    private final class Turn: Sendable {
        let lock = Mutex<Void>(())
    }

    private struct State {
        var failure: StorageIOError?
        var turns: [String: (turn: Turn, users: Int)] = [:]
    }

    private let state = Mutex(State())
    /// Test hook: called when a sync finds another of the same file in flight and is
    /// about to wait for it.
    private let contentionHook = Mutex<(@Sendable () -> Void)?>(nil)

    /// The failure that poisoned the gate, if any.
    var failure: StorageIOError? { state.withLock { $0.failure } }

    func setContentionHook(_ hook: (@Sendable () -> Void)?) {
        contentionHook.withLock { $0 = hook }
    }

    /// Runs `sync` after any sync of the same path in flight, unless a sync of this
    /// log has failed; records its failure.
    func run(_ path: String, _ sync: () throws(StorageIOError) -> Void) throws(StorageIOError) {
        let (turn, contended) = try state.withLock { (s) throws(StorageIOError) -> (Turn, Bool) in
            try SyncGate.refuseIfPoisoned(s, path)
            var entry = s.turns[path] ?? (Turn(), 0)
            entry.users += 1
            s.turns[path] = entry
            return (entry.turn, entry.users > 1)
        }
        defer {
            state.withLock { s in
                guard var entry = s.turns[path] else { return }
                entry.users -= 1
                s.turns[path] = entry.users == 0 ? nil : entry
            }
        }
        if contended { contentionHook.withLock { $0 }?() }
        // Lock order: a path's turn, then the state (briefly); never the reverse.
        try turn.lock.withLock { (_) throws(StorageIOError) in
            // The sync this one waited for may have failed.
            try state.withLock { (s) throws(StorageIOError) in try SyncGate.refuseIfPoisoned(s, path) }
            do throws(StorageIOError) {
                try sync()
            } catch {
                state.withLock { s in if s.failure == nil { s.failure = error } }
                throw error
            }
        }
    }

    private static func refuseIfPoisoned(_ s: State, _ path: String) throws(StorageIOError) {
        if let earlier = s.failure {
            throw StorageIOError(
                errno: earlier.errno, operation: "sync refused after failed \(earlier.operation) of \(earlier.path)",
                path: path)
        }
    }
}

/// The file system as a `PartitionLog` sees it: the one it was opened with, with every
/// file sync and directory sync going through the log's `SyncGate`.
struct SyncGatedFileSystem: StorageFileSystem {
    let inner: any StorageFileSystem
    let gate: SyncGate

    func open(_ path: String, mode: StorageOpenMode) throws(StorageIOError) -> any StorageFile {
        let gate = gate
        return SyncRoutedFile(try inner.open(path, mode: mode)) { (file) throws(StorageIOError) in
            try gate.run(file.path) { () throws(StorageIOError) in try file.sync() }
        }
    }

    func listDirectory(_ path: String) throws(StorageIOError) -> [String] { try inner.listDirectory(path) }
    func createDirectory(_ path: String) throws(StorageIOError) { try inner.createDirectory(path) }
    func rename(_ source: String, to destination: String) throws(StorageIOError) {
        try inner.rename(source, to: destination)
    }
    func remove(_ path: String) throws(StorageIOError) { try inner.remove(path) }
    func fileExists(_ path: String) -> Bool { inner.fileExists(path) }

    func syncDirectory(_ path: String) throws(StorageIOError) {
        let inner = self.inner
        try gate.run(path) { () throws(StorageIOError) in try inner.syncDirectory(path) }
    }
}
