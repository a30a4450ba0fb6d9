import Glibc
import NIOCore
import SluiceChecksum
import SluiceStorage
import SluiceTestSupport
import Testing

@Suite(.timeLimit(.minutes(2))) struct CRC32CTests {
    static let vectors: [(String, UInt32)] = [
        ("", 0),
        ("a", 0xC1D0_4330),
        ("abc", 0x364B_3FB7),
        ("123456789", 0xE306_9283),
        ("The quick brown fox jumps over the lazy dog", 0x2262_0404),
    ]

    @Test func knownVectorsOnBothPaths() {
        for (text, expected) in Self.vectors {
            let bytes = Array(text.utf8)
            #expect(CRC32C.checksum(bytes) == expected, "\(text)")
            bytes.withUnsafeBytes { raw in
                #expect(CRC32C.softwareChecksum(raw) == expected, "\(text)")
            }
        }
    }

    @Test func rfc3720Vectors() {
        // iSCSI (RFC 3720 B.4): 32 zero bytes, 32 0xFF bytes, 0..31 ascending.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    }

    @Test func chainingEqualsWholeAndPathsAgreeAtEveryAlignment() {
        var generator = SplitMix64(seed: 7)
        let bytes = (0..<1000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let whole = CRC32C.checksum(bytes)
        for split in [0, 1, 3, 7, 8, 9, 500, 999, 1000] {
            let front = CRC32C.checksum(bytes[..<split])
            #expect(CRC32C.checksum(bytes[split...], seed: front) == whole)
        }
        bytes.withUnsafeBytes { raw in
            for start in 0..<16 {
                for length in [0, 1, 7, 8, 15, 63, 200] {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    #expect(CRC32C.checksum(slice) == CRC32C.softwareChecksum(slice))
                }
            }
        }
    }

    @Test func usesTheInstructionWhenTheCPUHasIt() throws {
        guard let file = fopen("/proc/cpuinfo", "r") else { return }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 4096)
        var hasSSE42 = false
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("flags") && text.contains(" sse4_2") { hasSSE42 = true }
        }
        #expect(CRC32C.usesHardware == hasSSE42)
    }

    /// Lengths around the three-chain blocks of the instruction path (3 x 256 and
    /// 3 x 8192 bytes), at several alignments, against the independent software loop.
    @Test func longInputsAgreeWithSoftware() {
        var generator = SplitMix64(seed: 99)
        let bytes = (0..<(1 << 20) + 64).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let lengths = [767, 768, 769, 1536, 24_575, 24_576, 24_577, 24_576 + 768 + 13, 100_000, 1 << 20]
        bytes.withUnsafeBytes { raw in
            for start in [0, 1, 5, 8] {
                for length in lengths {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    #expect(CRC32C.checksum(slice) == CRC32C.softwareChecksum(slice), "start \(start) length \(length)")
                    #expect(CRC32C.checksum(slice, seed: 0xDEAD_BEEF) == CRC32C.softwareChecksum(slice, seed: 0xDEAD_BEEF))
                }
            }
        }
    }

    @Test func byteBufferConvenienceLeavesReaderIndex() {
        var buffer = ByteBuffer(string: "xx123456789")
        buffer.moveReaderIndex(forwardBy: 2)
        #expect(CRC32C.checksum(buffer) == 0xE306_9283)
        #expect(buffer.readerIndex == 2)
    }
}

