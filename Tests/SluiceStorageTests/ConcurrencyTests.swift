import Glibc
import NIOCore
import SluiceStorage
import SluiceTestSupport
import Testing

/// Appends, reads, rolls, retention and flushes at once, bounded in count. Every
/// read returns whole, verifying batches in offset order; nothing acknowledged is
/// lost across a reopen. SLUICE_STORAGE_STRESS=<appends per writer> runs longer.
@Suite(.timeLimit(.minutes(5))) struct ConcurrencyTests {
    static var appendsPerWriter: Int {
        getenv("SLUICE_STORAGE_STRESS").flatMap { Int(String(cString: $0)) } ?? 150
    }

    @Test func appendsReadsRollsAndRetentionTogether() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var config = smallConfig(segmentBytes: 4000, indexIntervalBytes: 300)
        config.retentionBytes = 20_000
        config.maxOpenSealedSegments = 2
        let log = try PartitionLog.open(directory: directory.path, config: config)
        let perWriter = Self.appendsPerWriter
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    for index in 0..<perWriter {
                        let result = try await log.append(makeBatch(pattern(writer * 10_000 + index, 50 + index % 200), count: 3), leaderEpoch: 0)
                        precondition(log.durableEndOffset > result.lastOffset, "acknowledged before durable")
                    }
                }
            }
            for reader in 0..<2 {
                group.addTask {
                    var generator = SplitMix64(seed: UInt64(reader))
                    for _ in 0..<(perWriter * 2) {
                        let end = log.logEndOffset
                        guard end > 0 else { await Task.yield(); continue }
                        let target = Int64(generator.next() % UInt64(end))
                        do {
                            let result = try log.read(from: target, maxBytes: Int(generator.next() % 2000))
                            var expected: Int64? = nil
                            for batch in StoredBatches(result.batches) {
                                precondition(batch.defect() == nil, "read a damaged batch")
                                if let expected { precondition(batch.header.baseOffset == expected, "gap in a read") }
                                else { precondition(batch.header.baseOffset <= target && batch.header.lastOffset >= target, "wrong first batch") }
                                expected = batch.header.nextOffset
                            }
                            precondition(expected != nil, "empty read below the log end")
                        } catch LogError.offsetOutOfRange {
                            // Retention moved the log start past the target meanwhile.
                        }
                        await Task.yield()
                    }
                }
            }
            group.addTask {
                for _ in 0..<(perWriter / 5) {
                    _ = try log.enforceRetention()
                    await Task.yield()
                }
            }
            try await group.waitForAll()
        }
        let end = log.logEndOffset
        #expect(end == Int64(4 * perWriter * 3))
        #expect(log.segmentCount > 2)
        _ = try log.enforceRetention()
        let start = log.logStartOffset
        #expect(start > 0)
        let before = try readAllBatches(log)
        try await log.close()
        let reopened = try PartitionLog.open(directory: directory.path, config: config)
        #expect(reopened.logStartOffset == start)
        #expect(reopened.logEndOffset == end)
        #expect(try readAllBatches(reopened).map(\.bytes) == before.map(\.bytes))
        try await reopened.close()
    }

    /// Reads do their bulk pread outside the lock; a truncation racing one must never
    /// yield torn or stale-but-damaged bytes.
    @Test func readsRacingTruncationsStayWhole() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try PartitionLog.open(
            directory: directory.path, config: smallConfig(segmentBytes: 3000, indexIntervalBytes: 200, fsync: .never))
        let rounds = Self.appendsPerWriter * 2
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for index in 0..<rounds {
                    _ = try log.appendBuffered(makeBatch(pattern(index, 30 + index % 300), count: 2), leaderEpoch: 0)
                    if index % 7 == 6 { try log.truncate(to: max(0, log.logEndOffset - 9)) }
                    await Task.yield()
                }
            }
            for reader in 0..<2 {
                group.addTask {
                    var generator = SplitMix64(seed: UInt64(reader) + 10)
                    for _ in 0..<rounds {
                        let end = log.logEndOffset
                        guard end > 0 else { await Task.yield(); continue }
                        let target = Int64(generator.next() % UInt64(end))
                        do {
                            let result = try log.read(from: target, maxBytes: Int(generator.next() % 3000))
                            var expected: Int64?
                            for batch in StoredBatches(result.batches) {
                                precondition(batch.defect() == nil, "read a damaged batch")
                                if let expected { precondition(batch.header.baseOffset == expected, "gap in a read") }
                                expected = batch.header.nextOffset
                            }
                        } catch LogError.offsetOutOfRange {
                            // A truncation moved the end below the target meanwhile.
                        }
                        await Task.yield()
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try readAllBatches(log).count > 0)
        try await log.close()
    }

    @Test func corruptCheckpointIsReported() async throws {
        let (directory, log) = try temporaryLog()
        defer { directory.remove() }
        _ = try await log.append(makeBatch([1]), leaderEpoch: 0)
        try await log.close()
        var bytes = try readWholeFile(directory.path + "/checkpoint")
        bytes[10] ^= 1
        try writeWholeFile(directory.path + "/checkpoint", bytes)
        #expect {
            try PartitionLog.open(directory: directory.path, config: smallConfig())
        } throws: { error in
            if case LogError.corruptCheckpoint = error { return true }
            return false
        }
    }
}
