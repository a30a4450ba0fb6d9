// Whole-buffer I/O and atomic replacement on top of the `StorageFile` contract,
// which allows short reads and writes.

extension StorageFile {
    /// Writes all of `bytes` at `offset`, continuing after short writes.
    func writeFully(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(StorageIOError) {
        var done = 0
        while done < bytes.count {
            let count = try write(UnsafeRawBufferPointer(rebasing: bytes[done...]), at: offset + Int64(done))
            // A zero-byte write with bytes left would loop forever: call it an I/O error.
            guard count > 0 else { throw StorageIOError(errno: 5, operation: "write (no progress)", path: path) }
            done += count
        }
    }

    /// Reads until `buffer` is full or the file ends; returns the bytes read.
    func readFully(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        var done = 0
        while done < buffer.count {
            let count = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), at: offset + Int64(done))
            if count == 0 { break }
            done += count
        }
        return done
    }

    func writeFully(_ bytes: [UInt8], at offset: Int64) throws(StorageIOError) {
        try typedIO { try bytes.withUnsafeBytes { try writeFully($0, at: offset) } }
    }

    func readFully(into bytes: inout [UInt8], at offset: Int64) throws(StorageIOError) -> Int {
        try typedIO { try bytes.withUnsafeMutableBytes { try readFully(into: $0, at: offset) } }
    }

    func readAll() throws(StorageIOError) -> [UInt8] {
        let length = Int(try size())
        var bytes = [UInt8](repeating: 0, count: length)
        let count = try readFully(into: &bytes, at: 0)
        bytes.removeLast(length - count)
        return bytes
    }
}

extension StorageFileSystem {
    /// Replaces `path` with `bytes` so that a crash leaves either the old or the new
    /// contents: write `path.tmp`, fdatasync, rename over `path`, fsync the directory.
    func replaceAtomically(_ path: String, with bytes: [UInt8], directory: String) throws(StorageIOError) {
        let temporary = path + ".tmp"
        if fileExists(temporary) { try remove(temporary) }
        let file = try open(temporary, mode: .createNew)
        do throws(StorageIOError) {
            try file.writeFully(bytes, at: 0)
            try file.sync()
        } catch {
            file.close()
            throw error
        }
        file.close()
        try rename(temporary, to: path)
        try syncDirectory(directory)
    }
}

/// Restores the error type through standard-library closures that only `rethrows`
/// (Array.withUnsafeBytes), whose bodies here throw nothing but StorageIOError.
func typedIO<T>(_ body: () throws -> T) throws(StorageIOError) -> T {
    do {
        return try body()
    } catch let error as StorageIOError {
        throw error
    } catch {
        preconditionFailure("only StorageIOError is thrown here, got \(error)")
    }
}
