import NIOCore
import SluiceStorage
import Testing

@Suite struct CRC32CTests {
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

    @Test func byteBufferConvenienceLeavesReaderIndex() {
        var buffer = ByteBuffer(string: "xx123456789")
        buffer.moveReaderIndex(forwardBy: 2)
        #expect(CRC32C.checksum(buffer) == 0xE306_9283)
        #expect(buffer.readerIndex == 2)
    }
}

/// A small deterministic generator so failing cases replay.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
