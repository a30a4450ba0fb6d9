#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small whole-file reads and crash-safe whole-file replacement for metadata files.
///
/// `replace` follows the sequence that survives a crash or power cut at any point:
/// write `<path>.tmp`, fsync it, rename over `<path>`, fsync the directory. A crash
/// before the rename leaves the old file and a torn or complete `.tmp` (ignored and
/// removed at the next start); after the rename but before the directory fsync the
/// rename may be undone by a power cut, which again leaves the old file. Readers never
/// see a half-written `<path>`.
///
/// These are the only system calls of the broker layer, kept here so the rest of it
/// stays free of C.
enum DurableFiles {
    static func errnoText(_ code: Int32 = errno) -> String {
        String(cString: strerror(code)) + " (errno \(code))"
    }

    static func temporaryPath(for path: String) -> String { path + ".tmp" }

    static func exists(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0
    }

    /// mkdir -p.
    static func createDirectories(_ path: String) throws(BrokerError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw BrokerError(.metadataWriteFailed, "cannot create directory \(prefix): \(errnoText())")
            }
            prefix += "/"
        }
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else {
            throw BrokerError(.metadataWriteFailed, "\(path) is not a directory")
        }
    }

    /// The whole file, or nil when it does not exist. Throws on any other failure.
    static func readFile(_ path: String) throws(BrokerError) -> [UInt8]? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            if errno == ENOENT { return nil }
            throw BrokerError(.metadataCorrupt, "cannot open \(path): \(errnoText())")
        }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw BrokerError(.metadataCorrupt, "cannot read \(path): \(errnoText())")
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<count])
        }
    }

    static func readSmallFile(_ path: String) -> String? {
        guard let bytes = try? readFile(path) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Opens (creating) `lockPath` and takes an exclusive, non-blocking flock on it; writes
    /// this process's pid into it for humans. Returns the descriptor that holds the lock.
    static func lockExclusively(_ lockPath: String, holder directory: String) throws(BrokerError) -> Int32 {
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw BrokerError(.metadataWriteFailed, "cannot open lock file \(lockPath): \(errnoText())")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = readSmallFile(lockPath)?.split(whereSeparator: \.isWhitespace).first.map { " (pid \($0))" } ?? ""
            close(descriptor)
            if reason == EWOULDBLOCK {
                throw BrokerError(.dataDirectoryLocked, "data directory \(directory) is in use by another broker\(holder)")
            }
            throw BrokerError(.metadataWriteFailed, "cannot lock \(lockPath): \(errnoText(reason))")
        }
        let pidText = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pidText.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        return descriptor
    }

    /// Releases the flock explicitly, then closes. Unlocking first matters: a process
    /// forked meanwhile (before its exec closes the CLOEXEC descriptor) shares the open file
    /// description, and closing alone would leave the lock held until that child execs.
    static func unlockAndClose(_ descriptor: Int32) {
        _ = flock(descriptor, LOCK_UN)
        close(descriptor)
    }

    static func remove(_ path: String) {
        _ = unlink(path)
    }

    /// Replaces `path` with `bytes` crash-safely (see the type comment). On failure the
    /// temporary file is removed and `path` is unchanged, unless only the final
    /// directory fsync failed: then the new contents are visible but may not survive a
    /// power cut, and the error says so.
    static func replace(_ path: String, with bytes: [UInt8]) throws(BrokerError) {
        let temporary = temporaryPath(for: path)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw BrokerError(.metadataWriteFailed, "cannot create \(temporary): \(errnoText())")
        }
        var failure: BrokerError?
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress! + written, buffer.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                failure = BrokerError(.metadataWriteFailed, "cannot write \(temporary): \(errnoText())")
                break
            }
            written += count
        }
        if failure == nil && fsync(descriptor) != 0 {
            failure = BrokerError(.metadataWriteFailed, "cannot fsync \(temporary): \(errnoText())")
        }
        close(descriptor)
        if failure == nil && rename(temporary, path) != 0 {
            failure = BrokerError(.metadataWriteFailed, "cannot rename \(temporary) to \(path): \(errnoText())")
        }
        if let failure {
            remove(temporary)
            throw failure
        }
        try syncDirectory(containing: path)
    }

    static func syncDirectory(containing path: String) throws(BrokerError) {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw BrokerError(.metadataWriteFailed, "cannot open directory \(directory) to fsync: \(errnoText()); \(path) was replaced but may not survive a power cut")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else {
            throw BrokerError(.metadataWriteFailed, "cannot fsync directory \(directory): \(errnoText()); \(path) was replaced but may not survive a power cut")
        }
    }
}
