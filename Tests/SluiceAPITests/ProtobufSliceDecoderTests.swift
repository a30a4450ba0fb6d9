import Foundation
import NIOCore
import SluiceTestSupport
import Testing
@testable import SluiceAPI

/// The slicing decoder (`ProtobufSliceDecoder`) must agree with protobuf-c on every input:
/// decode to the same value, or decline (nil) so protobuf-c decides. Random messages and
/// seeded corruptions of them; SLUICE_SOAK=1 runs 100x more.
@Suite(.timeLimit(.minutes(2))) struct ProtobufSliceDecoderTests {
    static let rounds = ProcessInfo.processInfo.environment["SLUICE_SOAK"] == "1" ? 50_000 : 500

    static func batch(_ random: inout SplitMix64) -> RecordBatch {
        // Extremes as well as small values, so varints of every length appear.
        func pick<T: FixedWidthInteger>(_: T.Type) -> T {
            switch random.next() % 4 {
            case 0: return 0
            case 1: return T.max
            case 2: return T.min
            default: return T(truncatingIfNeeded: random.next() >> (random.next() % 64))
            }
        }
        let records = ByteBuffer(bytes: (0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        return RecordBatch(
            formatVersion: pick(UInt32.self), attributes: pick(UInt32.self), baseOffset: pick(Int64.self),
            recordCount: pick(UInt32.self), firstTimestampMs: pick(Int64.self), maxTimestampMs: pick(Int64.self),
            partitionLeaderEpoch: pick(Int32.self), producerId: pick(Int64.self), producerEpoch: pick(Int32.self),
            baseSequence: pick(Int32.self), recordsCrc32c: pick(UInt32.self), records: records)
    }

    static func produceRequest(_ random: inout SplitMix64) -> ProduceRequest {
        let acks: [Acks] = [.unspecified, .none, .leader, .durable, .all, .unrecognized(77), .unrecognized(-3)]
        return ProduceRequest(
            correlationId: random.next(), topic: ["", "orders", "tëst", "a/b"][Int(random.next() % 4)],
            partition: UInt32(truncatingIfNeeded: random.next()), acks: acks[Int(random.next() % 7)],
            timeoutMs: UInt32(truncatingIfNeeded: random.next() >> 20),
            batch: random.next() % 5 == 0 ? nil : batch(&random))
    }

    static func bytes(_ random: inout SplitMix64, upTo count: UInt64) -> ByteBuffer {
        ByteBuffer(bytes: (0..<Int(random.next() % count)).map { _ in UInt8(truncatingIfNeeded: random.next()) })
    }

    static func records(_ random: inout SplitMix64) -> Records {
        Records(records: (0..<Int(random.next() % 5)).map { _ in
            Record(
                timestampDeltaMs: [0, 1, -1, .max, .min, Int64(bitPattern: random.next() >> 9)][Int(random.next() % 6)],
                // nil, present and empty, present with bytes: three different encodings.
                key: [nil, ByteBuffer(), bytes(&random, upTo: 40)][Int(random.next() % 3)],
                value: bytes(&random, upTo: 200),
                headers: (0..<Int(random.next() % 3)).map { _ in
                    RecordHeader(key: ["", "trace", "ключ"][Int(random.next() % 3)], value: bytes(&random, upTo: 20))
                })
        })
    }

    static func subscribeResponse(_ random: inout SplitMix64) -> SubscribeResponse {
        SubscribeResponse(
            partition: UInt32(truncatingIfNeeded: random.next()), batches: (0..<Int(random.next() % 4)).map { _ in batch(&random) },
            highWatermark: Int64(bitPattern: random.next()), logStartOffset: Int64(bitPattern: random.next() >> 3))
    }

    /// Flips, inserts or deletes a few bytes.
    static func corrupt(_ bytes: ByteBuffer, _ random: inout SplitMix64) -> ByteBuffer {
        var array = Array(bytes.readableBytesView)
        for _ in 0..<(1 + random.next() % 3) {
            let index = array.isEmpty ? 0 : Int(random.next() % UInt64(array.count))
            switch random.next() % 3 {
            case 0 where !array.isEmpty: array[index] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            case 1: array.insert(UInt8(truncatingIfNeeded: random.next()), at: index)
            default: if !array.isEmpty { array.remove(at: index) }
            }
        }
        return ByteBuffer(bytes: array)
    }

    /// Same value as protobuf-c, or declined; never accepted where protobuf-c refuses.
    static func expectAgreement<M: ProtobufCConvertible>(_ bytes: ByteBuffer, _: M.Type, mustAccept: Bool) {
        let sliced = M.decodeSlicing(bytes)
        let reference = try? ProtobufCCodec.decodeWithProtobufC(bytes, as: M.self)
        if let sliced {
            #expect(sliced == reference, "\(M.self) from \(Array(bytes.readableBytesView.prefix(64)))")
        }
        if mustAccept { #expect(sliced != nil, "canonical \(M.self) declined") }
    }

    @Test func canonicalMessagesDecodeAsProtobufCDoes() {
        var random = SplitMix64(seed: 7)
        for _ in 0..<Self.rounds {
            Self.expectAgreement(Self.produceRequest(&random).protobufBytes(), ProduceRequest.self, mustAccept: true)
            Self.expectAgreement(Self.subscribeResponse(&random).protobufBytes(), SubscribeResponse.self, mustAccept: true)
            Self.expectAgreement(Self.batch(&random).protobufBytes(), RecordBatch.self, mustAccept: true)
            Self.expectAgreement(Self.records(&random).protobufBytes(), Records.self, mustAccept: true)
        }
    }

    @Test func corruptedMessagesNeverDecodeDifferently() {
        var random = SplitMix64(seed: 11)
        for _ in 0..<Self.rounds {
            let request = Self.corrupt(Self.produceRequest(&random).protobufBytes(), &random)
            Self.expectAgreement(request, ProduceRequest.self, mustAccept: false)
            let response = Self.corrupt(Self.subscribeResponse(&random).protobufBytes(), &random)
            Self.expectAgreement(response, SubscribeResponse.self, mustAccept: false)
            let records = Self.corrupt(Self.records(&random).protobufBytes(), &random)
            Self.expectAgreement(records, Records.self, mustAccept: false)
        }
    }

    @Test func aProducersBatchOfRecordsDecodesBySlicing() throws {
        // What the Swift producer sends: 1 KiB values, no key, timestamps a few ms apart.
        let records = Records(records: (0..<500).map {
            Record(timestampDeltaMs: Int64($0 / 7), value: ByteBuffer(repeating: 0x5A, count: 1024))
        })
        let bytes = records.protobufBytes()
        let sliced = try #require(Records.decodeSlicing(bytes))
        #expect(sliced == records)
        #expect(try Records(protobuf: bytes) == records)
    }

    @Test func recordsAreSlicesOfTheInputAndIrregularInputIsDeclined() throws {
        let batch = RecordBatch(formatVersion: 1, recordCount: 1, records: ByteBuffer(repeating: 0xAB, count: 4096))
        let bytes = ProduceRequest(correlationId: 1, topic: "t", batch: batch).protobufBytes()
        let decoded = try ProduceRequest(protobuf: bytes)
        #expect(decoded.batch == batch)
        // Same storage: the 4 KiB were not copied.
        let sameStorage = bytes.withUnsafeReadableBytes { input in
            decoded.batch?.records.withUnsafeReadableBytes { records in
                guard let start = records.baseAddress, let base = input.baseAddress else { return false }
                return start >= base && start + records.count <= base + input.count
            } ?? false
        }
        #expect(sameStorage)
        // Unknown field 15 (varint), a repeated singular field, a NUL in the topic: protobuf-c's job.
        #expect(ProduceRequest.decodeSlicing(ByteBuffer(bytes: [0x78, 0x01])) == nil)
        #expect(ProduceRequest.decodeSlicing(ByteBuffer(bytes: [0x08, 0x01, 0x08, 0x02])) == nil)
        #expect(ProduceRequest.decodeSlicing(ByteBuffer(bytes: [0x12, 0x02, 0x61, 0x00])) == nil)
        #expect(try ProduceRequest(protobuf: ByteBuffer(bytes: [0x08, 0x01, 0x08, 0x02])).correlationId == 2)
    }
}
