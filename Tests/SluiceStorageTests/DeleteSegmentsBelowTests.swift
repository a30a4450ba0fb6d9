import NIOCore
@testable import SluiceStorage
import SluiceTestSupport
import Testing

/// `PartitionLog.deleteSegments(below:)`: the prefix drop the consumer-offsets log uses
/// after a snapshot.
@Suite(.timeLimit(.minutes(1)))
struct DeleteSegmentsBelowTests {
    @Test func dropsOnlySegmentsWhollyBelowTheOffsetAndSurvivesARestart() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let config = smallConfig(segmentBytes: 1000)
        let log = try PartitionLog.open(directory: directory.path, config: config)
        for index in 0..<26 { _ = try log.appendBuffered(makeBatch(pattern(index, 100)), leaderEpoch: 0) }
        // Segments of six 164-byte batches at 0, 6, 12, 18 and an active one at 24.
        #expect(log.segmentBaseOffsets == [0, 6, 12, 18, 24])
        // 13 lies inside segment 12: segments 0 and 6 go, 12 stays (it holds 13).
        #expect(try log.deleteSegments(below: 13) == RetentionResult(segmentsDeleted: 2, bytesDeleted: 1968, logStartOffset: 12))
        #expect(log.segmentBaseOffsets == [12, 18, 24])
        #expect(throws: LogError.offsetOutOfRange(offset: 11, logStartOffset: 12, logEndOffset: 26)) {
            try log.read(from: 11, maxBytes: 100)
        }
        #expect(try readAllBatches(log).map(\.header.baseOffset) == Array(12..<26))
        // Nothing below the offset is left to drop; the active segment is never dropped.
        #expect(try log.deleteSegments(below: 12).segmentsDeleted == 0)
        #expect(try log.deleteSegments(below: 1_000).segmentsDeleted == 2)
        #expect(log.segmentBaseOffsets == [24])
        try await log.close()
        let reopened = try PartitionLog.open(directory: directory.path, config: config)
        #expect(reopened.logStartOffset == 24)
        #expect(reopened.logEndOffset == 26)
        try await reopened.close()
    }
}
