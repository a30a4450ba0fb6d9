// Storage benchmark: PartitionLog append and read throughput on the real file system,
// and the time to open a log of 1,000 segments after a clean shutdown. Not a test:
// figures go to docs/benchmarks.md beside bench/fio.sh's, taken in the same sitting.
//
//   swift run -c release --package-path bench SluiceStorageBench [directory]
//
// Environment: SLUICE_BENCH_DIR (default /tmp/sluice-bench), SLUICE_BENCH_BYTES (record
// bytes appended per case, default 256 MiB, match SLUICE_FIO_SIZE), SLUICE_BENCH_CASES
// (comma-separated case names to run; default all).
import Glibc
import NIOCore
import SluiceChecksum
import SluiceStorage

let environment = { (name: String) -> String? in getenv(name).map { String(cString: $0) } }
let root = CommandLine.arguments.dropFirst().first ?? environment("SLUICE_BENCH_DIR") ?? "/tmp/sluice-bench"
let totalBytes = Int(environment("SLUICE_BENCH_BYTES") ?? "") ?? 256 << 20
let selected = environment("SLUICE_BENCH_CASES").map { Set($0.split(separator: ",").map(String.init)) }
let recordBytes = 1024

func removeTree(_ path: String) {
    let fileSystem = PosixFileSystem()
    if let names = try? fileSystem.listDirectory(path) {
        for name in names { removeTree(path + "/" + name) }
    }
    try? fileSystem.remove(path)
}

func megabytesPerSecond(_ bytes: Int, _ duration: Duration) -> Double {
    Double(bytes) / 1e6 / seconds(duration)
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// One producer's batch: `recordsPerBatch` records of 1 KiB, random bytes.
func makeBatch(recordsPerBatch: Int) -> NewBatch {
    var random = SystemRandomNumberGenerator()
    var records = ByteBufferAllocator().buffer(capacity: recordsPerBatch * recordBytes)
    for _ in 0..<(recordsPerBatch * recordBytes / 8) { records.writeInteger(random.next() as UInt64) }
    return NewBatch(
        recordCount: Int32(recordsPerBatch), firstTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_000,
        recordsCRC: CRC32C.checksum(records), records: records)
}

func config(_ policy: FsyncPolicy) -> LogConfig {
    var config = LogConfig()
    config.fsyncPolicy = policy
    config.maxBatchBytes = 2 << 20  // 1 MiB of records plus the header
    config.retentionMs = nil
    return config
}

struct AppendCase {
    var name: String
    var batchBytes: Int
    var policy: FsyncPolicy
    var producers: Int
}

/// Appends `totalBytes` of records with `producers` concurrent tasks; with a policy other
/// than `always`, the time includes a final flush (as fio's end_fsync).
func runAppend(_ benchCase: AppendCase, directory: String) async throws -> (Double, Double, Double, Double) {
    removeTree(directory)
    let log = try PartitionLog.open(directory: directory, config: config(benchCase.policy))
    let batch = makeBatch(recordsPerBatch: benchCase.batchBytes / recordBytes)
    let batches = totalBytes / benchCase.batchBytes
    let perProducer = batches / benchCase.producers
    let clock = ContinuousClock()
    let start = clock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<benchCase.producers {
            group.addTask {
                for _ in 0..<perProducer { _ = try await log.append(batch, leaderEpoch: 0) }
            }
        }
        try await group.waitForAll()
    }
    let appended = clock.now - start
    try await log.flush()
    let elapsed = clock.now - start
    try await log.close()
    let bytes = perProducer * benchCase.producers * benchCase.batchBytes
    let batchesPerSecond = Double(perProducer * benchCase.producers) / seconds(elapsed)
    return (
        megabytesPerSecond(bytes, elapsed), batchesPerSecond, batchesPerSecond * Double(benchCase.batchBytes / recordBytes),
        megabytesPerSecond(bytes, appended))
}

/// Reads the whole log from its start in reads of up to 1 MiB, walking every batch header.
func runRead(directory: String) throws -> Double {
    let log = try PartitionLog.open(directory: directory, config: config(.never))
    let clock = ContinuousClock()
    let start = clock.now
    var offset = log.logStartOffset
    var bytes = 0
    while offset < log.logEndOffset {
        let result = try log.read(from: offset, maxBytes: 1 << 20)
        for batch in StoredBatches(result.batches) {
            bytes += Int(batch.header.recordsLength)
            offset = batch.header.nextOffset
        }
    }
    let elapsed = clock.now - start
    return megabytesPerSecond(bytes, elapsed)
}

/// Builds a log of `count` segments (one small batch each), closes it cleanly, then
/// times `open` (median of five).
func runOpenSegments(count: Int, directory: String) async throws -> (Duration, Int, Bool) {
    removeTree(directory)
    var segmentConfig = config(.never)
    segmentConfig.segmentBytes = 4096
    let log = try PartitionLog.open(directory: directory, config: segmentConfig)
    let batch = makeBatch(recordsPerBatch: 3)
    for _ in 0..<count { _ = try log.appendBuffered(batch, leaderEpoch: 0) }
    try await log.close()
    var timings: [Duration] = []
    var segments = 0
    var clean = true
    for _ in 0..<5 {
        let clock = ContinuousClock()
        let start = clock.now
        let reopened = try PartitionLog.open(directory: directory, config: segmentConfig)
        timings.append(clock.now - start)
        segments = reopened.segmentCount
        clean = clean && reopened.recovery.cleanShutdown
        try await reopened.close()
    }
    return (timings.sorted()[timings.count / 2], segments, clean)
}

func wanted(_ name: String) -> Bool { selected?.contains(name) ?? true }

let nprocs = sysconf(Int32(_SC_NPROCESSORS_ONLN))
print("SluiceStorageBench: \(totalBytes >> 20) MiB of 1 KiB records per append case, in \(root), \(nprocs) CPUs")
print("")
// "before flush": the rate of the appends alone, before the final flush that the
// first column (like fio's end_fsync) includes.
print("| case | MB/s | batches/s | records/s | MB/s before the final flush |")
print("|---|---:|---:|---:|---:|")
try PosixFileSystem().createDirectory(root)
let cases = [
    AppendCase(name: "append-64k-always-1", batchBytes: 64 << 10, policy: .always, producers: 1),
    AppendCase(name: "append-64k-always-8", batchBytes: 64 << 10, policy: .always, producers: 8),
    AppendCase(name: "append-64k-interval", batchBytes: 64 << 10, policy: .interval(milliseconds: 50), producers: 1),
    AppendCase(name: "append-64k-never", batchBytes: 64 << 10, policy: .never, producers: 1),
    AppendCase(name: "append-1m-always-1", batchBytes: 1 << 20, policy: .always, producers: 1),
    AppendCase(name: "append-1m-always-8", batchBytes: 1 << 20, policy: .always, producers: 8),
    AppendCase(name: "append-1m-interval", batchBytes: 1 << 20, policy: .interval(milliseconds: 50), producers: 1),
    AppendCase(name: "append-1m-never", batchBytes: 1 << 20, policy: .never, producers: 1),
]
let appendDirectory = root + "/append"
for benchCase in cases where wanted(benchCase.name) {
    let (megabytes, batches, records, beforeFlush) = try await runAppend(benchCase, directory: appendDirectory)
    print("| \(benchCase.name) | \(String(format1: megabytes)) | \(Int(batches)) | \(Int(records)) | \(String(format1: beforeFlush)) |")
}
if wanted("read-1m") {
    // Reads the log the last append case left (page cache warm, as for a tailing reader).
    if !PosixFileSystem().fileExists(appendDirectory) {
        _ = try await runAppend(cases[7], directory: appendDirectory)
    }
    print("| read-1m (sequential, cached) | \(String(format1: try runRead(directory: appendDirectory))) | | | |")
}
removeTree(appendDirectory)
if wanted("crc32c") {
    // The CPU work every append does before writing: verifying the producer's CRC32C.
    let records = makeBatch(recordsPerBatch: 1024).records
    let clock = ContinuousClock()
    let start = clock.now
    var folded: UInt32 = 0
    for _ in 0..<256 { folded ^= CRC32C.checksum(records) }
    let elapsed = clock.now - start
    print("")
    print("CRC32C (hardware: \(CRC32C.usesHardware)): \(String(format1: megabytesPerSecond(256 << 20, elapsed))) MB/s over 1 MiB buffers (\(folded & 1))")
}
if wanted("open-1000") {
    let (median, segments, clean) = try await runOpenSegments(count: 1000, directory: root + "/segments")
    print("")
    print("open after clean shutdown: \(segments) segments in \(median) (median of 5, clean: \(clean))")
    removeTree(root + "/segments")
}

extension String {
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}
