import Foundation
import Glibc
import NIOCore
import SluiceTestSupport
import Testing
@testable import SluiceStorage

/// The crash test that does not trust the log: a child process (SluiceCrashWriter)
/// appends with `fsync always` as fast as it can; the test SIGKILLs it after a seeded
/// number of "durable" lines, cuts its files back to what was synced (SIGKILL alone
/// keeps the page cache), reopens the log and checks it against the deterministic
/// content. See docs/testing-storage.md.
@Suite(.timeLimit(.minutes(5))) struct CrashTests {
    static let recordCount = 16
    static let recordBytes = 256

    /// The writer binary: $SLUICE_CRASH_WRITER, or next to the test bundle.
    static func writerPath() throws -> String {
        if let path = getenv("SLUICE_CRASH_WRITER") { return String(cString: path) }
        return try builtExecutable("SluiceCrashWriter").path
    }

    static func environmentCount(_ name: String, default value: Int) -> Int {
        let soak = getenv("SLUICE_SOAK").map { String(cString: $0) == "1" } ?? false
        if let raw = getenv(name), let count = Int(String(cString: raw)) { return count }
        return soak ? value * 20 : value
    }

    @Test func killedWriterLeavesAPrefixHoldingEverythingReportedDurable() async throws {
        let kills = Self.environmentCount("SLUICE_CRASH_KILLS", default: 25)
        let seed = getenv("SLUICE_CRASH_SEED").flatMap { UInt64(String(cString: $0)) }
            ?? UInt64(truncatingIfNeeded: SystemLogClock().nowMilliseconds())
        print("crash test: \(kills) kills, seed \(seed) (replay the kill points with SLUICE_CRASH_SEED=\(seed))")
        var random = SeededRandom(seed: seed)
        let writer = try Self.writerPath()
        let temporary = TemporaryDirectory()
        defer { temporary.remove() }
        let directory = temporary.path + "/partition"
        let journal = temporary.path + "/journal"
        let fileSystem = PosixFileSystem()
        try fileSystem.createDirectory(directory)
        try fileSystem.syncDirectory(temporary.path)
        let workload = DeterministicBatches(recordCount: Self.recordCount, recordBytes: Self.recordBytes)

        var highestDurable = -1   // highest sequence any run reported durable
        var totalBatches = 0
        var bytesDropped: Int64 = 0
        var filesRemoved = 0
        for kill in 0..<kills {
            let child = try ChildProcess(
                executable: writer, arguments: [directory, journal, String(Self.recordCount), String(Self.recordBytes)])
            let opening = await offPool { child.readLine() }
            try #require(opening?.hasPrefix("open ") == true, "writer failed to start (kill \(kill), seed \(seed))")
            let linesBeforeKill = Int.random(in: 0...40, using: &random)
            for _ in 0..<linesBeforeKill {
                guard let line = await offPool({ child.readLine() }) else { break }
                let fields = line.split(separator: " ")
                try #require(fields.count == 3 && fields[0] == "durable", "unexpected writer output: \(line)")
                highestDurable = max(highestDurable, Int(fields[1]) ?? -1)
            }
            let status = await offPool { child.kill() }
            // A writer that died on its own (exit code, not our SIGKILL) is a failure.
            try #require(status & 0x7F == SIGKILL, "writer exited by itself with status \(status) (kill \(kill), seed \(seed))")

            let report = try SyncRecordingFileSystem.cutToSyncedState(directory: directory, journal: journal)
            bytesDropped += report.bytesDropped
            filesRemoved += report.removed.count
            totalBatches = try await Self.verify(
                directory: directory, workload: workload, highestDurable: highestDurable,
                context: "kill \(kill), seed \(seed), cut removed \(report.removed.count) files, dropped \(report.bytesDropped) bytes")
        }
        print("crash test: \(totalBatches) batches survived, \(highestDurable + 1) reported durable, "
            + "cuts dropped \(bytesDropped) unsynced bytes and removed \(filesRemoved) files")
        // The kills must have landed while the writer had work in flight.
        #expect(totalBatches > 0 && bytesDropped > 0)
    }

    /// Opens the cut log on the real file system and checks every batch; returns how many.
    static func verify(directory: String, workload: DeterministicBatches, highestDurable: Int, context: String) async throws -> Int {
        var config = LogConfig()
        config.retentionMs = nil
        config.segmentBytes = 256 * 1024
        let log = try PartitionLog.open(directory: directory, fileSystem: PosixFileSystem(), config: config)
        let count = try checkPrefix(log, workload: workload, context: context)
        #expect(count >= highestDurable + 1, "batch \(highestDurable) was reported durable but the log holds \(count) batches (\(context))")
        try await log.close()
        return count
    }

    /// Reads the whole log and checks it is batches 0, 1, 2, ... exactly; returns the count.
    static func checkPrefix(_ log: PartitionLog, workload: DeterministicBatches, firstSequence: Int = 0, context: String) throws -> Int {
        var offset = log.logStartOffset
        var sequence = firstSequence
        let end = log.logEndOffset
        while offset < end {
            let result = try log.read(from: offset, maxBytes: 1 << 20)
            var sawBatch = false
            for batch in StoredBatches(result.batches) {
                sawBatch = true
                if let mismatch = workload.mismatch(batch, sequence: sequence, baseOffset: offset) {
                    Issue.record("\(mismatch) (\(context))")
                    return sequence - firstSequence
                }
                offset = batch.header.nextOffset
                sequence += 1
            }
            if !sawBatch {
                Issue.record("read at \(offset) below the log end \(end) returned nothing (\(context))")
                break
            }
        }
        #expect(end == Int64(sequence) * Int64(workload.recordCount), "log end \(end) is not after batch \(sequence - 1) (\(context))")
        return sequence - firstSequence
    }
}
