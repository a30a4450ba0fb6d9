import Foundation
@testable import SluiceStorage
import SluiceTestSupport
import Testing

/// The leader-epoch checkpoint (`LeaderEpochCheckpoint`, `PartitionLog+Epochs.swift`).
@Suite(.timeLimit(.minutes(2))) struct LeaderEpochTests {
    static let file = LeaderEpochCheckpoint.fileName

    /// Appends one batch per epoch in `epochs` (offsets 0, 1, 2, ...).
    static func append(_ log: PartitionLog, epochs: [Int32]) throws {
        for epoch in epochs {
            _ = try log.appendBuffered(makeBatch(pattern(Int(epoch), 300)), leaderEpoch: epoch)
        }
    }

    static func starts(_ pairs: [(Int32, Int64)]) -> [EpochStart] {
        pairs.map { EpochStart(epoch: $0.0, startOffset: $0.1) }
    }

    static func storedEntries(_ directory: String) throws -> [EpochStart] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/" + file)))
        return try LeaderEpochCheckpoint.decode(bytes).get().entries
    }

    static func overwrite(_ directory: String, with bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + file))
    }

    @Test func theFileIsLaidOutByteByByte() throws {
        let checkpoint = LeaderEpochCheckpoint(entries: Self.starts([(1, 0), (3, 258)]))
        let bytes = checkpoint.encoded()
        #expect(Array(bytes[0..<12]) == Array("SLEP".utf8) + [0, 0, 0, 1, 0, 0, 0, 2])
        #expect(Array(bytes[12..<24]) == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(Array(bytes[24..<36]) == [0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 1, 2])
        #expect(bytes.count == 40)
        #expect(try LeaderEpochCheckpoint.decode(bytes).get() == checkpoint)
        for cut in [0, 11, 39] {
            #expect(throws: CheckpointProblem.self) { try LeaderEpochCheckpoint.decode(Array(bytes[0..<cut])).get() }
        }
        var flipped = bytes
        flipped[30] ^= 1
        #expect(throws: CheckpointProblem.self) { try LeaderEpochCheckpoint.decode(flipped).get() }
    }

    /// KIP-279: the largest epoch held at or below the one asked, ending where the next
    /// starts (the log end for the latest); unknown below every epoch held.
    @Test func whereAnEpochEnds() async throws {
        let (directory, log) = try temporaryLog(replicatedConfig())
        defer { directory.remove() }
        #expect(log.endOffset(forEpoch: 0) == .unknown && log.endOffset(forEpoch: -1) == .unknown)
        try Self.append(log, epochs: Array(repeating: 1, count: 10) + Array(repeating: 3, count: 10) + Array(repeating: 5, count: 10))
        #expect(log.epochStarts == Self.starts([(1, 0), (3, 10), (5, 20)]))
        let cases: [(asked: Int32, answer: EpochEndOffset)] = [
            (-1, .unknown), (0, .unknown),
            (1, EpochEndOffset(epoch: 1, endOffset: 10)), (2, EpochEndOffset(epoch: 1, endOffset: 10)),
            (3, EpochEndOffset(epoch: 3, endOffset: 20)), (4, EpochEndOffset(epoch: 3, endOffset: 20)),
            (5, EpochEndOffset(epoch: 5, endOffset: 30)), (9, EpochEndOffset(epoch: 5, endOffset: 30)),
        ]
        for (asked, answer) in cases { #expect(log.endOffset(forEpoch: asked) == answer, "epoch \(asked)") }
        try await log.close()
    }

    /// Both kinds of append add an entry (and write the file) at each new epoch, and the
    /// entries survive a close and an open.
    @Test func eachNewEpochIsCheckpointedByEitherAppendAndSurvivesAReopen() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let config = replicatedConfig(segmentBytes: 1_500)
        let leader = try PartitionLog.open(directory: directory.path("leader"), config: config)
        let follower = try PartitionLog.open(directory: directory.path("follower"), config: config)
        #expect(!directory.exists("leader/" + Self.file))
        try Self.append(leader, epochs: [0, 0, 0, 2, 2, 2, 2, 2, 2, 7, 8, 8, 8])
        let expected = Self.starts([(0, 0), (2, 3), (7, 9), (8, 10)])
        #expect(leader.epochStarts == expected)
        #expect(try Self.storedEntries(directory.path("leader")) == expected)
        try replicate(from: leader, to: follower, maxBytes: 700)
        #expect(follower.epochStarts == expected)
        #expect(try Self.storedEntries(directory.path("follower")) == expected)
        try await leader.close()
        try await follower.close()
        let reopened = try PartitionLog.open(directory: directory.path("leader"), config: config)
        #expect(reopened.epochStarts == expected)
        // A clean open found the file right: it wrote nothing, the marker is still there.
        #expect(reopened.isUnchangedSinceCleanClose)
        try await reopened.close()
    }

    /// A single node keeps no checkpoint: no file, no write at a new epoch.
    @Test func aSingleNodeKeepsNoCheckpoint() async throws {
        let (directory, log) = try temporaryLog(smallConfig(fsync: .never))
        defer { directory.remove() }
        try Self.append(log, epochs: [0, 1])
        #expect(log.epochStarts.isEmpty && log.endOffset(forEpoch: 1) == .unknown)
        #expect(!directory.exists(Self.file))
        try await log.close()
    }

    enum Damage: CaseIterable {
        case missing, torn, stale, foreign
    }

    /// A file a crash (or anything else) left missing, torn or not matching the batches is
    /// rebuilt from the batch headers, and written again.
    @Test(arguments: Damage.allCases) func aDamagedCheckpointIsRebuiltFromTheBatches(_ damage: Damage) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        // Small segments: epochs change inside segments and at their boundaries.
        let config = replicatedConfig(segmentBytes: 1_100)
        let log = try PartitionLog.open(directory: directory.path, config: config)
        try Self.append(log, epochs: [0, 0, 0, 0, 1, 1, 1, 3, 4, 4, 4, 4, 4, 4, 6])
        let expected = log.epochStarts
        #expect(expected == Self.starts([(0, 0), (1, 4), (3, 7), (4, 8), (6, 14)]))
        #expect(log.segmentCount > 3)
        try await log.close()
        switch damage {
        case .missing: try FileManager.default.removeItem(atPath: directory.path(Self.file))
        case .torn: try Self.overwrite(directory.path, with: Array(LeaderEpochCheckpoint(entries: expected).encoded().prefix(30)))
        case .stale: try Self.overwrite(directory.path, with: LeaderEpochCheckpoint(entries: Array(expected.prefix(3))).encoded())
        case .foreign: try Self.overwrite(directory.path, with: LeaderEpochCheckpoint(entries: Self.starts([(9, 0)])).encoded())
        }
        let reopened = try PartitionLog.open(directory: directory.path, config: config)
        #expect(reopened.epochStarts == expected)
        #expect(try Self.storedEntries(directory.path) == expected)
        #expect(reopened.endOffset(forEpoch: 5) == EpochEndOffset(epoch: 4, endOffset: 14))
        try await reopened.close()
    }

    /// The entry is written before its epoch's first batch: a crash between the two
    /// leaves an entry at the log end, which the open drops.
    @Test func anEntryPastTheLogEndIsDroppedAtOpen() async throws {
        let (directory, log) = try temporaryLog(replicatedConfig())
        defer { directory.remove() }
        try Self.append(log, epochs: [0, 0, 2])
        try await log.close()
        try Self.overwrite(directory.path, with: LeaderEpochCheckpoint(entries: Self.starts([(0, 0), (2, 2), (5, 3)])).encoded())
        let reopened = try PartitionLog.open(directory: directory.path, config: replicatedConfig())
        #expect(reopened.epochStarts == Self.starts([(0, 0), (2, 2)]))
        #expect(try Self.storedEntries(directory.path) == Self.starts([(0, 0), (2, 2)]))
        try await reopened.close()
    }

    /// A truncation drops the entries at or past the new end; the epoch it cuts into stays.
    @Test func aTruncationDropsTheEpochsItRemoves() async throws {
        let (directory, log) = try temporaryLog(replicatedConfig(segmentBytes: 1_100))
        defer { directory.remove() }
        try Self.append(log, epochs: [0, 0, 0, 2, 2, 2, 2, 5, 5, 6])
        try log.truncate(to: 8)
        #expect(log.epochStarts == Self.starts([(0, 0), (2, 3), (5, 7)]))
        try log.truncate(to: 5)
        #expect(log.epochStarts == Self.starts([(0, 0), (2, 3)]))
        #expect(log.endOffset(forEpoch: 5) == EpochEndOffset(epoch: 2, endOffset: 5))
        #expect(try Self.storedEntries(directory.path) == Self.starts([(0, 0), (2, 3)]))
        // Appending again starts a new epoch's entry at the new end.
        try Self.append(log, epochs: [7])
        #expect(log.epochStarts == Self.starts([(0, 0), (2, 3), (7, 5)]))
        try log.truncate(to: 0)
        #expect(log.epochStarts.isEmpty && log.endOffset(forEpoch: 7) == .unknown)
        #expect(try Self.storedEntries(directory.path).isEmpty)
        try await log.close()
    }

    /// Deleting a prefix (retention, `deleteSegments(below:)`) moves the first entry's
    /// start up to the new log start and drops epochs wholly below it.
    @Test func deletingAPrefixMovesTheFirstEpochsStartUp() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let config = replicatedConfig(segmentBytes: 1_100)
        let log = try PartitionLog.open(directory: directory.path, config: config)
        try Self.append(log, epochs: [0, 0, 0, 1, 1, 1, 1, 1, 3, 3, 3, 3])
        let bases = log.segmentBaseOffsets
        #expect(bases.count > 3)
        _ = try log.deleteSegments(below: bases[2])
        let start = log.logStartOffset
        #expect(start == bases[2] && start > 3 && start < 8)
        #expect(log.epochStarts == Self.starts([(1, start), (3, 8)]))
        #expect(log.endOffset(forEpoch: 0) == .unknown)
        try await log.close()
        let reopened = try PartitionLog.open(directory: directory.path, config: config)
        #expect(reopened.epochStarts == Self.starts([(1, start), (3, 8)]))
        try await reopened.close()
    }

    /// Retention moves the first entry up the same way.
    @Test func retentionMovesTheFirstEpochsStartUp() async throws {
        var config = replicatedConfig(segmentBytes: 1_100)
        config.retentionBytes = 1_500
        let (directory, log) = try temporaryLog(config)
        defer { directory.remove() }
        try Self.append(log, epochs: [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 3, 3])
        let result = try log.enforceRetention()
        #expect(result.segmentsDeleted >= 2)
        let start = result.logStartOffset
        #expect(start > 4 && start < 11)
        #expect(log.epochStarts == Self.starts([(1, start), (3, 11)]))
        #expect(try Self.storedEntries(directory.path) == Self.starts([(1, start), (3, 11)]))
        try await log.close()
    }

    /// With every sealed segment deleted below an empty active one, the latest epoch's
    /// entry starts at the log end and holds no batch; a new epoch's first batch there
    /// replaces it.
    @Test func aNewEpochAtALogStartThatIsItsEndReplacesTheEmptyEntry() async throws {
        let clock = ManualClock()
        var config = replicatedConfig(segmentBytes: 1_100)
        config.segmentMs = 1_000
        let (directory, log) = try TemporaryDirectory.holding {
            try PartitionLog.open(directory: $0.path, config: config, clock: clock)
        }
        defer { directory.remove() }
        try Self.append(log, epochs: [0, 0, 0, 2, 2, 2, 2])
        clock.advance(byMilliseconds: 2_000)
        #expect(try log.rollIfAged())
        _ = try log.deleteSegments(below: log.logEndOffset)
        #expect(log.logStartOffset == 7 && log.logEndOffset == 7)
        #expect(log.epochStarts == Self.starts([(2, 7)]))
        try Self.append(log, epochs: [4])
        #expect(log.epochStarts == Self.starts([(4, 7)]))
        #expect(log.endOffset(forEpoch: 3) == .unknown)
        try await log.close()
        let reopened = try PartitionLog.open(directory: directory.path, config: config, clock: clock)
        #expect(reopened.epochStarts == Self.starts([(4, 7)]))
        try await reopened.close()
    }
}
