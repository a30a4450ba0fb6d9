import Dispatch
import NIOCore
import SluiceChecksum
import SluiceStorage
import Synchronization

/// A clock the test moves by hand.
final class ManualClock: LogClock {
    private let now: Mutex<Int64>
    init(_ start: Int64 = 1_700_000_000_000) { now = Mutex(start) }
    func nowMilliseconds() -> Int64 { now.withLock { $0 } }
    func advance(by milliseconds: Int64) { now.withLock { $0 += milliseconds } }
}

/// A batch whose records are `payload`, with a correct CRC, timestamped now unless told.
func makeBatch(
    _ payload: [UInt8], count: Int32 = 1, firstTimestamp: Int64? = nil, maxTimestamp: Int64? = nil
) -> NewBatch {
    let firstTimestamp = firstTimestamp ?? SystemLogClock().nowMilliseconds()
    return NewBatch(
        recordCount: count, firstTimestamp: firstTimestamp, maxTimestamp: maxTimestamp ?? firstTimestamp,
        producerId: 7, producerEpoch: 1, baseSequence: 0, recordsCRC: CRC32C.checksum(payload),
        records: ByteBuffer(bytes: payload))
}

func pattern(_ seed: Int, _ size: Int) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7) }
}

func smallConfig(
    segmentBytes: Int64 = 1 << 20, indexIntervalBytes: Int = 256, fsync: FsyncPolicy = .always
) -> LogConfig {
    var config = LogConfig()
    config.segmentBytes = segmentBytes
    config.indexIntervalBytes = indexIntervalBytes
    config.fsyncPolicy = fsync
    config.retentionMs = nil
    return config
}

/// Every batch in the log from its start, read back in small steps, each verified.
func readAllBatches(_ log: PartitionLog, maxBytes: Int = 300) throws -> [StoredBatch] {
    var batches: [StoredBatch] = []
    var offset = log.logStartOffset
    while offset < log.logEndOffset {
        let result = try log.read(from: offset, maxBytes: maxBytes)
        let found = Array(StoredBatches(result.batches))
        precondition(!found.isEmpty, "a read below the log end returns at least one batch")
        for batch in found {
            precondition(batch.defect() == nil, "stored batch verifies")
            batches.append(batch)
        }
        offset = found[found.count - 1].header.nextOffset
    }
    return batches
}

/// Wraps the real file system to count syncs, fail chosen operations with an errno,
/// and hold syncs at a gate, so tests can inject faults without a full simulator.
final class InstrumentedFileSystem: StorageFileSystem {
    struct Rules {
        var failWritesWith: Int32?
        var failSyncsWith: Int32?
        var syncCount = 0
        /// The next this-many syncs block until `releaseSyncs()`.
        var syncsToHold = 0
        var syncsWaiting = 0
        var openFiles = 0
        var peakOpenFiles = 0
    }

    let inner = PosixFileSystem()
    let rules = Mutex(Rules())
    private let gate = DispatchSemaphore(value: 0)

    func update(_ change: (inout Rules) -> Void) { rules.withLock { change(&$0) } }
    var syncCount: Int { rules.withLock { $0.syncCount } }
    var syncsWaiting: Int { rules.withLock { $0.syncsWaiting } }
    var openFiles: Int { rules.withLock { $0.openFiles } }
    var peakOpenFiles: Int { rules.withLock { $0.peakOpenFiles } }

    fileprivate func opened() {
        rules.withLock { rules in
            rules.openFiles += 1
            rules.peakOpenFiles = max(rules.peakOpenFiles, rules.openFiles)
        }
    }

    fileprivate func closed() { rules.withLock { $0.openFiles -= 1 } }

    /// Lets every held sync go and stops holding new ones.
    func releaseSyncs() {
        let waiting = rules.withLock { rules -> Int in
            rules.syncsToHold = 0
            return rules.syncsWaiting
        }
        for _ in 0..<waiting { gate.signal() }
    }

    fileprivate func beforeSync() throws(StorageIOError) {
        let (hold, failure) = rules.withLock { rules -> (Bool, Int32?) in
            let hold = rules.syncsToHold > 0
            if hold {
                rules.syncsToHold -= 1
                rules.syncsWaiting += 1
            }
            return (hold, rules.failSyncsWith)
        }
        if hold {
            gate.wait()
            rules.withLock { $0.syncsWaiting -= 1 }
        }
        if let failure { throw StorageIOError(errno: failure, operation: "fdatasync", path: "(injected)") }
        rules.withLock { $0.syncCount += 1 }
    }

    fileprivate func beforeWrite(_ path: String) throws(StorageIOError) {
        if let failure = rules.withLock({ $0.failWritesWith }) {
            throw StorageIOError(errno: failure, operation: "pwrite", path: path)
        }
    }

    func open(_ path: String, mode: StorageOpenMode) throws(StorageIOError) -> any StorageFile {
        let file = InstrumentedFile(inner: try inner.open(path, mode: mode), owner: self)
        opened()
        return file
    }
    func listDirectory(_ path: String) throws(StorageIOError) -> [String] { try inner.listDirectory(path) }
    func createDirectory(_ path: String) throws(StorageIOError) { try inner.createDirectory(path) }
    func rename(_ source: String, to destination: String) throws(StorageIOError) {
        try inner.rename(source, to: destination)
    }
    func remove(_ path: String) throws(StorageIOError) { try inner.remove(path) }
    func syncDirectory(_ path: String) throws(StorageIOError) { try inner.syncDirectory(path) }
    func fileExists(_ path: String) -> Bool { inner.fileExists(path) }
}

private final class InstrumentedFile: StorageFile {
    let inner: any StorageFile
    let owner: InstrumentedFileSystem
    init(inner: any StorageFile, owner: InstrumentedFileSystem) {
        self.inner = inner
        self.owner = owner
    }
    var path: String { inner.path }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        try owner.beforeWrite(path)
        return try inner.write(bytes, at: offset)
    }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(StorageIOError) -> Int {
        try inner.read(into: buffer, at: offset)
    }
    func size() throws(StorageIOError) -> Int64 { try inner.size() }
    func truncate(to length: Int64) throws(StorageIOError) { try inner.truncate(to: length) }
    func sync() throws(StorageIOError) {
        try owner.beforeSync()
        try inner.sync()
    }
    private var isClosed = false
    func close() {
        // Counted once: closing twice is the caller's bug, and would hide a leak.
        precondition(!isClosed, "file closed twice: \(path)")
        isClosed = true
        inner.close()
        owner.closed()
    }
}
