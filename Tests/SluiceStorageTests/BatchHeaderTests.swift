import NIOCore
import SluiceChecksum
@testable import SluiceStorage
import Testing

@Suite(.timeLimit(.minutes(2))) struct BatchHeaderTests {
    static func sample() -> BatchHeader {
        BatchHeader(
            attributes: 0x0012, recordsLength: 5, recordCount: 3, baseOffset: 0x0102_0304_0506_0708,
            firstTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_123, producerId: 42,
            leaderEpoch: 7, baseSequence: 9, producerEpoch: 2, recordsCRC: CRC32C.checksum(Array("hello".utf8)))
    }

    @Test func layoutIsSixtyFourBytesBigEndian() {
        #expect(BatchHeader.size == 64)
        var header = Self.sample()
        header.headerCRC = header.computeHeaderCRC()
        var bytes = [UInt8](repeating: 0xEE, count: 64)
        bytes.withUnsafeMutableBytes { header.encode(into: $0) }
        #expect(bytes[0] == 1)
        #expect(bytes[1] == 0)
        #expect(Array(bytes[2..<4]) == [0x00, 0x12])
        #expect(Array(bytes[8..<12]) == [0, 0, 0, 5])
        #expect(Array(bytes[12..<16]) == [0, 0, 0, 3])
        #expect(Array(bytes[16..<24]) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Array(bytes[48..<52]) == [0, 0, 0, 7])
        #expect(Array(bytes[58..<60]) == [0, 0])
        // The header CRC covers bytes 0..<4 and 8..<64.
        let expected = CRC32C.checksum(bytes[8..<64], seed: CRC32C.checksum(bytes[0..<4]))
        #expect(header.headerCRC == expected)
        let decoded = bytes.withUnsafeBytes { BatchHeader.decode($0) }
        #expect(decoded == header)
        #expect(bytes.withUnsafeBytes { BatchHeader.defect(ofEncoded: $0, maxRecordsLength: 1 << 20) } == nil)
    }

    @Test func everyFlippedHeaderByteIsCaught() {
        var header = Self.sample()
        header.headerCRC = header.computeHeaderCRC()
        var bytes = [UInt8](repeating: 0, count: 64)
        bytes.withUnsafeMutableBytes { header.encode(into: $0) }
        for index in 0..<64 {
            for bit in 0..<8 {
                var damaged = bytes
                damaged[index] ^= UInt8(1 << bit)
                let defect = damaged.withUnsafeBytes { BatchHeader.defect(ofEncoded: $0, maxRecordsLength: 1 << 20) }
                #expect(defect != nil, "byte \(index) bit \(bit)")
            }
        }
    }

    @Test func storedBatchViewsHeaderAndRecords() {
        var header = Self.sample()
        header.headerCRC = header.computeHeaderCRC()
        var buffer = ByteBuffer()
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 64) { raw in
            header.encode(into: raw)
            return 64
        }
        buffer.writeString("hello")
        let copy = buffer
        buffer.writeImmutableBuffer(copy)
        let batches = Array(StoredBatches(buffer))
        #expect(batches.count == 2)
        #expect(batches[0].header == header)
        #expect(batches[0].records == ByteBuffer(string: "hello"))
        #expect(batches[0].bytes == copy)
        #expect(batches[0].defect() == nil)
        var broken = copy
        broken.setInteger(UInt8(ascii: "j"), at: 64)
        #expect(StoredBatch(parsing: broken)?.defect() == .recordsChecksumMismatch)
        #expect(StoredBatch(parsing: copy.getSlice(at: 0, length: 68)!) == nil)
    }
}
