#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An in-memory `StorageFileSystem` with a durability model and seeded faults, for tests
/// that must show what survives a power cut.
///
/// Durability model (the contract in StorageFileSystem.swift, made exact):
/// - every file (inode) has its current bytes and its durable bytes; `sync()` makes the
///   durable bytes equal to the current ones;
/// - every directory has its current entries and its durable entries; `syncDirectory`
///   makes the durable entries equal to the current ones. Creating, renaming and removing
///   entries changes only the current entries of the directories involved;
/// - `powerCut()` reverts every directory reachable from the root through durable entries
///   to its durable entries and every file in them to its durable bytes. So a created,
///   written and synced file whose directory was never synced is gone; a rename not yet
///   covered by a directory sync is undone (each directory reverts on its own, as the
///   model promises nothing about the order two directories reach the disk); bytes
///   written after the last sync are dropped (or, with `unsyncedTailSurvivalRate`, a
///   random prefix of an appended tail survives: a torn write).
/// - a failed file sync models Linux writeback errors ("fsyncgate"): the dirty pages are
///   marked clean but never reached the disk, so a later successful sync does not make
///   them durable; the old durable bytes (zeros past the old length) stay in their place
///   until the range is written again. A log that retries fsync and then acknowledges
///   loses data here, as it would on a real kernel.
///
/// Directories themselves are entries of their parent like files: `createDirectory` is
/// durable only after `syncDirectory` of the parent. The root always exists.
///
/// Handles opened before a power cut are dead afterwards: every call on them fails with
/// EIO, so a log instance that lived through the cut cannot touch the revived state.
///
/// Thread-safe: one lock guards the whole model. Fault decisions are drawn in call order,
/// so a replay is exact when the caller's calls come in the same order (drive the log
/// from one task in seeded tests).
public final class SimulatedFileSystem: StorageFileSystem, @unchecked Sendable {
    let lock = StorageIOLock()
    // Everything below is guarded by `lock`.
    private let root = SimulatedDirectory()
    private var random: SeededRandom
    private var faults: SimulatedFaults
    private var countedOperations = 0
    private var halted = false
    private(set) var generation: UInt64 = 0
    private var cuts = 0
    private var failedSyncs = 0
    private var failNextFileSyncs = 0
    private var resyncs = 0
    private var afterFileSync: (@Sendable (_ path: String, _ failed: Bool) -> Void)?
    /// The last state-changing calls and faults, for failure reports (a ring).
    private var events: [String] = []
    private var nextEvent = 0
    private static let eventCapacity = 400

    public init(seed: UInt64 = 0, faults: SimulatedFaults = .none) {
        self.random = SeededRandom(seed: seed)
        self.faults = faults
    }

    // MARK: Test controls

    /// The seed this file system's faults are drawn from.
    public var seed: UInt64 { lock.withLock { random.seed } }

    /// Replaces the fault settings (for example `.none` while checking a recovered log).
    /// The operation count of a scheduled power cut restarts from zero.
    public func setFaults(_ newFaults: SimulatedFaults) {
        lock.withLock {
            faults = newFaults
            countedOperations = 0
        }
    }

    /// Cuts the power now: see the type's comment. Handles opened before the cut are dead.
    /// The file system stays usable (as if the machine rebooted at once) unless
    /// `halting`: then every call fails with EIO until `restart()`, so a log instance
    /// from before the cut can be closed without touching the revived state.
    public func powerCut(halting: Bool = false) {
        lock.withLock {
            cutPowerLocked()
            if halting { halted = true }
        }
    }

    /// File syncs that failed (injected EIO): after one, only a power cut makes the model
    /// honest again, since no process can know which cached pages never reached the disk.
    public var failedFileSyncs: Int { lock.withLock { failedSyncs } }

    /// Successful file syncs of a file whose earlier sync failed, while bytes lost then were
    /// not written again: the caller synced again after a failed fdatasync ("fsyncgate"),
    /// and those bytes are not durable although this sync succeeded.
    public var syncsAfterFailedSync: Int { lock.withLock { resyncs } }

    /// Makes the next file `sync()` fail with EIO (dirty pages lost), whatever the rates:
    /// for tests that stage one failure at a chosen moment.
    public func failNextFileSync() {
        lock.withLock { failNextFileSyncs += 1 }
    }

    /// Called after every file sync has taken effect and before it returns to its caller,
    /// outside the lock, on the caller's thread. A test can block in it to hold a sync's
    /// result back while other calls run (to stage a race deterministically).
    public func setAfterFileSync(_ hook: (@Sendable (_ path: String, _ failed: Bool) -> Void)?) {
        lock.withLock { afterFileSync = hook }
    }

    /// True after a scheduled power cut, until `restart()`.
    public var isHalted: Bool { lock.withLock { halted } }

    /// How many power cuts (manual or scheduled) have happened.
    public var powerCuts: Int { lock.withLock { cuts } }

    /// Boots the machine after a scheduled power cut: calls succeed again.
    public func restart() {
        lock.withLock { halted = false }
    }

    /// The last (up to 400) state-changing calls, faults and power cuts, oldest first.
    public func recentEvents() -> [String] {
        lock.withLock { events.count < Self.eventCapacity ? events : Array(events[nextEvent...] + events[..<nextEvent]) }
    }

    private func recordLocked(_ event: String) {
        if events.count < Self.eventCapacity {
            events.append(event)
        } else {
            events[nextEvent] = event
            nextEvent = (nextEvent + 1) % Self.eventCapacity
        }
    }

    /// The current bytes of the file at `path`, or nil (for assertions in tests).
    public func contents(of path: String) -> [UInt8]? {
        lock.withLock {
            guard case .file(let file)? = try? lookupLocked(path) else { return nil }
            return file.current
        }
    }

    /// Bytes held by live files (what `capacityBytes` limits).
    public var usedBytes: Int64 { lock.withLock { usedBytesLocked() } }

    // MARK: StorageFileSystem

    public func open(_ path: String, mode: StorageOpenMode) throws(StorageIOError) -> any StorageFile {
        try lock.withLock { () throws(StorageIOError) -> any StorageFile in
            let operation = "open"
            try checkAliveLocked(operation, path)
            if mode == .createNew { try countOperationLocked(operation, path) }
            try injectLocked(faults.metadataErrorRate, EIO, operation, path)
            let (directory, name) = try parentLocked(path, operation)
            switch (directory.current[name], mode) {
            case (.file(let file)?, .readOnly), (.file(let file)?, .readWrite):
                return SimulatedFile(system: self, inode: file, path: path, writable: mode == .readWrite)
            case (_?, .createNew):
                throw StorageIOError(errno: EEXIST, operation: operation, path: path)
            case (.directory?, _):
                throw StorageIOError(errno: EISDIR, operation: operation, path: path)
            case (nil, .createNew):
                try injectLocked(faults.noSpaceRate, ENOSPC, operation, path)
                let file = SimulatedInode()
                directory.current[name] = .file(file)
                return SimulatedFile(system: self, inode: file, path: path, writable: true)
            case (nil, _):
                throw StorageIOError(errno: ENOENT, operation: operation, path: path)
            }
        }
    }

    public func listDirectory(_ path: String) throws(StorageIOError) -> [String] {
        try lock.withLock { () throws(StorageIOError) -> [String] in
            try checkAliveLocked("listDirectory", path)
            guard case .directory(let directory) = try lookupLocked(path, "listDirectory") else {
                throw StorageIOError(errno: ENOTDIR, operation: "listDirectory", path: path)
            }
            return Array(directory.current.keys)
        }
    }

    public func createDirectory(_ path: String) throws(StorageIOError) {
        try treeChange("createDirectory", path) { (operation) throws(StorageIOError) in
            try injectLocked(faults.metadataErrorRate, EIO, operation, path)
            var directory = root
            for component in Self.components(path) {
                switch directory.current[component] {
                case .directory(let child)?: directory = child
                case .file?: throw StorageIOError(errno: ENOTDIR, operation: operation, path: path)
                case nil:
                    let child = SimulatedDirectory()
                    directory.current[component] = .directory(child)
                    directory = child
                }
            }
        }
    }

    public func rename(_ source: String, to destination: String) throws(StorageIOError) {
        try treeChange("rename", source) { (operation) throws(StorageIOError) in
            try injectLocked(faults.metadataErrorRate, EIO, operation, source)
            let (sourceDirectory, sourceName) = try parentLocked(source, operation)
            let (destinationDirectory, destinationName) = try parentLocked(destination, operation)
            guard let entry = sourceDirectory.current[sourceName] else {
                throw StorageIOError(errno: ENOENT, operation: operation, path: source)
            }
            if case .directory(let existing)? = destinationDirectory.current[destinationName], !existing.current.isEmpty {
                throw StorageIOError(errno: ENOTEMPTY, operation: operation, path: destination)
            }
            sourceDirectory.current[sourceName] = nil
            destinationDirectory.current[destinationName] = entry
        }
    }

    public func remove(_ path: String) throws(StorageIOError) {
        try treeChange("remove", path) { (operation) throws(StorageIOError) in
            try injectLocked(faults.metadataErrorRate, EIO, operation, path)
            let (directory, name) = try parentLocked(path, operation)
            switch directory.current[name] {
            case nil:
                throw StorageIOError(errno: ENOENT, operation: operation, path: path)
            case .directory(let child)? where !child.current.isEmpty:
                throw StorageIOError(errno: ENOTEMPTY, operation: operation, path: path)
            default:
                directory.current[name] = nil
            }
        }
    }

    public func syncDirectory(_ path: String) throws(StorageIOError) {
        try treeChange("syncDirectory", path) { (operation) throws(StorageIOError) in
            guard case .directory(let directory) = try lookupLocked(path, operation) else {
                throw StorageIOError(errno: ENOTDIR, operation: operation, path: path)
            }
            try injectLocked(faults.syncErrorRate, EIO, operation, path)
            directory.durable = directory.current
        }
    }

    public func fileExists(_ path: String) -> Bool {
        lock.withLock { !halted && (try? lookupLocked(path)) != nil }
    }

    // MARK: File operations (called by SimulatedFile with its checks)

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64, to file: SimulatedInode, path: String, generation handleGeneration: UInt64) throws(StorageIOError) -> Int {
        try lock.withLock { () throws(StorageIOError) -> Int in
            let operation = "write"
            try checkHandleLocked(handleGeneration, operation, path)
            try countOperationLocked(operation, path)
            guard offset >= 0 else { throw StorageIOError(errno: EINVAL, operation: operation, path: path) }
            try injectLocked(faults.writeErrorRate, EIO, operation, path)
            try injectLocked(faults.noSpaceRate, ENOSPC, operation, path)
            let start = Int(offset)
            var count = bytes.count
            if let capacity = faults.capacityBytes {
                let available = max(0, Int(capacity - usedBytesLocked()))
                let writableEnd = max(file.current.count, start) + available
                count = min(count, max(0, writableEnd - start))
                if count == 0 && bytes.count > 0 {
                    throw StorageIOError(errno: ENOSPC, operation: operation, path: path)
                }
            }
            if count > 1 && random.chance(faults.shortWriteRate) {
                count = Int.random(in: 1..<count, using: &random)
            }
            if count < bytes.count { recordLocked("  -> short write \(count) of \(bytes.count) at \(start)") }
            file.write(UnsafeRawBufferPointer(rebasing: bytes[0..<count]), at: start)
            return count
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, from file: SimulatedInode, path: String, generation handleGeneration: UInt64) throws(StorageIOError) -> Int {
        try lock.withLock { () throws(StorageIOError) -> Int in
            try checkHandleLocked(handleGeneration, "read", path)
            guard offset >= 0 else { throw StorageIOError(errno: EINVAL, operation: "read", path: path) }
            try injectLocked(faults.readErrorRate, EIO, "read", path)
            let start = Int(offset)
            guard start < file.current.count else { return 0 }
            let count = min(buffer.count, file.current.count - start)
            file.current.withUnsafeBytes { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[start..<(start + count)]))
            }
            return count
        }
    }

    func size(of file: SimulatedInode, path: String, generation handleGeneration: UInt64) throws(StorageIOError) -> Int64 {
        try lock.withLock { () throws(StorageIOError) -> Int64 in
            try checkHandleLocked(handleGeneration, "size", path)
            return Int64(file.current.count)
        }
    }

    func truncate(_ file: SimulatedInode, to length: Int64, path: String, generation handleGeneration: UInt64) throws(StorageIOError) {
        try lock.withLock { () throws(StorageIOError) in
            let operation = "truncate"
            try checkHandleLocked(handleGeneration, operation, path)
            try countOperationLocked(operation, path)
            guard length >= 0 else { throw StorageIOError(errno: EINVAL, operation: operation, path: path) }
            let growth = Int64(Int(length) - file.current.count)
            if growth > 0 {
                try injectLocked(faults.noSpaceRate, ENOSPC, operation, path)
                if let capacity = faults.capacityBytes, usedBytesLocked() + growth > capacity {
                    throw StorageIOError(errno: ENOSPC, operation: operation, path: path)
                }
            }
            file.truncate(to: Int(length))
        }
    }

    func sync(_ file: SimulatedInode, path: String, generation handleGeneration: UInt64) throws(StorageIOError) {
        let (failure, hook) = try lock.withLock { () throws(StorageIOError) -> (StorageIOError?, (@Sendable (String, Bool) -> Void)?) in
            let operation = "sync"
            try checkHandleLocked(handleGeneration, operation, path)
            try countOperationLocked(operation, path)
            let staged = failNextFileSyncs > 0
            if staged { failNextFileSyncs -= 1 }
            if staged || random.chance(faults.syncErrorRate) {
                recordLocked("  -> injected EIO, dirty pages lost")
                file.loseWriteback()
                failedSyncs += 1
                return (StorageIOError(errno: EIO, operation: operation, path: path), afterFileSync)
            }
            if file.hasLostWriteback {
                resyncs += 1
                recordLocked("  -> succeeds, but bytes lost by an earlier failed sync stay lost")
            }
            file.sync()
            return (nil, afterFileSync)
        }
        hook?(path, failure != nil)
        if let failure { throw failure }
    }

    // MARK: Internals (lock held)

    private func cutPowerLocked() {
        recordLocked("POWER CUT")
        generation &+= 1
        cuts += 1
        var visited = Set<ObjectIdentifier>()
        func revert(_ directory: SimulatedDirectory) {
            guard visited.insert(ObjectIdentifier(directory)).inserted else { return }
            directory.current = directory.durable
            // Sorted so the torn-tail draws happen in the same order on every replay.
            for name in directory.durable.keys.sorted() {
                switch directory.durable[name] {
                case .file(let file)?:
                    guard visited.insert(ObjectIdentifier(file)).inserted else { continue }
                    let unsyncedTail = file.current.count - file.durable.count
                    var keep = 0
                    if unsyncedTail > 0 && random.chance(faults.unsyncedTailSurvivalRate) {
                        keep = Int.random(in: 0...unsyncedTail, using: &random)
                    }
                    file.revert(keepingUnsyncedTail: keep)
                case .directory(let child)?:
                    revert(child)
                case nil:
                    break
                }
            }
        }
        revert(root)
    }

    /// A change to the directory tree (or its durable state): refused while the power is
    /// off, counted toward a scheduled power cut, then made by `change` under the lock,
    /// given the operation's name for its errors.
    private func treeChange(
        _ operation: String, _ path: String, _ change: (String) throws(StorageIOError) -> Void
    ) throws(StorageIOError) {
        try lock.withLock { () throws(StorageIOError) in
            try checkAliveLocked(operation, path)
            try countOperationLocked(operation, path)
            try change(operation)
        }
    }

    private func checkAliveLocked(_ operation: String, _ path: String) throws(StorageIOError) {
        if halted { throw StorageIOError(errno: EIO, operation: operation + " (power is off)", path: path) }
    }

    private func checkHandleLocked(_ handleGeneration: UInt64, _ operation: String, _ path: String) throws(StorageIOError) {
        try checkAliveLocked(operation, path)
        if handleGeneration != generation {
            throw StorageIOError(errno: EIO, operation: operation + " (handle from before a power cut)", path: path)
        }
    }

    private func countOperationLocked(_ operation: String, _ path: String) throws(StorageIOError) {
        countedOperations += 1
        recordLocked("\(operation) \(Self.components(path).last ?? path)")
        if let limit = faults.powerCutAfterOperations, countedOperations > limit {
            faults.powerCutAfterOperations = nil
            cutPowerLocked()
            halted = true
            throw StorageIOError(errno: EIO, operation: operation + " (power cut)", path: path)
        }
    }

    private func injectLocked(_ rate: Double, _ errno: Int32, _ operation: String, _ path: String) throws(StorageIOError) {
        if random.chance(rate) {
            recordLocked("  -> injected errno \(errno)")
            throw StorageIOError(errno: errno, operation: operation, path: path)
        }
    }

    private func usedBytesLocked() -> Int64 {
        var visited = Set<ObjectIdentifier>()
        var total: Int64 = 0
        func add(_ directory: SimulatedDirectory) {
            for entry in directory.current.values {
                switch entry {
                case .file(let file):
                    if visited.insert(ObjectIdentifier(file)).inserted { total += Int64(file.current.count) }
                case .directory(let child):
                    add(child)
                }
            }
        }
        add(root)
        return total
    }

    static func components(_ path: String) -> [String] {
        path.split(separator: "/").map(String.init).filter { $0 != "." }
    }

    private func lookupLocked(_ path: String, _ operation: String = "lookup") throws(StorageIOError) -> SimulatedEntry {
        var entry = SimulatedEntry.directory(root)
        for component in Self.components(path) {
            guard case .directory(let directory) = entry else {
                throw StorageIOError(errno: ENOTDIR, operation: operation, path: path)
            }
            guard let next = directory.current[component] else {
                throw StorageIOError(errno: ENOENT, operation: operation, path: path)
            }
            entry = next
        }
        return entry
    }

    /// The directory holding `path`'s last component, and that component.
    private func parentLocked(_ path: String, _ operation: String) throws(StorageIOError) -> (SimulatedDirectory, String) {
        var components = Self.components(path)
        guard let name = components.popLast() else {
            throw StorageIOError(errno: EINVAL, operation: operation, path: path)
        }
        guard case .directory(let directory) = try lookupLocked(components.joined(separator: "/"), operation) else {
            throw StorageIOError(errno: ENOTDIR, operation: operation, path: path)
        }
        return (directory, name)
    }
}
