import NIOCore
import SluiceStorage
import SluiceTestSupport
import Testing

@Suite(.timeLimit(.minutes(2))) struct PartitionLogBasicTests {
    @Test func offsetsIncreaseAndSurviveCleanAndUncleanRestart() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/p0"
        var log = try PartitionLog.open(directory: path, config: smallConfig())
        #expect(log.logEndOffset == 0)
        var expected: [(Int64, [UInt8], Int32)] = []
        var next: Int64 = 0
        for index in 0..<40 {
            let payload = pattern(index, 50 + index * 7)
            let count = Int32(1 + index % 5)
            let result = try await log.append(makeBatch(payload, count: count), leaderEpoch: 0)
            #expect(result.baseOffset == next)
            #expect(result.lastOffset == next + Int64(count) - 1)
            expected.append((next, payload, count))
            next += Int64(count)
            #expect(log.durableEndOffset == next)
        }
        try await log.close()

        log = try PartitionLog.open(directory: path, config: smallConfig())
        #expect(log.recovery.cleanShutdown)
        #expect(log.recovery.segmentsChecked == 0)
        #expect(log.logEndOffset == next)
        let batches = try readAllBatches(log)
        #expect(batches.map(\.header.baseOffset) == expected.map(\.0))
        #expect(batches.map { Array($0.records.readableBytesView) } == expected.map(\.1))
        let more = try await log.append(makeBatch([1, 2, 3]), leaderEpoch: 0)
        #expect(more.baseOffset == next)
        next += 1

        // No close: the next open finds no marker and checks the active segment.
        log = try PartitionLog.open(directory: path, config: smallConfig())
        #expect(!log.recovery.cleanShutdown)
        #expect(log.recovery.bytesTruncated == 0)
        #expect(log.logEndOffset == next)
        #expect(try readAllBatches(log).count == expected.count + 1)
        try await log.close()
    }

    @Test func readsAtEveryKindOfPosition() async throws {
        let (directory, log) = try temporaryLog(smallConfig(indexIntervalBytes: 100))
        defer { directory.remove() }
        // Ten batches of 3 records, 100 bytes of records each: offsets 0..<30.
        for index in 0..<10 {
            _ = try log.appendBuffered(makeBatch(pattern(index, 100), count: 3), leaderEpoch: 1)
        }
        let batchSize = BatchHeader.size + 100

        func firstBase(_ offset: Int64, maxBytes: Int = 1) throws -> [Int64] {
            Array(StoredBatches(try log.read(from: offset, maxBytes: maxBytes).batches)).map(\.header.baseOffset)
        }
        #expect(try firstBase(0) == [0])                     // log start
        #expect(try firstBase(15) == [15])                   // middle, a batch start
        #expect(try firstBase(16) == [15])                   // inside a batch: the whole batch
        #expect(try firstBase(29) == [27])                   // the last offset
        #expect(try firstBase(4, maxBytes: 3 * batchSize) == [3, 6, 9])
        #expect(try firstBase(4, maxBytes: 3 * batchSize - 1) == [3, 6])
        #expect(try firstBase(0, maxBytes: 1 << 20, ).count == 10)
        #expect(try log.read(from: 30, maxBytes: 1000).batches.readableBytes == 0)   // log end
        #expect(throws: LogError.offsetOutOfRange(offset: 31, logStartOffset: 0, logEndOffset: 30)) {
            try log.read(from: 31, maxBytes: 1000)
        }
        #expect(throws: LogError.offsetOutOfRange(offset: -1, logStartOffset: 0, logEndOffset: 30)) {
            try log.read(from: -1, maxBytes: 1000)
        }
        // An upper bound (a high watermark) stops before batches that cross it.
        #expect(Array(StoredBatches(try log.read(from: 0, maxBytes: 1 << 20, upTo: 10).batches)).count == 3)
        #expect(try log.read(from: 9, maxBytes: 1 << 20, upTo: 10).batches.readableBytes == 0)
        try await log.close()
    }

    @Test func refusesBadBatches() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var config = smallConfig()
        config.maxBatchBytes = 1000
        let log = try PartitionLog.open(directory: directory.path, config: config)
        #expect(throws: LogError.batchTooLarge(bytes: 1001, limit: 1000)) {
            try log.appendBuffered(makeBatch(pattern(0, 1000 - BatchHeader.size + 1)), leaderEpoch: 0)
        }
        var wrongCRC = makeBatch([1, 2, 3])
        wrongCRC.recordsCRC ^= 1
        #expect(throws: LogError.invalidBatch(.recordsChecksumMismatch)) {
            try log.appendBuffered(wrongCRC, leaderEpoch: 0)
        }
        #expect(throws: LogError.self) { try log.appendBuffered(makeBatch([1], count: 0), leaderEpoch: 0) }
        #expect(throws: LogError.self) {
            try log.appendBuffered(makeBatch([1], firstTimestamp: 10, maxTimestamp: 9), leaderEpoch: 0)
        }
        _ = try log.appendBuffered(makeBatch([1]), leaderEpoch: 5)
        #expect(try log.appendBuffered(makeBatch([1]), leaderEpoch: 6).baseOffset == 1)
        #expect(log.logEndOffset == 2)
        try await log.close()
        // The epoch survives a restart.
        let reopened = try PartitionLog.open(directory: directory.path, config: config)
        #expect(reopened.latestLeaderEpoch == 6)
        try await reopened.close()
    }

    @Test func anOlderLeaderEpochStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            let directory = TemporaryDirectory()
            defer { directory.remove() }
            let log = try PartitionLog.open(directory: directory.path, config: smallConfig())
            _ = try log.appendBuffered(makeBatch([1]), leaderEpoch: 5)
            _ = try log.appendBuffered(makeBatch([1]), leaderEpoch: 4)
        }
    }

    @Test func segmentSizeCapsTheBatchSizeAndBadSettingsAreRefused() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var config = LogConfig()
        config.segmentBytes = 4096
        config.maxBatchBytes = 8192
        let log = try PartitionLog.open(directory: directory.path, config: config)
        #expect(throws: LogError.batchTooLarge(bytes: 4097, limit: 4096)) {
            try log.appendBuffered(makeBatch(pattern(0, 4097 - BatchHeader.size)), leaderEpoch: 0)
        }
        #expect(try log.appendBuffered(makeBatch(pattern(0, 4096 - BatchHeader.size)), leaderEpoch: 0).baseOffset == 0)
        try await log.close()
        config.segmentBytes = Int64(UInt32.max) + 1
        #expect(throws: LogError.self) { try PartitionLog.open(directory: directory.path, config: config) }
        config.segmentBytes = 4096
        config.indexIntervalBytes = 0
        #expect(throws: LogError.self) { try PartitionLog.open(directory: directory.path, config: config) }
    }

    @Test func missingDirectoryIsAClearError() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        #expect(throws: LogError.directoryMissing(directory.path + "/nope")) {
            try PartitionLog.open(directory: directory.path + "/nope", createIfMissing: false)
        }
    }
}
