import Glibc
import SluiceStorage
import SluiceTestSupport
import Testing

@Suite(.timeLimit(.minutes(2))) struct PosixFileSystemTests {
    let fileSystem = PosixFileSystem()

    @Test func writeReadTruncateSyncRoundTrip() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/a.log"
        let file = try fileSystem.open(path, mode: .createNew)
        let payload: [UInt8] = Array("hello, sluice".utf8)
        #expect(try payload.withUnsafeBytes { try file.write($0, at: 4) } == payload.count)
        #expect(try file.size() == Int64(4 + payload.count))
        try file.sync()
        var back = [UInt8](repeating: 0xAA, count: payload.count)
        #expect(try back.withUnsafeMutableBytes { try file.read(into: $0, at: 4) } == payload.count)
        #expect(back == payload)
        // A hole reads as zeros; a read at the end returns 0.
        var hole = [UInt8](repeating: 0xAA, count: 4)
        #expect(try hole.withUnsafeMutableBytes { try file.read(into: $0, at: 0) } == 4)
        #expect(hole == [0, 0, 0, 0])
        #expect(try hole.withUnsafeMutableBytes { try file.read(into: $0, at: 100) } == 0)
        try file.truncate(to: 6)
        #expect(try file.size() == 6)
        file.close()
        #expect(try readWholeFile(path) == [0, 0, 0, 0] + Array("he".utf8))
    }

    @Test func createNewRefusesExistingAndOpenRefusesMissing() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/x"
        try fileSystem.open(path, mode: .createNew).close()
        #expect(throws: StorageIOError(errno: EEXIST, operation: "open", path: path)) {
            try fileSystem.open(path, mode: .createNew)
        }
        #expect(throws: StorageIOError(errno: ENOENT, operation: "open", path: path + "y")) {
            try fileSystem.open(path + "y", mode: .readWrite)
        }
    }

    @Test func directoryOperations() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let nested = directory.path + "/p/q/r"
        try fileSystem.createDirectory(nested)
        try fileSystem.createDirectory(nested)  // exists: fine
        try fileSystem.open(nested + "/one", mode: .createNew).close()
        try fileSystem.rename(nested + "/one", to: nested + "/two")
        try fileSystem.syncDirectory(nested)
        #expect(try fileSystem.listDirectory(nested) == ["two"])
        #expect(fileSystem.fileExists(nested + "/two"))
        #expect(!fileSystem.fileExists(nested + "/one"))
        try fileSystem.remove(nested + "/two")
        try fileSystem.remove(nested)
        #expect(!fileSystem.fileExists(nested))
        #expect(throws: StorageIOError.self) { try fileSystem.listDirectory(nested) }
        // A file in the way of a directory is an error, not success.
        try fileSystem.open(directory.path + "/file", mode: .createNew).close()
        #expect(throws: StorageIOError.self) { try fileSystem.createDirectory(directory.path + "/file/sub") }
    }
}
