import Foundation
import NIOCore
import SluiceStorage
import SluiceTestSupport
import Testing

/// The checker on synthetic histories: each kind of failure it reports is made once and
/// found, and an allowed one (present but never acknowledged) is not counted as a failure.
@Suite("the fault checker on synthetic histories")
struct FaultCheckerTests {
    /// Key "a" at sequences 0..<4 acknowledged at offsets 0..<4 of partition 0, and "b"'s
    /// sequence 0 sent and never acknowledged.
    let produced = (0..<4).map { ProducedRecord(key: "a", sequence: $0, partition: 0, ackedOffset: Int64($0)) }
        + [ProducedRecord(key: "b", sequence: 0, partition: 0, ackedOffset: nil)]

    func read(_ sequences: [(key: String, sequence: Int)]) -> [ReadRecord] {
        sequences.enumerated().map { ReadRecord(partition: 0, offset: Int64($0.offset), key: $0.element.key, sequence: $0.element.sequence) }
    }

    @Test("everything acknowledged read once, in order, where acknowledged: passed; an unacknowledged record present is allowed")
    func clean() {
        let report = FaultChecker.check(fault: "clean", produced: produced, read: read([("a", 0), ("a", 1), ("a", 2), ("a", 3), ("b", 0)]))
        #expect(report.passed, "\(report)")
        #expect(report.acked == 4 && report.sent == 5 && report.unackedPresent == 1)
    }

    @Test("an acknowledged record missing is lost")
    func lost() {
        let report = FaultChecker.check(fault: "lost", produced: produced, read: read([("a", 0), ("a", 1), ("a", 2)]))
        #expect(!report.passed)
        #expect(report.lost.map(\.sequence) == [3], "\(report)")
    }

    @Test("a record read twice is duplicated; one read after a later sequence of its key is reordered")
    func duplicatedAndReordered() {
        let twice = FaultChecker.check(fault: "twice", produced: produced, read: read([("a", 0), ("a", 1), ("a", 1), ("a", 2), ("a", 3)]))
        #expect(twice.duplicated.map(\.offset) == [2] && twice.reordered.isEmpty, "\(twice)")
        let swapped = FaultChecker.check(fault: "swapped", produced: produced, read: read([("a", 0), ("a", 2), ("a", 1), ("a", 3)]))
        #expect(swapped.reordered.map(\.sequence) == [1] && swapped.duplicated.isEmpty, "\(swapped)")
        // Both moved from their acknowledged offsets.
        #expect(swapped.misplaced.map(\.acked.sequence) == [1, 2] && swapped.misplaced.map { $0.read.map(\.offset) } == [[2], [1]], "\(swapped)")
        #expect(!twice.passed && !swapped.passed)
    }

    @Test("a record nobody sent is foreign")
    func foreign() {
        let report = FaultChecker.check(fault: "foreign", produced: produced, read: read([("a", 0), ("a", 1), ("a", 2), ("a", 3), ("z", 9)]))
        #expect(report.foreign == 1 && !report.passed)
    }

    @Test("values carry key and sequence")
    func values() {
        let value = FaultRecordValue.encode(key: "k/7", sequence: 12)
        #expect(FaultRecordValue.decode(value)?.key == "k/7" && FaultRecordValue.decode(value)?.sequence == 12)
        #expect(FaultRecordValue.decode(ByteBuffer(string: "nothing")) == nil)
    }

    @Test("replica copies: equal below the high watermark pass; a flipped byte, a short copy and a divergent tail below it are reported")
    func replicaCopies() throws {
        let directory = TemporaryDirectory("sluice-fault-copies")
        defer { directory.remove() }
        let batches = (0..<4).map { storedBatch(baseOffset: Int64($0) * 2, epoch: 0, fill: UInt8($0)) }
        func write(_ name: String, _ parts: [ByteBuffer]) throws -> String {
            let path = directory.path(name)
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            var all = ByteBuffer()
            for var part in parts { all.writeBuffer(&part) }
            try Data(all.readableBytesView).write(to: URL(fileURLWithPath: path + "/00000000000000000000.log"))
            return path
        }
        let leader = try write("1", batches)
        // Same below offset 6; a different (unacknowledged, above the watermark) tail.
        let follower = try write("2", Array(batches.prefix(3)) + [storedBatch(baseOffset: 6, epoch: 1, fill: 9)])
        #expect(ReplicaCopies.compare(partition: "t/0", copies: ["1": leader, "2": follower], highWatermark: 6).isEmpty)
        // Below the watermark the tails differ.
        #expect(ReplicaCopies.compare(partition: "t/0", copies: ["1": leader, "2": follower], highWatermark: 8).count == 1)
        let short = try write("3", Array(batches.prefix(2)))
        #expect(ReplicaCopies.compare(partition: "t/0", copies: ["1": leader, "3": short], highWatermark: 6).count == 1)
        var flipped = batches[1]
        flipped.setInteger(flipped.getInteger(at: BatchHeader.size, as: UInt8.self)! ^ 0x10, at: BatchHeader.size)
        let damaged = try write("4", [batches[0], flipped, batches[2], batches[3]])
        let problems = ReplicaCopies.compare(partition: "t/0", copies: ["1": leader, "4": damaged], highWatermark: 6)
        #expect(problems.count == 1 && problems[0].contains("offset 2"), "\(problems)")
    }

    /// A stored batch of two records' worth of `fill` bytes (the walk reads the header only).
    func storedBatch(baseOffset: Int64, epoch: Int32, fill: UInt8) -> ByteBuffer {
        // BatchHeader has no public memberwise init: the fields are written where the
        // layout puts them, then decoded, sealed with their CRC and encoded back.
        var buffer = ByteBuffer(repeating: 0, count: BatchHeader.size)
        buffer.setInteger(BatchHeader.currentFormatVersion, at: BatchHeader.formatVersionOffset)
        buffer.setInteger(UInt32(16), at: BatchHeader.recordsLengthOffset)
        buffer.setInteger(Int32(2), at: BatchHeader.recordCountOffset)
        buffer.setInteger(baseOffset, at: BatchHeader.baseOffsetOffset)
        buffer.setInteger(epoch, at: BatchHeader.leaderEpochOffset)
        var header = BatchHeader.decode(buffer, at: 0)!
        header.headerCRC = header.computeHeaderCRC()
        buffer.withUnsafeMutableReadableBytes { header.encode(into: $0) }
        buffer.writeRepeatingByte(fill, count: 16)
        return buffer
    }
}
