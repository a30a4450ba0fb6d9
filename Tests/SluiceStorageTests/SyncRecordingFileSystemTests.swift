import SluiceTestSupport
import Testing
@testable import SluiceStorage

/// The recording wrapper and the cut back to the synced state, on the real file system.
/// Each test plays a process that dies (the wrapper is dropped without cleanup) and
/// checks that the cut leaves what a power cut at that moment would have left.
@Suite(.timeLimit(.minutes(2))) struct SyncRecordingFileSystemTests {
    private struct Setup {
        let temporary = TemporaryDirectory()
        var data: String { temporary.path + "/data" }
        var journal: String { temporary.path + "/journal" }

        func recording(baseline: Bool = false) throws -> SyncRecordingFileSystem {
            try PosixFileSystem().createDirectory(data)
            return try SyncRecordingFileSystem(
                wrapping: PosixFileSystem(), journal: journal, baselineDirectories: baseline ? [data] : [])
        }

        func cut() throws -> SyncRecordingFileSystem.CutReport {
            try SyncRecordingFileSystem.cutToSyncedState(directory: data, journal: journal)
        }

        func names() throws -> [String] { try PosixFileSystem().listDirectory(data).sorted() }

        /// A recording file system and a new file `name` on it whose directory entry is
        /// already synced, so only what the test does to its bytes is in question.
        func newFileWithSyncedEntry(_ name: String) throws -> (system: SyncRecordingFileSystem, file: any StorageFile, path: String) {
            let system = try recording()
            let path = data + "/" + name
            let file = try system.open(path, mode: .createNew)
            try system.syncDirectory(data)
            return (system, file, path)
        }
    }

    private func append(_ bytes: [UInt8], to file: any StorageFile, at offset: Int64) throws {
        let written = try bytes.withUnsafeBytes { try file.write($0, at: offset) }
        #expect(written == bytes.count)
    }

    @Test func syncedFileWithoutDirectorySyncIsRemoved() throws {
        let setup = Setup()
        defer { setup.temporary.remove() }
        let system = try setup.recording()
        let file = try system.open(setup.data + "/a", mode: .createNew)
        try append([1, 2, 3], to: file, at: 0)
        try file.sync()
        let report = try setup.cut()
        #expect(try setup.names() == [])
        #expect(report.removed == [setup.data + "/a"])
    }

    @Test func unsyncedTailIsCutAndSyncedBytesStay() throws {
        let setup = Setup()
        defer { setup.temporary.remove() }
        let (system, file, _) = try setup.newFileWithSyncedEntry("a")
        try append([1, 2, 3], to: file, at: 0)
        try file.sync()
        try append([4, 5, 6], to: file, at: 3)
        let other = try system.open(setup.data + "/never-synced-bytes", mode: .createNew)
        try append([7], to: other, at: 0)
        try system.syncDirectory(setup.data)
        let report = try setup.cut()
        #expect(try readWholeFile(setup.data + "/a") == [1, 2, 3])
        #expect(try readWholeFile(setup.data + "/never-synced-bytes") == [])
        #expect(report.bytesDropped == 4)
    }

    @Test func renameWithoutDirectorySyncIsReverted() throws {
        let setup = Setup()
        defer { setup.temporary.remove() }
        let system = try setup.recording()
        let old = try system.open(setup.data + "/checkpoint", mode: .createNew)
        try append([1], to: old, at: 0)
        try old.sync()
        try system.syncDirectory(setup.data)
        let new = try system.open(setup.data + "/checkpoint.tmp", mode: .createNew)
        try append([2], to: new, at: 0)
        try new.sync()
        try system.syncDirectory(setup.data)
        try system.rename(setup.data + "/checkpoint.tmp", to: setup.data + "/checkpoint")
        let report = try setup.cut()
        #expect(try setup.names() == ["checkpoint", "checkpoint.tmp"])
        #expect(try readWholeFile(setup.data + "/checkpoint") == [1])
        #expect(try readWholeFile(setup.data + "/checkpoint.tmp") == [2])
        #expect(report.restored.sorted() == [setup.data + "/checkpoint", setup.data + "/checkpoint.tmp"])
    }

    @Test func renameCoveredByDirectorySyncStays() throws {
        let setup = Setup()
        defer { setup.temporary.remove() }
        let system = try setup.recording()
        let new = try system.open(setup.data + "/checkpoint.tmp", mode: .createNew)
        try append([2], to: new, at: 0)
        try new.sync()
        try system.rename(setup.data + "/checkpoint.tmp", to: setup.data + "/checkpoint")
        try system.syncDirectory(setup.data)
        _ = try setup.cut()
        #expect(try setup.names() == ["checkpoint"])
        #expect(try readWholeFile(setup.data + "/checkpoint") == [2])
    }

    @Test func removeWithoutDirectorySyncIsRestored() throws {
        let setup = Setup()
        defer { setup.temporary.remove() }
        let system = try setup.recording()
        let file = try system.open(setup.data + "/00000000000000000000.log", mode: .createNew)
        try append([9, 8, 7], to: file, at: 0)
        try file.sync()
        try system.syncDirectory(setup.data)
        file.close()
        try system.remove(setup.data + "/00000000000000000000.log")
        _ = try setup.cut()
        #expect(try readWholeFile(setup.data + "/00000000000000000000.log") == [9, 8, 7])
    }

    @Test func overwritesAndShrinksOfSyncedBytesAreUndone() throws {
        let setup = Setup()
        defer { setup.temporary.remove() }
        let (_, file, path) = try setup.newFileWithSyncedEntry("index")
        try append([1, 2, 3, 4, 5, 6], to: file, at: 0)
        try file.sync()
        try append([0xAA, 0xBB], to: file, at: 1)
        try file.truncate(to: 2)
        try append([0xCC], to: file, at: 0)
        #expect(try readWholeFile(path) == [0xCC, 0xAA])
        _ = try setup.cut()
        #expect(try readWholeFile(path) == [1, 2, 3, 4, 5, 6])
    }

    @Test func overwriteAfterALaterSyncIsKept() throws {
        let setup = Setup()
        defer { setup.temporary.remove() }
        let (_, file, path) = try setup.newFileWithSyncedEntry("index")
        try append([1, 2, 3], to: file, at: 0)
        try file.sync()
        try append([9], to: file, at: 0)
        try file.sync()
        _ = try setup.cut()
        #expect(try readWholeFile(path) == [9, 2, 3])
    }

    /// The log's flusher and a roll can sync one file at the same time; the sync that
    /// ends last may have measured the smaller length when it started.
    @Test func overlappingSyncsNeverLowerTheDurableLength() throws {
        let setup = Setup()
        defer { setup.temporary.remove() }
        let (system, file, path) = try setup.newFileWithSyncedEntry("segment")
        let inode = try SyncRecordingFileSystem.inode(of: path)
        try append([UInt8](repeating: 1, count: 20), to: file, at: 0)
        try file.sync()
        // A sync that started when the file held 12 bytes reports after the one above.
        try system.fileSynced(inode: inode, length: 12, shrinksBefore: system.shrinkCount(inode: inode), path: path)
        try append([2, 2], to: file, at: 20)
        _ = try setup.cut()
        #expect(try readWholeFile(path).count == 20)
    }

    @Test func aSyncOverlappingAShrinkClaimsNothing() throws {
        let setup = Setup()
        defer { setup.temporary.remove() }
        let (system, file, path) = try setup.newFileWithSyncedEntry("segment")
        let inode = try SyncRecordingFileSystem.inode(of: path)
        try append([UInt8](repeating: 1, count: 10), to: file, at: 0)
        try file.sync()
        let shrinksBefore = system.shrinkCount(inode: inode)
        try append([UInt8](repeating: 2, count: 10), to: file, at: 10)
        try file.truncate(to: 4)
        try system.fileSynced(inode: inode, length: 20, shrinksBefore: shrinksBefore, path: path)
        _ = try setup.cut()
        #expect(try readWholeFile(path) == [UInt8](repeating: 1, count: 10))
    }

    @Test func baselineFilesAreDurableAsFound() throws {
        let setup = Setup()
        defer { setup.temporary.remove() }
        try PosixFileSystem().createDirectory(setup.data)
        try writeWholeFile(setup.data + "/old", [1, 2])
        let system = try setup.recording(baseline: true)
        let old = try system.open(setup.data + "/old", mode: .readWrite)
        try append([3], to: old, at: 2)
        _ = try system.open(setup.data + "/new", mode: .createNew)
        _ = try setup.cut()
        #expect(try setup.names() == ["old"])
        #expect(try readWholeFile(setup.data + "/old") == [1, 2])
    }

    @Test func journalRoundTripsAndIgnoresATornTail() throws {
        let records: [SyncJournalRecord] = [
            .fileSynced(inode: 42, length: 1 << 40, path: "/d/a"),
            .directorySynced(path: "/d", entries: [SyncJournalEntry(name: "a", inode: 42), SyncJournalEntry(name: "b", inode: 7)]),
            .undo(inode: 42, offset: 3, bytes: [1, 2, 3]),
        ]
        let bytes = SyncJournalRecord.magic + records.flatMap { $0.encoded() }
        #expect(try SyncJournalRecord.decodeAll(bytes) == records)
        #expect(try SyncJournalRecord.decodeAll(Array(bytes.dropLast(2))) == Array(records.prefix(2)))
        #expect(throws: SyncJournalError.self) { try SyncJournalRecord.decodeAll([0, 1, 2, 3]) }
        // A fileSynced record: length 4 + kind 1 + inode 8 + length 8 + path length 2 + path.
        let one = SyncJournalRecord.fileSynced(inode: 1, length: 2, path: "p").encoded()
        #expect(one == [20, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x70])
    }
}
