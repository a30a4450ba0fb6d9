import NIOCore
@testable import SluiceStorage
import SluiceTestSupport
import Testing

/// Rolling, retention, truncation and the time index.
@Suite(.timeLimit(.minutes(2))) struct SegmentLifecycleTests {
    let fileSystem = PosixFileSystem()

    @Test func rollsBySizeIntoZeroPaddedSegments() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        // 164-byte batches: six fit in 1000 bytes, the seventh rolls.
        let log = try PartitionLog.open(directory: directory.path, config: smallConfig(segmentBytes: 1000))
        for index in 0..<20 { _ = try log.appendBuffered(makeBatch(pattern(index, 100)), leaderEpoch: 0) }
        #expect(log.segmentBaseOffsets == [0, 6, 12, 18])
        let names = Set(try fileSystem.listDirectory(directory.path))
        for stem in ["00000000000000000000", "00000000000000000006", "00000000000000000012", "00000000000000000018"] {
            #expect(names.contains(stem + ".log") && names.contains(stem + ".index") && names.contains(stem + ".timeindex"))
        }
        #expect(try readWholeFile(directory.path + "/00000000000000000006.log").count == 6 * 164)
        // Rolling synced the sealed segments: everything below the active one is durable and checkpointed.
        #expect(log.recoveryPoint == 18)
        #expect(log.durableEndOffset >= 18)
        #expect(try readAllBatches(log).count == 20)
        try await log.close()
    }

    @Test func rollsByAge() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let clock = ManualClock()
        var config = smallConfig()
        config.segmentMs = 60_000
        let log = try PartitionLog.open(directory: directory.path, config: config, clock: clock)
        _ = try log.appendBuffered(makeBatch([1], firstTimestamp: clock.nowMilliseconds()), leaderEpoch: 0)
        clock.advance(byMilliseconds: 59_999)
        _ = try log.appendBuffered(makeBatch([2], firstTimestamp: clock.nowMilliseconds()), leaderEpoch: 0)
        #expect(log.segmentCount == 1)
        clock.advance(byMilliseconds: 1)
        _ = try log.appendBuffered(makeBatch([3], firstTimestamp: clock.nowMilliseconds()), leaderEpoch: 0)
        #expect(log.segmentBaseOffsets == [0, 2])
        try await log.close()
    }

    @Test func retentionBySizeDeletesOldestSealedSegments() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var config = smallConfig(segmentBytes: 1000)
        config.retentionBytes = 2500
        let log = try PartitionLog.open(directory: directory.path, config: config)
        for index in 0..<26 { _ = try log.appendBuffered(makeBatch(pattern(index, 100)), leaderEpoch: 0) }
        // Segments of 984 bytes at 0, 6, 12, 18 and an active one at 24 with 2 batches (328 bytes).
        #expect(log.segmentBaseOffsets == [0, 6, 12, 18, 24])
        let result = try log.enforceRetention()
        // 4264 total: dropping 0 and 6 leaves 2296 < 2500, so only 0 goes.
        #expect(result == RetentionResult(segmentsDeleted: 1, bytesDeleted: 984, logStartOffset: 6))
        #expect(log.segmentBaseOffsets == [6, 12, 18, 24])
        #expect(!fileSystem.fileExists(directory.path + "/00000000000000000000.log"))
        #expect(!fileSystem.fileExists(directory.path + "/00000000000000000000.index"))
        #expect(throws: LogError.offsetOutOfRange(offset: 5, logStartOffset: 6, logEndOffset: 26)) {
            try log.read(from: 5, maxBytes: 100)
        }
        #expect(Array(StoredBatches(try log.read(from: 6, maxBytes: 1).batches)).first?.header.baseOffset == 6)
        #expect(try log.enforceRetention().segmentsDeleted == 0)
        try await log.close()
        // The log start survives a restart.
        let reopened = try PartitionLog.open(directory: directory.path, config: config)
        #expect(reopened.logStartOffset == 6)
        #expect(reopened.logEndOffset == 26)
        try await reopened.close()
    }

    @Test func retentionByAgeNeverDeletesTheActiveSegment() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let clock = ManualClock(1_000_000)
        var config = smallConfig(segmentBytes: 1000)
        config.retentionMs = 10_000
        let log = try PartitionLog.open(directory: directory.path, config: config, clock: clock)
        // Segment 0: timestamps up to 995_000; segment 6: up to 1_005_000 (one out-of-order batch).
        for index in 0..<6 {
            _ = try log.appendBuffered(makeBatch(pattern(index, 100), firstTimestamp: 990_000 + Int64(index) * 1000), leaderEpoch: 0)
        }
        for index in 0..<6 {
            let stamp: Int64 = index == 2 ? 1_005_000 : 996_000
            _ = try log.appendBuffered(makeBatch(pattern(index, 100), firstTimestamp: stamp), leaderEpoch: 0)
        }
        _ = try log.appendBuffered(makeBatch([1], firstTimestamp: 900_000), leaderEpoch: 0)   // active, old
        #expect(log.segmentBaseOffsets == [0, 6, 12])
        #expect(try log.enforceRetention().segmentsDeleted == 0)   // nothing older than 10 s yet
        clock.advance(byMilliseconds: 5_001)                                   // now 1_005_001: segment 0 is 10_001 ms old
        #expect(try log.enforceRetention() == RetentionResult(segmentsDeleted: 1, bytesDeleted: 984, logStartOffset: 6))
        clock.advance(byMilliseconds: 10_000)                                  // segment 6's largest is 1_005_000
        #expect(try log.enforceRetention().segmentsDeleted == 1)
        clock.advance(byMilliseconds: 1_000_000)
        #expect(try log.enforceRetention().segmentsDeleted == 0)   // only the active one is left
        #expect(log.segmentBaseOffsets == [12])
        #expect(log.logStartOffset == 12)
        try await log.close()
    }

    @Test func truncationRemovesBatchesAndIndexEntries() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let config = smallConfig(segmentBytes: 1000, indexIntervalBytes: 100)
        var log = try PartitionLog.open(directory: directory.path, config: config)
        for index in 0..<15 { _ = try log.appendBuffered(makeBatch(pattern(index, 100), count: 2), leaderEpoch: Int32(index)) }
        // Batches of 2 records, 6 per segment: segments at 0, 12, 24; offsets 0..<30.
        #expect(log.segmentBaseOffsets == [0, 12, 24])
        let before = try readAllBatches(log)

        // Inside a batch of the active segment: the whole batch goes.
        #expect(try log.truncate(to: 27) == 26)
        #expect(log.logEndOffset == 26)
        // Into a sealed segment: later segments are removed, this one becomes active.
        #expect(try log.truncate(to: 16) == 16)
        #expect(log.segmentBaseOffsets == [0, 12])
        #expect(!fileSystem.fileExists(directory.path + "/00000000000000000024.log"))
        #expect(log.latestLeaderEpoch == 7)
        #expect(try readAllBatches(log).map(\.bytes) == before.prefix(8).map(\.bytes))
        // No index entry points at or past the cut.
        let index = try readWholeFile(directory.path + "/00000000000000000012.index")
        #expect(index.count % 8 == 0)
        for at in stride(from: 0, to: index.count, by: 8) {
            let position = index[(at + 4)..<(at + 8)].reduce(0) { $0 << 8 | Int($1) }
            #expect(position < 2 * 164)
        }
        #expect(throws: LogError.offsetOutOfRange(offset: 17, logStartOffset: 0, logEndOffset: 16)) {
            try log.read(from: 17, maxBytes: 1)
        }
        // Appending goes on from the cut, with an epoch from the remaining log on.
        #expect(try log.appendBuffered(makeBatch([1, 2, 3], count: 3), leaderEpoch: 20).baseOffset == 16)
        #expect(try log.offset(forTimestamp: 0) == 0)
        // Exactly a segment boundary: that segment is emptied and stays the active one.
        #expect(try log.truncate(to: 12) == 12)
        #expect(log.segmentBaseOffsets == [0, 12])
        #expect(try log.read(from: 12, maxBytes: 100).batches.readableBytes == 0)
        try await log.close()
        log = try PartitionLog.open(directory: directory.path, config: config)
        #expect(log.logEndOffset == 12)
        #expect(log.latestLeaderEpoch == 5)
        #expect(try readAllBatches(log).map(\.bytes) == before.prefix(6).map(\.bytes))
        #expect(try log.truncate(to: 0) == 0)
        #expect(log.segmentBaseOffsets == [0])
        #expect(log.latestLeaderEpoch == -1)
        try await log.close()
    }

    @Test func timeIndexFindsFirstBatchAtOrAfterWithOutOfOrderTimestamps() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let config = smallConfig(segmentBytes: 2000, indexIntervalBytes: 150)
        var log = try PartitionLog.open(directory: directory.path, config: config)
        var generator = SplitMix64(seed: 42)
        var stamps: [(base: Int64, max: Int64)] = []
        for index in 0..<120 {
            // Mostly rising with producer clock skew of up to ±500 ms.
            let skew = Int64(generator.next() % 1000) - 500
            let max = 10_000 + Int64(index) * 100 + skew
            let result = try log.appendBuffered(
                makeBatch(pattern(index, 40), count: 2, firstTimestamp: max - 50, maxTimestamp: max), leaderEpoch: 0)
            stamps.append((result.baseOffset, max))
        }
        #expect(log.segmentCount > 3)
        func expected(_ target: Int64) -> Int64? { stamps.first { $0.max >= target }?.base }
        let targets: [Int64] = [Int64.min, 0, 9_499, 10_000] + (0..<200).map { _ in 9_000 + Int64(generator.next() % 14_000) }
            + [stamps.map(\.max).max()!, stamps.map(\.max).max()! + 1]
        for target in targets { #expect(try log.offset(forTimestamp: target) == expected(target), "t=\(target)") }
        try await log.close()
        log = try PartitionLog.open(directory: directory.path, config: config)
        for target in targets.prefix(50) { #expect(try log.offset(forTimestamp: target) == expected(target), "t=\(target)") }
        try await log.close()
    }

    @Test func openFilesStayBounded() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let fileSystem = InstrumentedFileSystem()
        var config = smallConfig(segmentBytes: 400)
        config.maxOpenSealedSegments = 3
        var log = try PartitionLog.open(directory: directory.path, fileSystem: fileSystem, config: config)
        for index in 0..<60 { _ = try log.appendBuffered(makeBatch(pattern(index, 100)), leaderEpoch: 0) }
        #expect(log.segmentCount == 30)
        #expect(try readAllBatches(log, maxBytes: 1).count == 60)
        for target in stride(from: Int64(59), through: 0, by: -7) { _ = try log.read(from: target, maxBytes: 1) }
        // Three sealed segments' logs plus the active segment's three files, at most.
        #expect(fileSystem.peakOpenFiles <= 3 + 3 + 1)
        try await log.close()
        #expect(fileSystem.openFiles == 0)
        log = try PartitionLog.open(directory: directory.path, fileSystem: fileSystem, config: config)
        #expect(try log.sizeInBytes() == 60 * 164)
        #expect(fileSystem.openFiles <= 3 + 3)
        try await log.close()
    }

    @Test func anIdlePartitionHoldsOneDescriptor() async throws {
        // The active segment's index files are written only on seal and close, so they are
        // not held open: 10,000 idle partitions cost 10,000 descriptors, not 30,000.
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let fileSystem = InstrumentedFileSystem()
        var log = try PartitionLog.open(directory: directory.path, fileSystem: fileSystem, config: smallConfig(segmentBytes: 400))
        #expect(fileSystem.openFiles == 1)
        for index in 0..<2 { _ = try log.appendBuffered(makeBatch(pattern(index, 100)), leaderEpoch: 0) }
        #expect(fileSystem.openFiles == 1)
        // Rolling seals the first segment (its log stays open for reads) and starts another.
        for index in 2..<4 { _ = try log.appendBuffered(makeBatch(pattern(index, 100)), leaderEpoch: 0) }
        #expect(log.segmentCount == 2)
        #expect(fileSystem.openFiles == 2)
        try await log.close()
        #expect(fileSystem.openFiles == 0)
        log = try PartitionLog.open(directory: directory.path, fileSystem: fileSystem, config: smallConfig(segmentBytes: 400))
        #expect(fileSystem.openFiles == 1)
        #expect(try readAllBatches(log).count == 4)
        try await log.close()
        #expect(fileSystem.openFiles == 0)
    }
}
