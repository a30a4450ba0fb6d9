#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The parts of `SimulatedFileSystem`'s model: directory entries, directories and files
// (each with current and durable state), and the handle callers hold. All state here is
// guarded by the file system's lock.

enum SimulatedEntry {
    case file(SimulatedInode)
    case directory(SimulatedDirectory)
}

final class SimulatedDirectory {
    var current: [String: SimulatedEntry] = [:]
    var durable: [String: SimulatedEntry] = [:]
}

/// One file's bytes, guarded by the file system's lock.
final class SimulatedInode {
    var current: [UInt8] = []
    var durable: [UInt8] = []
    /// Lowest position changed since the last sync (dirty pages), nil when clean.
    private var dirtyFrom: Int?
    /// Ranges whose writeback failed: their current bytes never reach the disk.
    private var lostWriteback: [Range<Int>] = []

    func write(_ bytes: UnsafeRawBufferPointer, at start: Int) {
        let end = start + bytes.count
        if current.count < end { current.append(contentsOf: repeatElement(0, count: end - current.count)) }
        current.withUnsafeMutableBytes { target in
            UnsafeMutableRawBufferPointer(rebasing: target[start..<end]).copyMemory(from: bytes)
        }
        markDirty(from: min(start, current.count))
        forgetLostWriteback(in: start..<end)
    }

    func truncate(to length: Int) {
        let oldCount = current.count
        if length < oldCount {
            current.removeLast(oldCount - length)
            lostWriteback = lostWriteback.compactMap { range in
                let clipped = range.clamped(to: 0..<length)
                return clipped.isEmpty ? nil : clipped
            }
        } else if length > oldCount {
            current.append(contentsOf: repeatElement(0, count: length - oldCount))
        }
        if length != oldCount { markDirty(from: min(length, oldCount)) }
    }

    /// True while some bytes are lost to a failed sync and not written again: a sync now
    /// "succeeds" without making them durable.
    var hasLostWriteback: Bool { !lostWriteback.isEmpty }

    func sync() {
        var persisted = current
        for range in lostWriteback {
            for position in range where position < persisted.count {
                persisted[position] = position < durable.count ? durable[position] : 0
            }
        }
        durable = persisted
        dirtyFrom = nil
    }

    func loseWriteback() {
        if let dirtyFrom, dirtyFrom < current.count {
            lostWriteback.append(dirtyFrom..<current.count)
        }
        dirtyFrom = nil
    }

    func revert(keepingUnsyncedTail keep: Int) {
        if keep > 0 {
            precondition(durable.count + keep <= current.count, "torn tail longer than the unsynced bytes")
            durable.append(contentsOf: current[durable.count..<(durable.count + keep)]) }
        current = durable
        dirtyFrom = nil
        lostWriteback = []
    }

    private func markDirty(from position: Int) {
        dirtyFrom = min(dirtyFrom ?? position, position)
    }

    private func forgetLostWriteback(in written: Range<Int>) {
        guard !lostWriteback.isEmpty else { return }
        var remaining: [Range<Int>] = []
        for range in lostWriteback {
            if range.lowerBound < written.lowerBound {
                remaining.append(range.lowerBound..<min(range.upperBound, written.lowerBound))
            }
            if range.upperBound > written.upperBound {
                remaining.append(max(range.lowerBound, written.upperBound)..<range.upperBound)
            }
        }
        lostWriteback = remaining.filter { !$0.isEmpty }
    }
}

/// A handle on a simulated file. Like a real descriptor it keeps pointing at the same
/// file after a rename or removal of its name.
final class SimulatedFile: StorageFile {
    let path: String
    private let system: SimulatedFileSystem
    private let inode: SimulatedInode
    private let writable: Bool
    private let generation: UInt64
    private var closed = false

    init(system: SimulatedFileSystem, inode: SimulatedInode, path: String, writable: Bool) {
        self.system = system
        self.inode = inode
        self.path = path
        self.writable = writable
        self.generation = system.generation
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        try checkOpen("write", needsWrite: true)
        return try system.write(bytes, at: offset, to: inode, path: path, generation: generation)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        try checkOpen("read", needsWrite: false)
        return try system.read(into: buffer, at: offset, from: inode, path: path, generation: generation)
    }

    func size() throws(StorageIOError) -> Int64 {
        try checkOpen("size", needsWrite: false)
        return try system.size(of: inode, path: path, generation: generation)
    }

    func truncate(to length: Int64) throws(StorageIOError) {
        try checkOpen("truncate", needsWrite: true)
        try system.truncate(inode, to: length, path: path, generation: generation)
    }

    func sync() throws(StorageIOError) {
        try checkOpen("sync", needsWrite: false)
        try system.sync(inode, path: path, generation: generation)
    }

    func close() {
        closed = true
    }

    private func checkOpen(_ operation: String, needsWrite: Bool) throws(StorageIOError) {
        if closed { throw StorageIOError(errno: EBADF, operation: operation + " (closed)", path: path) }
        if needsWrite && !writable { throw StorageIOError(errno: EBADF, operation: operation + " (read-only)", path: path) }
    }
}
