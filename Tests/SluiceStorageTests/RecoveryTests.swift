import NIOCore
import SluiceStorage
import SluiceTestSupport
import Testing

/// Crash recovery on the real file system: files are cut or damaged by hand, as a
/// torn write or bit rot would leave them, then the log is reopened.
@Suite(.timeLimit(.minutes(2))) struct RecoveryTests {
    let fileSystem = PosixFileSystem()

    /// Every file of a log directory, to restore between cases.
    func snapshot(_ path: String) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        for name in try fileSystem.listDirectory(path) { files[name] = try readWholeFile(path + "/" + name) }
        return files
    }

    func restore(_ files: [String: [UInt8]], to path: String) throws {
        for name in try fileSystem.listDirectory(path) where files[name] == nil {
            try fileSystem.remove(path + "/" + name)
        }
        for (name, bytes) in files { try writeWholeFile(path + "/" + name, bytes) }
    }

    /// The settings every log of `crashedLog` is opened with: small segments and a dense
    /// index, so that two segments and several index entries take a few batches.
    static let crashedLogConfig = smallConfig(segmentBytes: 700, indexIntervalBytes: 100)

    /// Puts `files` (a damaged copy of `crashedLog`'s) in place and opens the log on them,
    /// which recovers it.
    func reopen(_ files: [String: [UInt8]], at path: String) throws -> PartitionLog {
        try restore(files, to: path)
        return try PartitionLog.open(directory: path, config: Self.crashedLogConfig)
    }

    /// A log of two segments whose active segment holds batches above the recovery
    /// point, left without a clean close (as after a crash), in a temporary directory
    /// the test removes.
    struct CrashedLog {
        let directory: TemporaryDirectory
        let path: String
        /// The directory snapshot.
        let files: [String: [UInt8]]
        let batches: [StoredBatch]
        /// The active segment's file name.
        let active: String

        var activeBytes: [UInt8] { files[active]! }
        var finalBatch: StoredBatch { batches[batches.count - 1] }
        /// Where the final batch starts in the active segment.
        var finalBatchStart: Int { activeBytes.count - finalBatch.header.storedSize }
    }

    func crashedLog() throws -> CrashedLog {
        try TemporaryDirectory.holding { directory in
            let path = directory.path + "/log"
            let log = try PartitionLog.open(directory: path, config: Self.crashedLogConfig)
            for index in 0..<9 {
                _ = try log.appendBuffered(makeBatch(pattern(index, 40 + index), count: 2), leaderEpoch: 3)
            }
            let bases = log.segmentBaseOffsets
            precondition(bases.count >= 2, "the test wants a sealed segment")
            let batches = try readAllBatches(log)
            let active = String(repeating: "0", count: 20 - String(bases.last!).count) + String(bases.last!) + ".log"
            return CrashedLog(directory: directory, path: path, files: try snapshot(path), batches: batches, active: active)
        }.contents
    }

    @Test func cutAtEveryBytePositionOfTheFinalBatch() async throws {
        let crashed = try crashedLog()
        defer { crashed.directory.remove() }
        let (batches, whole, finalStart) = (crashed.batches, crashed.activeBytes, crashed.finalBatchStart)
        for cut in finalStart...whole.count {
            var damaged = crashed.files
            damaged[crashed.active] = Array(whole[..<cut])
            let log = try reopen(damaged, at: crashed.path)
            let survivors = cut == whole.count ? batches.count : batches.count - 1
            #expect(!log.recovery.cleanShutdown)
            #expect(log.recovery.bytesTruncated == Int64(cut == whole.count ? 0 : cut - finalStart), "cut \(cut)")
            #expect(log.logEndOffset == batches[survivors - 1].header.nextOffset, "cut \(cut)")
            let back = try readAllBatches(log)
            #expect(back.map(\.bytes) == batches[..<survivors].map(\.bytes), "cut \(cut)")
            // It appends on from the prefix.
            #expect(try log.appendBuffered(makeBatch([9]), leaderEpoch: 3).baseOffset == log.logEndOffset - 1)
            try await log.close()
        }
    }

    @Test func flippedByteAnywhereInTheFinalBatchDropsIt() async throws {
        let crashed = try crashedLog()
        defer { crashed.directory.remove() }
        let last = crashed.finalBatch
        for position in crashed.finalBatchStart..<crashed.activeBytes.count {
            var damaged = crashed.files
            damaged[crashed.active]![position] ^= 0xFF
            let log = try reopen(damaged, at: crashed.path)
            #expect(log.recovery.bytesTruncated == Int64(last.header.storedSize), "byte \(position)")
            #expect(log.logEndOffset == last.header.baseOffset, "byte \(position)")
            #expect(try readAllBatches(log).map(\.bytes) == crashed.batches.dropLast().map(\.bytes), "byte \(position)")
            try await log.close()
        }
    }

    @Test func flippedByteInAnEarlierActiveBatchCutsFromThere() async throws {
        let crashed = try crashedLog()
        defer { crashed.directory.remove() }
        let (path, files, batches, active) = (crashed.path, crashed.files, crashed.batches, crashed.active)
        let activeBase = Int64(active.dropLast(4))!
        let inActive = batches.filter { $0.header.baseOffset >= activeBase }
        #expect(inActive.count >= 2)
        var damaged = files
        damaged[active]![inActive[0].header.storedSize + 70] ^= 0x01   // inside the second batch's records
        let log = try reopen(damaged, at: path)
        #expect(log.logEndOffset == inActive[1].header.baseOffset)
        #expect(try readAllBatches(log).count == batches.count - inActive.count + 1)
        try await log.close()
    }

    @Test func corruptionInASealedSegmentIsReportedNotSkipped() throws {
        let crashed = try crashedLog()
        defer { crashed.directory.remove() }
        let path = crashed.path
        var damaged = crashed.files
        damaged["00000000000000000000.log"]![80] ^= 0x04
        // Without a checkpoint the recovery point is the log start: every segment is checked.
        damaged[LogCheckpoint.fileName] = nil
        #expect {
            try reopen(damaged, at: path)
        } throws: { error in
            guard case LogError.corruptSegment(let file, _, _) = error else { return false }
            return file.hasSuffix("00000000000000000000.log")
        }
    }

    @Test func corruptionBelowTheRecoveryPointIsReported() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/log"
        let config = smallConfig(indexIntervalBytes: 100)
        var log = try PartitionLog.open(directory: path, config: config)
        for index in 0..<4 { _ = try log.appendBuffered(makeBatch(pattern(index, 30)), leaderEpoch: 0) }
        try await log.close()   // recovery point 4
        log = try PartitionLog.open(directory: path, config: config)
        for index in 4..<6 { _ = try log.appendBuffered(makeBatch(pattern(index, 30)), leaderEpoch: 0) }
        #expect(log.recoveryPoint == 4)
        #expect(log.segmentCount == 1)
        // Crash (no close), with batch 1, below the recovery point, damaged.
        var bytes = try readWholeFile(path + "/00000000000000000000.log")
        bytes[BatchHeader.size + 30 + 70] ^= 0x10
        try writeWholeFile(path + "/00000000000000000000.log", bytes)
        #expect {
            try PartitionLog.open(directory: path, config: config)
        } throws: { error in
            if case LogError.corruptSegment = error { return true }
            return false
        }
    }

    @Test func missingOrDamagedIndexesAreRebuilt() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/log"
        let config = smallConfig(segmentBytes: 2000, indexIntervalBytes: 100)
        var log = try PartitionLog.open(directory: path, config: config)
        for index in 0..<40 {
            _ = try log.appendBuffered(
                makeBatch(pattern(index, 60), count: 2, firstTimestamp: Int64(index * 10)), leaderEpoch: 0)
        }
        let expected = try readAllBatches(log)
        try await log.close()
        let golden = try snapshot(path)
        let indexNames = golden.keys.filter { $0.hasSuffix(".index") || $0.hasSuffix(".timeindex") }.sorted()
        #expect(indexNames.count >= 4)
        for name in indexNames {
            for damage in ["delete", "garbage", "short"] {
                var files = golden
                switch damage {
                case "delete": files[name] = nil
                case "garbage": files[name] = [UInt8](repeating: 0xFF, count: 24)
                default: files[name] = Array(files[name]!.dropLast(3))
                }
                for clean in [true, false] {
                    try restore(files, to: path)
                    if !clean { try fileSystem.remove(path + "/clean-shutdown") }
                    log = try PartitionLog.open(directory: path, config: config)
                    let activeIndex = name.hasPrefix(String(repeating: "0", count: 20 - String(log.segmentBaseOffsets.last!).count) + String(log.segmentBaseOffsets.last!))
                    // The active segment's indexes are checked at open; a sealed one's when first used.
                    if activeIndex { #expect(log.recovery.indexesRebuilt == 1, "\(name) \(damage)") }
                    #expect(try readAllBatches(log).map(\.bytes) == expected.map(\.bytes), "\(name) \(damage)")
                    #expect(try log.offset(forTimestamp: 205) == 42, "\(name) \(damage)")
                    try await log.close()
                    #expect(try snapshot(path)[name] == golden[name], "\(name) \(damage) rebuilt identically")
                }
            }
        }
    }

    @Test func leftoverFilesFromACrashAreRemoved() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/log"
        var log = try PartitionLog.open(directory: path, config: smallConfig())
        _ = try log.appendBuffered(makeBatch([1, 2]), leaderEpoch: 0)
        try await log.close()
        try writeWholeFile(path + "/checkpoint.tmp", [1])
        try writeWholeFile(path + "/00000000000000000099.index", [1])
        log = try PartitionLog.open(directory: path, config: smallConfig())
        #expect(log.recovery.filesRemoved.count == 2)
        #expect(!fileSystem.fileExists(path + "/checkpoint.tmp"))
        #expect(log.logEndOffset == 1)
        try await log.close()
    }
}
