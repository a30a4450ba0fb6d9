// Linux only, like PosixFileSystem: it reads inode numbers and makes hard links.
import Glibc

/// Wraps a real file system and records in a journal (format in SyncJournal.swift) what
/// the process has made durable, so a test can SIGKILL the process and then cut its
/// files back to exactly that state with `cutToSyncedState(directory:journal:)`.
/// SIGKILL alone proves nothing about durability: the page cache keeps every write.
///
/// What it records, always after the wrapped call succeeded and before returning:
/// - `sync()` of a file: "inode I is durable up to length L", L being the size before
///   the fdatasync started (bytes appended while it ran are not claimed);
/// - `syncDirectory`: the directory's entries (name, inode) after the fsync;
/// - a write over, or a shrink below, a file's synced length: the old bytes (undo), so
///   the cut can restore what the last sync made durable.
/// Removed files and files replaced by a rename stay reachable through a hard link in
/// `<journal>.graveyard/<inode>`, so the cut can bring back a removal that no directory
/// sync covered.
///
/// Assumptions (true of the partition log): the directories watched hold regular files
/// only; a file is not overwritten below its synced length while its own sync runs;
/// files that exist when the wrapper first sees them (or that are listed as baseline
/// directories) are durable as they are — start it on a directory that is, for example
/// one just cut back by a previous run. All paths must be on one file system (hard links).
public final class SyncRecordingFileSystem: StorageFileSystem, @unchecked Sendable {
    private let inner: any StorageFileSystem
    private let journalPath: String
    private let graveyardPath: String
    private let lock = StorageIOLock()
    // Guarded by `lock`.
    private var journalDescriptor: Int32
    private var syncedLengths: [UInt64: Int64] = [:]
    /// Shrinks per inode, so a sync that raced with one claims nothing.
    private var shrinks: [UInt64: Int] = [:]

    /// Starts a fresh journal at `journal` (replacing any old one) and records each
    /// existing directory of `baselineDirectories` and its files as durable.
    public init(
        wrapping inner: any StorageFileSystem, journal: String, baselineDirectories: [String] = []
    ) throws(StorageIOError) {
        self.inner = inner
        self.journalPath = journal
        self.graveyardPath = journal + ".graveyard"
        try Self.removeGraveyard(graveyardPath)
        try inner.createDirectory(graveyardPath)
        let descriptor = Glibc.open(journal, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw StorageIOError(errno: errno, operation: "open journal", path: journal) }
        self.journalDescriptor = descriptor
        try lock.withLock { () throws(StorageIOError) in
            try appendLocked(SyncJournalRecord.magic)
            for directory in baselineDirectories where inner.fileExists(directory) {
                let entries = try Self.entries(of: directory, inner)
                for entry in entries {
                    let path = directory + "/" + entry.name
                    try recordFirstSightLocked(inode: entry.inode, size: Self.fileSize(path), path: path)
                }
                try appendLocked(SyncJournalRecord.directorySynced(path: directory, entries: entries).encoded())
            }
        }
    }

    /// Starts a fresh journal at `journal` with `root` and every directory below it as
    /// the baseline: what exists there now counts as durable.
    public convenience init(wrapping inner: any StorageFileSystem, journal: String, baselineTree root: String) throws(StorageIOError) {
        try self.init(wrapping: inner, journal: journal, baselineDirectories: Self.directoryTree(root, inner))
    }

    /// `root` and the directories below it, each before its own, siblings in name order;
    /// empty when `root` is not a directory.
    static func directoryTree(_ root: String, _ fileSystem: any StorageFileSystem) -> [String] {
        guard let names = try? fileSystem.listDirectory(root) else { return [] }
        return [root] + names.sorted().flatMap { directoryTree(root + "/" + $0, fileSystem) }
    }

    deinit {
        _ = Glibc.close(journalDescriptor)
    }

    // MARK: StorageFileSystem

    public func open(_ path: String, mode: StorageOpenMode) throws(StorageIOError) -> any StorageFile {
        try lock.withLock { () throws(StorageIOError) -> any StorageFile in
            let file = try inner.open(path, mode: mode)
            do throws(StorageIOError) {
                let inode = try Self.inode(of: path)
                if mode == .createNew {
                    syncedLengths[inode] = 0
                } else {
                    try recordFirstSightLocked(inode: inode, size: file.size(), path: path)
                }
                return RecordingFile(file, inode: inode, system: self)
            } catch {
                file.close()
                throw error
            }
        }
    }

    public func listDirectory(_ path: String) throws(StorageIOError) -> [String] {
        try inner.listDirectory(path)
    }

    public func createDirectory(_ path: String) throws(StorageIOError) {
        try inner.createDirectory(path)
    }

    public func rename(_ source: String, to destination: String) throws(StorageIOError) {
        try lock.withLock { () throws(StorageIOError) in
            // The file rename replaces is durable under its name until a directory sync.
            if inner.fileExists(destination) { try buryLocked(destination) }
            try inner.rename(source, to: destination)
        }
    }

    public func remove(_ path: String) throws(StorageIOError) {
        try lock.withLock { () throws(StorageIOError) in
            if Self.isRegularFile(path) { try buryLocked(path) }
            try inner.remove(path)
        }
    }

    public func syncDirectory(_ path: String) throws(StorageIOError) {
        // Under the lock so no creation, rename or removal slips between the fsync and
        // the listing that claims it.
        try lock.withLock { () throws(StorageIOError) in
            try inner.syncDirectory(path)
            let entries = try Self.entries(of: path, inner)
            try appendLocked(SyncJournalRecord.directorySynced(path: path, entries: entries).encoded())
        }
    }

    public func fileExists(_ path: String) -> Bool {
        inner.fileExists(path)
    }

    // MARK: Called by RecordingFile

    func shrinkCount(inode: UInt64) -> Int {
        lock.withLock { shrinks[inode, default: 0] }
    }

    /// Records a sync that covered `length` bytes, measured when the sync started.
    /// Syncs of one file may overlap (the log's flusher and a roll), so a sync that ends
    /// last may have started first: the durable length only grows, unless the file shrank
    /// meanwhile, in which case this sync claims nothing (it may or may not cover the shrink).
    func fileSynced(inode: UInt64, length: Int64, shrinksBefore: Int, path: String) throws(StorageIOError) {
        try lock.withLock { () throws(StorageIOError) in
            guard shrinks[inode, default: 0] == shrinksBefore else { return }
            let durable = max(length, syncedLengths[inode] ?? 0)
            try appendLocked(SyncJournalRecord.fileSynced(inode: inode, length: durable, path: path).encoded())
            syncedLengths[inode] = durable
        }
    }

    /// Saves the synced bytes in `range` that are about to change.
    func aboutToChange(_ file: any StorageFile, inode: UInt64, range: Range<Int64>, shrinking: Bool = false) throws(StorageIOError) {
        try lock.withLock { () throws(StorageIOError) in
            if shrinking { shrinks[inode, default: 0] += 1 }
            let synced = syncedLengths[inode] ?? 0
            guard range.lowerBound < synced else { return }  // the common case: appending
            let size = try file.size()
            let end = min(range.upperBound, synced, size)
            guard range.lowerBound < end else { return }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(end - range.lowerBound), alignment: 1)
            defer { buffer.deallocate() }
            var done = 0
            while done < buffer.count {
                let count = try file.read(
                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), at: range.lowerBound + Int64(done))
                guard count > 0 else { break }
                done += count
            }
            let saved = Array(UnsafeRawBufferPointer(rebasing: buffer[0..<done]))
            try appendLocked(SyncJournalRecord.undo(inode: inode, offset: range.lowerBound, bytes: saved).encoded())
        }
    }

    // MARK: Internals

    private func recordFirstSightLocked(inode: UInt64, size: Int64, path: String) throws(StorageIOError) {
        guard syncedLengths[inode] == nil else { return }
        try appendLocked(SyncJournalRecord.fileSynced(inode: inode, length: size, path: path).encoded())
        syncedLengths[inode] = size
    }

    private func buryLocked(_ path: String) throws(StorageIOError) {
        let grave = graveyardPath + "/" + String(try Self.inode(of: path))
        if link(path, grave) != 0 && errno != EEXIST {
            throw StorageIOError(errno: errno, operation: "link into graveyard", path: path)
        }
    }

    private func appendLocked(_ bytes: [UInt8]) throws(StorageIOError) {
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                let rest = UnsafeRawBufferPointer(rebasing: buffer[done...])
                return Glibc.write(journalDescriptor, rest.baseAddress, rest.count)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw StorageIOError(errno: errno, operation: "write journal", path: journalPath)
            }
            done += count
        }
    }

    static func inode(of path: String) throws(StorageIOError) -> UInt64 {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw StorageIOError(errno: errno, operation: "lstat", path: path) }
        return UInt64(info.st_ino)
    }

    static func fileSize(_ path: String) throws(StorageIOError) -> Int64 {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw StorageIOError(errno: errno, operation: "lstat", path: path) }
        return Int64(info.st_size)
    }

    static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    /// The regular files of a directory with their inode numbers, sorted by name.
    static func entries(of directory: String, _ fileSystem: any StorageFileSystem) throws(StorageIOError) -> [SyncJournalEntry] {
        var entries: [SyncJournalEntry] = []
        for name in try fileSystem.listDirectory(directory).sorted() {
            let path = directory + "/" + name
            guard isRegularFile(path) else { continue }
            entries.append(SyncJournalEntry(name: name, inode: try inode(of: path)))
        }
        return entries
    }

    static func removeGraveyard(_ path: String) throws(StorageIOError) {
        let fileSystem = PosixFileSystem()
        guard fileSystem.fileExists(path) else { return }
        for name in try fileSystem.listDirectory(path) { try fileSystem.remove(path + "/" + name) }
        try fileSystem.remove(path)
    }
}

/// A file handle that reports its syncs (and pending overwrites of synced bytes) to the
/// recording file system.
final class RecordingFile: StorageFile {
    private let inner: any StorageFile
    private let inode: UInt64
    private let system: SyncRecordingFileSystem

    init(_ inner: any StorageFile, inode: UInt64, system: SyncRecordingFileSystem) {
        self.inner = inner
        self.inode = inode
        self.system = system
    }

    var path: String { inner.path }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        try system.aboutToChange(inner, inode: inode, range: offset..<(offset + Int64(bytes.count)))
        return try inner.write(bytes, at: offset)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        try inner.read(into: buffer, at: offset)
    }

    func size() throws(StorageIOError) -> Int64 {
        try inner.size()
    }

    func truncate(to length: Int64) throws(StorageIOError) {
        try system.aboutToChange(inner, inode: inode, range: length..<Int64.max, shrinking: true)
        try inner.truncate(to: length)
    }

    func sync() throws(StorageIOError) {
        // Only bytes present before fdatasync starts are claimed durable.
        let shrinksBefore = system.shrinkCount(inode: inode)
        let length = try inner.size()
        try inner.sync()
        try system.fileSynced(inode: inode, length: length, shrinksBefore: shrinksBefore, path: inner.path)
    }

    func close() {
        inner.close()
    }
}
