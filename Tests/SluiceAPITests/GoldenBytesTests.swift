import NIOCore
import SluiceAPI
import Testing

/// Byte vectors derived by hand from the protobuf encoding rules (key = field number << 3
/// | wire type; varints 7 bits at a time, low first; sint64 zigzag; fixed32 little-endian;
/// proto3 omits fields at their default, except `optional` and oneof fields that are set).
/// The RecordBatch and Record vectors were cross-checked against protobuf's own encoder:
/// `protoc --encode=sluice.v1.RecordBatch sluice/v1/records.proto` on the text form.
@Suite(.timeLimit(.minutes(2))) struct GoldenBytesTests {
    // RecordBatch {
    //   format_version = 1           08 01
    //   base_offset = 5              18 05
    //   record_count = 2             20 02
    //   first_timestamp_ms = 1000    28 e8 07            (1000 = 0b111_1101000)
    //   max_timestamp_ms = 1001      30 e9 07
    //   partition_leader_epoch = -1  38 ff ff ff ff ff ff ff ff ff 01   (int32: sign-extended to 64 bits)
    //   producer_id = 7              40 07
    //   base_sequence = 3            50 03
    //   records_crc32c = 0x01020304  5d 04 03 02 01      (field 11, wire type 5)
    //   records = aa bb              62 02 aa bb         (field 12, wire type 2)
    // }   attributes and producer_epoch are 0 and omitted.
    static let batchBytes: [UInt8] = [
        0x08, 0x01, 0x18, 0x05, 0x20, 0x02, 0x28, 0xE8, 0x07, 0x30, 0xE9, 0x07,
        0x38, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
        0x40, 0x07, 0x50, 0x03, 0x5D, 0x04, 0x03, 0x02, 0x01, 0x62, 0x02, 0xAA, 0xBB,
    ]
    static let batch = RecordBatch(
        formatVersion: 1, baseOffset: 5, recordCount: 2, firstTimestampMs: 1000, maxTimestampMs: 1001,
        partitionLeaderEpoch: -1, producerId: 7, baseSequence: 3, recordsCrc32c: 0x0102_0304,
        records: buffer([0xAA, 0xBB]))

    // Record {
    //   timestamp_delta_ms = -1      08 01               (sint64 zigzag: -1 -> 1)
    //   key = "" (present)           12 00
    //   value = "hi"                 1a 02 68 69
    //   headers { key "k" value 01 } 22 06 0a 01 6b 12 01 01
    // }
    static let recordBytes: [UInt8] = [
        0x08, 0x01, 0x12, 0x00, 0x1A, 0x02, 0x68, 0x69, 0x22, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x01,
    ]
    static let record = Record(
        timestampDeltaMs: -1, key: ByteBuffer(), value: buffer("hi"),
        headers: [RecordHeader(key: "k", value: buffer([0x01]))])

    @Test func recordBatchEncodesToHandDerivedBytes() throws {
        #expect(bytes(Self.batch.protobufBytes()) == Self.batchBytes)
        #expect(try RecordBatch(protobuf: buffer(Self.batchBytes)) == Self.batch)
    }

    @Test func recordEncodesToHandDerivedBytes() throws {
        #expect(bytes(Self.record.protobufBytes()) == Self.recordBytes)
        #expect(try Record(protobuf: buffer(Self.recordBytes)) == Self.record)
    }

    @Test func recordWithoutKeyOmitsField2() throws {
        var keyless = Self.record
        keyless.key = nil
        let expected = [UInt8](Self.recordBytes[0..<2] + Self.recordBytes[4...])
        #expect(bytes(keyless.protobufBytes()) == expected)
        #expect(try Record(protobuf: buffer(expected)).key == nil)
    }

    @Test func recordsWrapsEachRecordAsField1() throws {
        // Records { records = <record> } = 0a 10 <16 record bytes>
        let expected: [UInt8] = [0x0A, 0x10] + Self.recordBytes
        #expect(bytes(Records(records: [Self.record]).protobufBytes()) == expected)
    }

    @Test func unknownFieldsAreSkipped() throws {
        // Field 99 varint 1: key (99 << 3 | 0) = 792 = 98 06; then 01. Field 100 bytes "x".
        let withUnknown = Self.batchBytes + [0x98, 0x06, 0x01, 0xA2, 0x06, 0x01, 0x78]
        #expect(try RecordBatch(protobuf: buffer(withUnknown)) == Self.batch)
    }

    @Test func laterScalarOccurrenceWins() throws {
        // format_version twice: 08 01 then 08 02; the last one counts.
        #expect(try RecordBatch(protobuf: buffer([0x08, 0x01, 0x08, 0x02])).formatVersion == 2)
    }
}
