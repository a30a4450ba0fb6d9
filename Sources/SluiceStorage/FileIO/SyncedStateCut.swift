// Linux only, like PosixFileSystem: it matches inode numbers and makes hard links.
import Glibc

extension SyncRecordingFileSystem {
    /// What `cutToSyncedState` changed, for test logs.
    public struct CutReport: Sendable, Equatable {
        /// Paths whose creation (or rename to that name) no directory sync covered.
        public var removed: [String] = []
        /// Paths brought back because their removal or replacement was never dir-synced.
        public var restored: [String] = []
        /// Paths whose bytes changed (unsynced tail cut, unsynced overwrites undone).
        public var cut: [String] = []
        /// Bytes dropped from file tails in total.
        public var bytesDropped: Int64 = 0
    }

    /// After the process that wrote through a `SyncRecordingFileSystem` with this
    /// `journal` has died (SIGKILL), makes `directory` (and directories under it that
    /// the journal knows) look as a power cut at that moment would have left it: every
    /// entry not covered by a directory sync is undone (created files removed, renamed
    /// ones put back, removed ones restored from the graveyard), then every file's
    /// unsynced overwrites are undone and its length cut to its last synced length (0 if
    /// it was never synced). Subdirectories themselves are left alone.
    ///
    /// Must not run while the writer lives. Throws if the journal is malformed or a file
    /// the journal says is durable has vanished (the wrapper's assumptions were broken).
    public static func cutToSyncedState(directory: String, journal: String) throws -> CutReport {
        let fileSystem = PosixFileSystem()
        let records = try SyncJournalRecord.decodeAll(readAll(journal, fileSystem))

        var syncedLength: [UInt64: Int64] = [:]
        var pendingUndos: [UInt64: [(offset: Int64, bytes: [UInt8])]] = [:]
        var durableEntries: [String: [SyncJournalEntry]] = [:]
        for record in records {
            switch record {
            case .fileSynced(let inode, let length, _):
                syncedLength[inode] = length
                pendingUndos[inode] = []
            case .undo(let inode, let offset, let bytes):
                pendingUndos[inode, default: []].append((offset, bytes))
            case .directorySynced(let path, let entries):
                durableEntries[normalized(path)] = entries
            }
        }

        let root = normalized(directory)
        let directories = Set([root] + durableEntries.keys.filter { $0.hasPrefix(root + "/") })
            .filter { fileSystem.fileExists($0) }
            .sorted()
        let graveyard = journal + ".graveyard"
        try fileSystem.createDirectory(graveyard)
        var report = CutReport()

        // Keep a link to every file on disk before removing names, so a durable name
        // whose inode now sits under another (unsynced) name can be linked back.
        for path in directories {
            for entry in try entries(of: path, fileSystem) {
                try linkIgnoringExisting(path + "/" + entry.name, graveyard + "/" + String(entry.inode))
            }
        }

        var durableFiles: [UInt64: String] = [:]
        for path in directories {
            let durable = Dictionary(
                (durableEntries[path] ?? []).map { ($0.name, $0.inode) }, uniquingKeysWith: { _, last in last })
            for entry in try entries(of: path, fileSystem) where durable[entry.name] != entry.inode {
                try fileSystem.remove(path + "/" + entry.name)
                report.removed.append(path + "/" + entry.name)
            }
            for (name, inode) in durable.sorted(by: { $0.key < $1.key }) {
                let target = path + "/" + name
                if !fileSystem.fileExists(target) {
                    guard link(graveyard + "/" + String(inode), target) == 0 else {
                        throw SyncJournalError(message: "durable file \(target) (inode \(inode)) is gone: errno \(errno)")
                    }
                    report.restored.append(target)
                }
                durableFiles[inode] = durableFiles[inode] ?? target
            }
        }

        for (inode, path) in durableFiles.sorted(by: { $0.value < $1.value }) {
            let file = try fileSystem.open(path, mode: .readWrite)
            defer { file.close() }
            let sizeBefore = try file.size()
            let undos = pendingUndos[inode] ?? []
            for undo in undos.reversed() {
                try writeAll(undo.bytes, to: file, at: undo.offset)
            }
            let length = syncedLength[inode] ?? 0
            try file.truncate(to: length)
            if !undos.isEmpty || sizeBefore != length {
                report.cut.append(path)
                report.bytesDropped += max(0, sizeBefore - length)
            }
        }

        try removeGraveyard(graveyard)
        return report
    }

    private static func normalized(_ path: String) -> String {
        let joined = path.split(separator: "/").joined(separator: "/")
        return path.hasPrefix("/") ? "/" + joined : joined
    }

    private static func linkIgnoringExisting(_ source: String, _ destination: String) throws(StorageIOError) {
        if link(source, destination) != 0 && errno != EEXIST {
            throw StorageIOError(errno: errno, operation: "link", path: source)
        }
    }

    private static func readAll(_ path: String, _ fileSystem: PosixFileSystem) throws -> [UInt8] {
        let file = try fileSystem.open(path, mode: .readOnly)
        defer { file.close() }
        var bytes = [UInt8](repeating: 0, count: Int(try file.size()))
        var done = 0
        while done < bytes.count {
            let count = try bytes.withUnsafeMutableBytes { buffer in
                try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), at: Int64(done))
            }
            guard count > 0 else { break }
            done += count
        }
        return Array(bytes[0..<done])
    }

    private static func writeAll(_ bytes: [UInt8], to file: any StorageFile, at offset: Int64) throws {
        var done = 0
        while done < bytes.count {
            done += try bytes.withUnsafeBytes { buffer in
                try file.write(UnsafeRawBufferPointer(rebasing: buffer[done...]), at: offset + Int64(done))
            }
        }
    }
}
