// Linux only (the deployment target); a Darwin port would swap fdatasync for F_FULLFSYNC.
import Glibc

/// The real file system: file descriptors with pread/pwrite/fdatasync, no buffering
/// of its own (the page cache is the buffer). Every call is retried on EINTR; any
/// other failure becomes a `StorageIOError` carrying the errno.
public struct PosixFileSystem: StorageFileSystem {
    public init() {}

    public func open(_ path: String, mode: StorageOpenMode) throws(StorageIOError) -> any StorageFile {
        let flags: Int32
        switch mode {
        case .readOnly: flags = O_RDONLY | O_CLOEXEC
        case .readWrite: flags = O_RDWR | O_CLOEXEC
        case .createNew: flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC
        }
        let fd = try retryingEINTR("open", path) { Glibc.open(path, flags, 0o644) }
        return PosixFile(fd: fd, path: path)
    }

    public func listDirectory(_ path: String) throws(StorageIOError) -> [String] {
        guard let directory = opendir(path) else {
            throw StorageIOError(errno: errno, operation: "opendir", path: path)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else {
                if errno != 0 { throw StorageIOError(errno: errno, operation: "readdir", path: path) }
                return names
            }
            let name = withUnsafePointer(to: &entry.pointee.d_name) { tuple in
                tuple.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: tuple.pointee)) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    public func createDirectory(_ path: String) throws(StorageIOError) {
        // Create each missing component from the root down, like `mkdir -p`.
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0 {
                let code = errno
                var info = stat()
                guard code == EEXIST, stat(prefix, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                    throw StorageIOError(errno: code == EEXIST ? ENOTDIR : code, operation: "mkdir", path: prefix)
                }
            }
            prefix += "/"
        }
    }

    public func rename(_ source: String, to destination: String) throws(StorageIOError) {
        _ = try retryingEINTR("rename", source) { Glibc.rename(source, destination) }
    }

    public func remove(_ path: String) throws(StorageIOError) {
        if unlink(path) == 0 { return }
        let code = errno
        // unlink refuses directories (EISDIR on Linux, EPERM by POSIX).
        guard code == EISDIR || code == EPERM else {
            throw StorageIOError(errno: code, operation: "unlink", path: path)
        }
        _ = try retryingEINTR("rmdir", path) { rmdir(path) }
    }

    public func syncDirectory(_ path: String) throws(StorageIOError) {
        let fd = try retryingEINTR("open", path) { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { _ = Glibc.close(fd) }
        _ = try retryingEINTR("fsync", path) { fsync(fd) }
    }

    public func fileExists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }
}

/// One open descriptor. `sync` may run on another thread while the owner writes
/// (the kernel serialises them), which the log's group commit relies on.
final class PosixFile: StorageFile {
    let path: String
    private var fd: Int32

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        let fd = self.fd
        return try retryingEINTR("pwrite", path) { pwrite(fd, base, bytes.count, off_t(offset)) }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let fd = self.fd
        return try retryingEINTR("pread", path) { pread(fd, base, buffer.count, off_t(offset)) }
    }

    func size() throws(StorageIOError) -> Int64 {
        var info = stat()
        let fd = self.fd
        _ = try retryingEINTR("fstat", path) { fstat(fd, &info) }
        return Int64(info.st_size)
    }

    func truncate(to length: Int64) throws(StorageIOError) {
        let fd = self.fd
        _ = try retryingEINTR("ftruncate", path) { ftruncate(fd, off_t(length)) }
    }

    func sync() throws(StorageIOError) {
        let fd = self.fd
        _ = try retryingEINTR("fdatasync", path) { fdatasync(fd) }
    }

    func close() {
        guard fd >= 0 else { return }
        // close(2) must not be retried on EINTR on Linux: the descriptor is gone either way.
        _ = Glibc.close(fd)
        fd = -1
    }
}

/// Runs a system call until it stops failing with EINTR; -1 becomes a thrown error.
private func retryingEINTR<T: BinaryInteger>(
    _ operation: String, _ path: String, _ call: () -> T
) throws(StorageIOError) -> T {
    while true {
        let result = call()
        if result >= 0 { return result }
        let code = errno
        if code != EINTR { throw StorageIOError(errno: code, operation: operation, path: path) }
    }
}
