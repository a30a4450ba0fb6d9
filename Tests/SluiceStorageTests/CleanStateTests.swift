import NIOCore
import SluiceStorage
import SluiceTestSupport
import Testing

/// The clean-shutdown marker stays until the log's files first change after a clean open,
/// so an idle partition costs no sync to open or to close, and any change still makes a
/// crash count as unclean. A "crash" here is reopening without `close()`: the real file
/// system keeps what was written, which is exactly what makes an unclean open check it.
@Suite(.timeLimit(.minutes(1))) struct CleanStateTests {
    static let config = smallConfig(segmentBytes: 400, indexIntervalBytes: 100)

    /// A log with a sealed segment and an active one, closed cleanly.
    func cleanlyClosedLog(_ path: String) async throws -> Int64 {
        let log = try PartitionLog.open(directory: path, config: Self.config)
        for index in 0..<6 { _ = try log.appendBuffered(makeBatch(pattern(index, 60)), leaderEpoch: 1) }
        #expect(log.segmentBaseOffsets.count >= 2)
        let end = log.logEndOffset
        try await log.close()
        return end
    }

    func markerExists(_ path: String) -> Bool { PosixFileSystem().fileExists(path + "/clean-shutdown") }

    /// Runs `body` with the path of a cleanly closed log and its end offset.
    func withCleanlyClosedLog(_ body: (String, Int64) async throws -> Void) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/log"
        try await body(path, try await cleanlyClosedLog(path))
    }

    @Test func anUnchangedLogOpensAndClosesWithoutASync() async throws {
        try await withCleanlyClosedLog { path, end in
            let counted = InstrumentedFileSystem()
            for _ in 0..<3 {
                let log = try PartitionLog.open(directory: path, fileSystem: counted, config: Self.config)
                #expect(log.recovery.cleanShutdown)
                #expect(log.logEndOffset == end)
                _ = try readAllBatches(log)  // reading is not a change
                try await log.close()
                #expect(markerExists(path))
            }
            #expect(counted.syncCount == 0)
        }
    }

    @Test func theFirstAppendRemovesTheMarkerSoACrashCountsAsUnclean() async throws {
        try await withCleanlyClosedLog { path, _ in
            let log = try PartitionLog.open(directory: path, config: Self.config)
            #expect(markerExists(path))
            _ = try log.appendBuffered(makeBatch(pattern(9, 30)), leaderEpoch: 1)
            #expect(!markerExists(path))
            let afterCrash = try PartitionLog.open(directory: path, config: Self.config)
            #expect(!afterCrash.recovery.cleanShutdown)
            try await afterCrash.close()
            try await log.close()
        }
    }

    @Test func aRefusedAppendLeavesThePartitionClean() async throws {
        try await withCleanlyClosedLog { path, _ in
            let counted = InstrumentedFileSystem()
            let log = try PartitionLog.open(directory: path, fileSystem: counted, config: Self.config)
            var corrupt = makeBatch(pattern(1, 30))
            corrupt.recordsCRC ^= 1
            #expect(throws: LogError.self) { try log.appendBuffered(corrupt, leaderEpoch: 1) }
            #expect(markerExists(path))
            try await log.close()
            #expect(counted.syncCount == 0)
        }
    }

    @Test func truncationAndRetentionAreChangesToo() async throws {
        try await withCleanlyClosedLog { path, end in

            let truncated = try PartitionLog.open(directory: path, config: Self.config)
            try truncated.truncate(to: end)  // at the end: nothing to cut, not a change
            #expect(markerExists(path))
            try truncated.truncate(to: end - 1)
            #expect(!markerExists(path))
            try await truncated.close()
            #expect(markerExists(path))

            var retained = Self.config
            retained.retentionBytes = 1
            let log = try PartitionLog.open(directory: path, config: retained)
            #expect(markerExists(path))
            let result = try log.enforceRetention()
            #expect(result.segmentsDeleted > 0)
            #expect(!markerExists(path))
            let afterCrash = try PartitionLog.open(directory: path, config: retained)
            #expect(!afterCrash.recovery.cleanShutdown)
            #expect(afterCrash.logStartOffset == result.logStartOffset)
            try await afterCrash.close()
            try await log.close()
        }
    }
}
