import NIOCore
import SluiceStorage
import SluiceTestSupport
import Testing

/// A damaged batch header in a sealed segment, after a clean shutdown (so nothing was
/// verified at open), is never served: reads stop before it and a read that reaches it
/// fails with `corruptSegment` naming the segment file, its byte and the offset.
@Suite struct DamagedHeaderReadTests {
    /// Six batches of two records, 40 payload bytes each (104 bytes stored): the first
    /// segment holds four (offsets 0, 2, 4, 6) and is sealed, the rest are in the next.
    private static let stored = BatchHeader.size + 40
    private static let config = smallConfig(segmentBytes: 500, indexIntervalBytes: 256)
    private static let segmentName = "00000000000000000000.log"

    /// The log's directory after a clean close, as file name -> bytes.
    private func cleanLog(_ path: String) async throws -> [String: [UInt8]] {
        let log = try PartitionLog.open(directory: path, config: Self.config)
        for index in 0..<6 {
            _ = try await log.append(makeBatch(pattern(index, 40), count: 2, firstTimestamp: 1000 + Int64(index)), leaderEpoch: 0)
        }
        #expect(log.segmentCount == 2)
        try await log.close()
        var files: [String: [UInt8]] = [:]
        for name in try PosixFileSystem().listDirectory(path) { files[name] = try readWholeFile(path + "/" + name) }
        return files
    }

    private func restore(_ files: [String: [UInt8]], to path: String) throws {
        for (name, bytes) in files { try writeWholeFile(path + "/" + name, bytes) }
    }

    /// Reading from 0 serves batch 0 unchanged and nothing else; reading on fails at the
    /// damaged batch 1 (offsets 2-3, byte 104), also from inside it and from behind it
    /// when the index sends the scan through it.
    private func expectDamageReported(_ path: String, pristine: [UInt8], _ what: String) async throws {
        let log = try PartitionLog.open(directory: path, config: Self.config)
        let first = try log.read(from: 0, maxBytes: 1 << 20)
        let served = Array(StoredBatches(first.batches))
        #expect(served.count == 1, "\(what): \(served.map(\.header.baseOffset))")
        #expect(Array(buffer: first.batches) == Array(pristine[0..<Self.stored]), "\(what): batch 0 is served as written")
        for offset: Int64 in [2, 3, 4] {
            #expect("\(what), read from \(offset)") {
                _ = try log.read(from: offset, maxBytes: 1 << 20)
            } throws: { error in
                guard case LogError.corruptSegment(let file, let position, let reason) = error else { return false }
                return file.hasSuffix("/" + Self.segmentName) && position == Int64(Self.stored)
                    && reason.contains("offset 2")
            }
        }
        try await log.close()
    }

    @Test func everyBitOfASealedBatchHeaderIsChecked() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/log"
        let files = try await cleanLog(path)
        let pristine = files[Self.segmentName]!
        for byte in 0..<BatchHeader.size {
            for bit in 0..<8 {
                var damaged = files
                damaged[Self.segmentName]![Self.stored + byte] ^= UInt8(1 << bit)
                try restore(damaged, to: path)
                try await expectDamageReported(path, pristine: pristine, "bit \(bit) of header byte \(byte)")
            }
        }
    }

    /// A header that passes its CRC but does not carry the offset its place implies (one
    /// copied from elsewhere, or a corruption the CRC misses) is refused all the same.
    @Test func aHeaderWithTheWrongBaseOffsetIsRefusedEvenWithAGoodCRC() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/log"
        let files = try await cleanLog(path)
        let pristine = files[Self.segmentName]!
        var damaged = files
        var header = pristine[Self.stored..<(2 * Self.stored)].withUnsafeBytes { BatchHeader.decode($0)! }
        header.baseOffset = 3
        header.headerCRC = header.computeHeaderCRC()
        damaged[Self.segmentName]!.withUnsafeMutableBytes { raw in
            header.encode(into: UnsafeMutableRawBufferPointer(rebasing: raw[Self.stored..<(Self.stored + BatchHeader.size)]))
        }
        try restore(damaged, to: path)
        try await expectDamageReported(path, pristine: pristine, "base offset 3 with a good CRC")
    }

    /// The offset index is derived data without a checksum: an entry that points at the
    /// wrong batch costs a scan from the segment's start, not a failed read (the header
    /// check would otherwise refuse the batch it finds there).
    @Test func aWrongIndexEntryCostsAScanNotARead() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/log"
        var files = try await cleanLog(path)
        // One entry, for batch 3 (offset 6 at byte 312): point it at batch 2's byte 208.
        let index = "00000000000000000000.index"
        #expect(files[index] == [0, 0, 0, 6, 0, 0, 1, 56])
        files[index] = [0, 0, 0, 6, 0, 0, 0, 208]
        try restore(files, to: path)
        let log = try PartitionLog.open(directory: path, config: Self.config)
        for offset: Int64 in 0..<12 {
            let served = Array(StoredBatches(try log.read(from: offset, maxBytes: 1).batches))
            #expect(served.map(\.header.baseOffset) == [offset & ~1], "from \(offset)")
        }
        #expect(try log.offset(forTimestamp: 1003) == 6)
        try await log.close()
    }

    /// Undamaged, the same reads serve everything (the checks refuse nothing whole).
    @Test func anUndamagedLogIsServedWhole() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path + "/log"
        _ = try await cleanLog(path)
        let log = try PartitionLog.open(directory: path, config: Self.config)
        #expect(try readAllBatches(log, maxBytes: 1).map(\.header.baseOffset) == [0, 2, 4, 6, 8, 10])
        #expect(try readAllBatches(log, maxBytes: 1 << 20).map(\.header.baseOffset) == [0, 2, 4, 6, 8, 10])
        for offset: Int64 in 0..<12 {
            let served = Array(StoredBatches(try log.read(from: offset, maxBytes: 1).batches))
            #expect(served.map(\.header.baseOffset) == [offset & ~1])
        }
        try await log.close()
    }
}
