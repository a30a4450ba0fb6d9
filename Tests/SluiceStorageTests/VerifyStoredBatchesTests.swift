import Foundation
import SluiceStorage
import SluiceTestSupport
import Testing

/// The scrub a follower runs over its log (`PartitionLog.verifyStoredBatches`).
@Suite(.timeLimit(.minutes(2))) struct VerifyStoredBatchesTests {
    /// 24 batches of 100 record bytes (164 stored) over segments of 1,000 bytes: six per segment.
    static let payload = 100
    static let stored = 64 + payload

    static func filledLog(_ directory: TemporaryDirectory) throws -> PartitionLog {
        let log = try PartitionLog.open(directory: directory.path, config: smallConfig(segmentBytes: 1_000, fsync: .never))
        for index in 0..<24 { _ = try log.appendBuffered(makeBatch(pattern(index, payload)), leaderEpoch: 0) }
        return log
    }

    /// Scrubs the whole log in steps of `maxBytes`, as a follower does.
    static func scrub(_ log: PartitionLog, maxBytes: Int) throws -> (check: StoredBatchCheck, steps: Int) {
        var offset = log.logStartOffset
        var steps = 0
        while steps < 1_000 {
            steps += 1
            let check = try log.verifyStoredBatches(from: offset, maxBytes: maxBytes)
            guard case .intact(let next) = check, next < log.logEndOffset else { return (check, steps) }
            offset = next
        }
        Issue.record("the scrub made no progress")
        return (.intact(nextOffset: offset), steps)
    }

    /// Flips one bit of the stored batch at `offset`, `byte` bytes into it, in place (as
    /// a disk would), while the log is open.
    static func flipBit(_ log: PartitionLog, directory: TemporaryDirectory, offset: Int64, byte: Int) throws {
        let base = log.segmentBaseOffsets.last { $0 <= offset }!
        let name = String(repeating: "0", count: 20 - String(base).count) + String(base) + ".log"
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: directory.path(name)))
        defer { try? handle.close() }
        let position = UInt64(Int(offset - base) * stored + byte)
        try handle.seek(toOffset: position)
        let old = try handle.read(upToCount: 1)![0]
        try handle.seek(toOffset: position)
        try handle.write(contentsOf: [old ^ 0x10])
    }

    @Test func anIntactLogIsScrubbedInBoundedSteps() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Self.filledLog(directory)
        #expect(log.segmentCount == 4)
        let (check, steps) = try Self.scrub(log, maxBytes: 400)
        #expect(check == .intact(nextOffset: 24))
        // About 400 bytes (two batches) a step, never across a segment.
        #expect(steps == 12)
        #expect(try log.verifyStoredBatches(from: 5, upTo: 5, maxBytes: 400) == .intact(nextOffset: 5))
        try await log.close()
    }

    /// A flipped bit in a batch's records or its header is found, named by the batch's
    /// offset, whatever segment holds it; everything below it passed.
    struct Flip: Sendable, CustomStringConvertible {
        var offset: Int64
        /// Into the stored batch: below 64 in its header, else in its records.
        var byte: Int
        var description: String { "offset \(offset) byte \(byte)" }
    }

    @Test(arguments: [Flip(offset: 3, byte: 64 + 40), Flip(offset: 13, byte: 64 + 99), Flip(offset: 20, byte: 30), Flip(offset: 23, byte: 70)])
    func aFlippedBitIsFound(_ flip: Flip) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let log = try Self.filledLog(directory)
        try Self.flipBit(log, directory: directory, offset: flip.offset, byte: flip.byte)
        let (check, _) = try Self.scrub(log, maxBytes: 400)
        guard case .damaged(let offset, let reason) = check else {
            Issue.record("the flipped bit at offset \(flip.offset) was not found: \(check)")
            return
        }
        #expect(offset == flip.offset, "\(reason)")
        // One batch alone is checked too.
        #expect(try log.verifyStoredBatches(from: flip.offset, maxBytes: 1).isDamaged)
        if flip.offset > 0 {
            #expect(try log.verifyStoredBatches(from: flip.offset - 1, maxBytes: 1) == .intact(nextOffset: flip.offset))
        }
        try await log.close()
    }
}

extension StoredBatchCheck {
    var isDamaged: Bool {
        if case .damaged = self { return true }
        return false
    }
}
