import Foundation
import Logging
import NIOCore
import SluiceAPI
@testable import SluiceBroker
import SluiceChecksum
import SluiceStorage
import SluiceTestSupport
import Testing

/// The offsets log: its record format, loading, and compaction by snapshots.
@Suite(.timeLimit(.minutes(2)))
struct OffsetLogTests {
    static let logger = Logger(label: "offset-log-test")

    func openLog(_ directory: TemporaryDirectory, segmentBytes: Int64 = 4096) throws -> PartitionLog {
        var config = LogConfig()
        config.segmentBytes = segmentBytes
        config.retentionMs = nil
        config.fsyncPolicy = .never
        return try PartitionLog.open(directory: directory.path + "/offsets", config: config)
    }

    func coordinator(_ journal: OffsetLog) throws -> GroupCoordinator {
        try GroupCoordinator(clock: ManualGroupClock(), topics: FakeTopics(counts: ["t": 3], logEnd: 1_000_000), journal: journal)
    }

    func adminCommit(_ groups: GroupCoordinator, group: String, offsets: [Int64]) throws {
        let outcome = try groups.commit(CommitOffsetsRequest(
            group: group, memberId: "", generation: -1,
            offsets: offsets.enumerated().map { OffsetCommit(topic: "t", partition: UInt32($0.offset), offset: $0.element, metadata: "m\($0.element)") }))
        #expect(outcome.results.allSatisfy { $0.error == ErrorCode.none })
    }

    @Test func recordsRoundTripByteForByte() throws {
        let commit = OffsetLogRecord.change(.commit(
            group: "g", partition: GroupPartition("t", 2), value: CommittedOffsetValue(offset: 258, metadata: "hi", commitTimeMs: 1)))
        let record = commit.record
        #expect(record.key.map { String(buffer: $0) } == "g/t/2")
        #expect(Array(buffer: record.value) == [0x01, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0x68, 0x69])
        #expect(OffsetLogRecord(record) == commit)
        let tombstone = OffsetLogRecord.change(.tombstone(group: "g.x", partition: GroupPartition("a-b", 0)))
        #expect(tombstone.record.value.readableBytes == 0)
        #expect(OffsetLogRecord(tombstone.record) == tombstone)
        #expect(OffsetLogRecord(OffsetLogRecord.snapshotEnd(count: 3).record) == .snapshotEnd(count: 3))
        #expect(OffsetLogRecord(Record(key: ByteBuffer(string: "no-slashes"), value: ByteBuffer(bytes: [1]))) == nil)
        #expect(OffsetLogRecord(Record(value: ByteBuffer(bytes: [9]))) == nil)
    }

    /// Many commits over a small live set: the log stays a few segments long and a
    /// restart finds exactly the last offsets. SLUICE_OFFSETS_COMMITS runs more commits.
    @Test func compactionKeepsTheLogBoundedAndLosesNoLiveOffset() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let commits = ProcessInfo.processInfo.environment["SLUICE_OFFSETS_COMMITS"].flatMap(Int.init) ?? 2_000
        let log = try openLog(directory)
        let journal = OffsetLog(log: log, compactionBytes: 8192, logger: Self.logger)
        let groups = try coordinator(journal)
        var expected: [String: [Int64]] = [:]
        var written: Int64 = 0
        for step in 0..<commits {
            let group = "group-\(step % 20)"
            let offsets = (0..<3).map { Int64(step * 3 + $0) }
            try adminCommit(groups, group: group, offsets: offsets)
            expected[group] = offsets
            written = log.logEndOffset
        }
        // One delete among them: its offsets must not come back.
        _ = try groups.deleteGroup("group-7")
        expected.removeValue(forKey: "group-7")
        #expect(journal.snapshotsWritten > 10)
        #expect(written == log.logEndOffset - 3)
        try await log.flush()
        // Dropping old segments follows each snapshot once it is durable.
        let bound: Int64 = 8192 * 2 + 4 * 4096
        try await eventually("the offsets log shrinks below \(bound) bytes") { try log.sizeInBytes() < bound }
        #expect(log.logStartOffset > 0)
        try await log.close()

        let reopened = try openLog(directory)
        let reloaded = try coordinator(OffsetLog(log: reopened, compactionBytes: 8192, logger: Self.logger))
        for (group, offsets) in expected {
            let fetched = try reloaded.fetchOffsets(group: group, partitions: [])
            #expect(fetched.map(\.offset) == offsets, "\(group)")
            #expect(fetched.map(\.metadata) == offsets.map { "m\($0)" })
        }
        #expect(reloaded.listGroups().map(\.group).sorted() == expected.keys.sorted())
        #expect(reloaded.listGroups().allSatisfy { $0.state == .empty })
        try await reopened.close()
    }

    @Test func anUnfinishedSnapshotIsIgnored() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try openLog(directory)
        let journal = OffsetLog(log: log, compactionBytes: 1 << 20, logger: Self.logger)
        let groups = try coordinator(journal)
        try adminCommit(groups, group: "g", offsets: [5, 6, 7])
        // A crash cut a snapshot short: its begin and one entry, no end.
        let value = CommittedOffsetValue(offset: 1, metadata: "", commitTimeMs: 0)
        let records = Records(records: [
            OffsetLogRecord.snapshotBegin(count: 2).record,
            OffsetLogRecord.snapshotEntry(group: "other", partition: GroupPartition("t", 0), value: value).record,
        ]).protobufBytes()
        _ = try log.appendBuffered(NewBatch(
            recordCount: 2, firstTimestamp: 0, maxTimestamp: 0, recordsCRC: CRC32C.checksum(records), records: records),
            leaderEpoch: 0)
        // Commits after the restart land after the torn snapshot.
        try adminCommit(groups, group: "h", offsets: [1])
        try await log.close()
        let reloaded = try coordinator(OffsetLog(log: try openLog(directory), compactionBytes: 1 << 20, logger: Self.logger))
        #expect(try reloaded.fetchOffsets(group: "g", partitions: []).map(\.offset) == [5, 6, 7])
        #expect(try reloaded.fetchOffsets(group: "h", partitions: []).map(\.offset) == [1])
        #expect(reloaded.listGroups().map(\.group) == ["g", "h"])
    }
}
