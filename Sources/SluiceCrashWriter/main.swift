// The child process of the storage crash test (Tests/SluiceStorageTests/CrashTests.swift).
//
// Usage: SluiceCrashWriter <log directory> <journal path> [records per batch] [record bytes]
//
// Opens a PartitionLog (fsync always, small segments so it rolls often) in the directory
// on a SyncRecordingFileSystem over the real file system, then appends batches with
// deterministic content (`DeterministicBatches`; batch k holds offsets k*r ..< (k+1)*r)
// as fast as it can, keeping up to `inFlight` batches waiting for their group commit.
// For each batch the log reports durable it prints one line to stdout:
//
//     durable <sequence> <next offset>
//
// written with write(2) straight to fd 1 (no buffering) after the log said so. It runs
// until killed. Startup prints `open <log end offset>`; errors go to stderr, exit 1.
import Glibc
import SluiceStorage

@inline(never)
func emit(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    var done = 0
    while done < bytes.count {
        let count = bytes.withUnsafeBytes { buffer in
            let rest = UnsafeRawBufferPointer(rebasing: buffer[done...])
            return write(1, rest.baseAddress, rest.count)
        }
        if count < 0 {
            if errno == EINTR { continue }
            exit(1)
        }
        done += count
    }
}

func fail(_ message: String) -> Never {
    let bytes = Array(("SluiceCrashWriter: " + message + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: SluiceCrashWriter <directory> <journal> [records per batch] [record bytes]") }
let directory = arguments[1]
let journal = arguments[2]
let recordCount = arguments.count > 3 ? Int(arguments[3]) ?? 16 : 16
let recordBytes = arguments.count > 4 ? Int(arguments[4]) ?? 256 : 256
let inFlight = 32
let workload = DeterministicBatches(recordCount: recordCount, recordBytes: recordBytes)

let log: PartitionLog
do {
    let fileSystem = try SyncRecordingFileSystem(
        wrapping: PosixFileSystem(), journal: journal, baselineDirectories: [directory])
    var config = LogConfig()
    config.fsyncPolicy = .always
    config.segmentBytes = 256 * 1024
    config.indexIntervalBytes = 1024
    config.retentionMs = nil
    log = try PartitionLog.open(directory: directory, fileSystem: fileSystem, config: config)
} catch {
    fail("open \(directory): \(error)")
}

let startOffset = log.logEndOffset
guard startOffset % Int64(recordCount) == 0 else { fail("log end \(startOffset) is not a whole number of batches") }
emit("open \(startOffset)")

do {
    try await withThrowingTaskGroup(of: (sequence: Int, nextOffset: Int64).self) { group in
        var sequence = Int(startOffset / Int64(recordCount))
        var waiting = 0
        while true {
            if waiting == inFlight, let done = try await group.next() {
                emit("durable \(done.sequence) \(done.nextOffset)")
                waiting -= 1
            }
            let result = try log.appendBuffered(workload.newBatch(sequence: sequence), leaderEpoch: 0)
            let appended = sequence
            group.addTask {
                try await log.waitUntilDurable(result.lastOffset)
                return (appended, result.lastOffset + 1)
            }
            waiting += 1
            sequence += 1
        }
    }
} catch {
    fail("append: \(error)")
}
