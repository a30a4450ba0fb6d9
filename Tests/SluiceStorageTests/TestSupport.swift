import Glibc
import NIOCore
import SluiceStorage
import SluiceTestSupport

/// Whole contents of a file through the file system under test.
func readWholeFile(_ path: String, _ fileSystem: any StorageFileSystem = PosixFileSystem()) throws -> [UInt8] {
    let file = try fileSystem.open(path, mode: .readOnly)
    defer { file.close() }
    let size = Int(try file.size())
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let count = try bytes.withUnsafeMutableBytes { raw in
            try file.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[done...]), at: Int64(done))
        }
        if count == 0 { break }
        done += count
    }
    return Array(bytes[..<done])
}

func writeWholeFile(_ path: String, _ bytes: [UInt8], _ fileSystem: any StorageFileSystem = PosixFileSystem()) throws {
    if fileSystem.fileExists(path) { try fileSystem.remove(path) }
    let file = try fileSystem.open(path, mode: .createNew)
    defer { file.close() }
    let written = try bytes.withUnsafeBytes { try file.write($0, at: 0) }
    precondition(written == bytes.count, "short write in test helper")
}
