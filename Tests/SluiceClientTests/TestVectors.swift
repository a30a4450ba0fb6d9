import Foundation
import NIOCore

/// docs/test-vectors.json, read from the repository (this file's path locates it).
struct TestVectors: Decodable {
    struct Key: Decodable {
        var note: String
        var key_hex: String
        var murmur2: Int32
        var murmur2_hex: String
        var partitions: [String: Int]
    }

    struct VectorRecord: Decodable {
        var timestamp_delta_ms: Int64
        var key_hex: String?
        var value_hex: String
        var headers: [Header]
    }

    struct Header: Decodable {
        var key: String
        var value_hex: String
    }

    struct Batch: Decodable {
        var note: String
        var records: [VectorRecord]
        var records_bytes_hex: String
        var records_crc32c: UInt32
    }

    struct Check: Decodable {
        var input_ascii: String
        var crc32c: UInt32
    }

    struct CRCSection: Decodable {
        var check: Check
    }

    var keys: [Key]
    var batches: [Batch]
    var crc32c: CRCSection

    static func load() throws -> TestVectors {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let data = try Data(contentsOf: repository.appendingPathComponent("docs/test-vectors.json"))
        return try JSONDecoder().decode(TestVectors.self, from: data)
    }
}

enum Hex {
    static func bytes(_ text: String) -> [UInt8] {
        var result: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            result.append(UInt8(text[index..<next], radix: 16) ?? 0)
            index = next
        }
        return result
    }

    static func buffer(_ text: String) -> ByteBuffer {
        ByteBuffer(bytes: bytes(text))
    }

    static func string(_ buffer: ByteBuffer) -> String {
        buffer.readableBytesView.map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
    }
}
