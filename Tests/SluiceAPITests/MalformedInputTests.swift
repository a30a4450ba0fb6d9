import Foundation
import NIOCore
import SluiceAPI
import SluiceTestSupport
import Testing

@Suite(.timeLimit(.minutes(2))) struct MalformedInputTests {
    static let malformed: [(String, [UInt8])] = [
        ("truncated varint key", [0xFF]),
        ("truncated varint value", [0x08, 0x80]),
        ("length past the end", [0x62, 0x05, 0x01]),
        ("obsolete group wire type", [0x63]),
        ("invalid wire type 7", [0x0F]),
        ("field number 0", [0x00, 0x01]),
        ("fixed32 cut short", [0x5D, 0x01, 0x02]),
        ("wrong wire type for a known field", [0x0A, 0x00]),
        ("length varint longer than 10 bytes", [0x62] + Array(repeating: 0xFF, count: 11)),
    ]

    @Test(arguments: malformed)
    func malformedBatchThrows(_ name: String, _ input: [UInt8]) {
        #expect(throws: ProtobufDecodingError.self, "\(name)") {
            try RecordBatch(protobuf: buffer(input))
        }
    }

    @Test func everyTruncationOfAValidMessageThrows() throws {
        let full = bytes(GoldenBytesTests.batch.protobufBytes())
        // Each cut lands inside a field (all fields are multi-byte here), so every
        // proper prefix except those ending at a field boundary must be rejected.
        let boundaries: Set<Int> = [0, 2, 4, 6, 9, 12, 23, 25, 27, 32, 36]
        for length in 0..<full.count where !boundaries.contains(length) {
            #expect(throws: ProtobufDecodingError.self, "prefix of \(length) bytes") {
                try RecordBatch(protobuf: buffer(Array(full.prefix(length))))
            }
        }
    }

    @Test func nestedGarbageThrows() {
        // ProduceRequest.batch (field 6) holding a truncated RecordBatch.
        #expect(throws: ProtobufDecodingError.self) {
            try ProduceRequest(protobuf: buffer([0x32, 0x02, 0x08, 0x80]))
        }
        // SubscribeResponse.batches (field 2) whose length claims more than is there.
        #expect(throws: ProtobufDecodingError.self) {
            try SubscribeResponse(protobuf: buffer([0x12, 0x03, 0x62, 0x05]))
        }
    }

    @Test func errorNamesTheMessage() {
        do {
            _ = try ProduceRequest(protobuf: buffer([0xFF]))
            Issue.record("expected a decoding error")
        } catch {
            #expect(error.messageName == "sluice.v1.ProduceRequest")
            #expect(error.byteCount == 1)
            #expect(error.description.contains("sluice.v1.ProduceRequest"))
        }
    }

    /// Random bytes, and random mutations of valid encodings, must decode or throw, never
    /// crash; whatever decodes must survive its own round trip. Bounded by default; set
    /// SLUICE_FUZZ_COUNT for a longer run (the seed is fixed, so a failure reproduces).
    @Test func randomAndMutatedBytesNeverCrash() throws {
        let count = Int(Environment.value("SLUICE_FUZZ_COUNT") ?? "") ?? 2_000
        var generator = SplitMix64(seed: 0x5EED)
        let seeds: [[UInt8]] = [
            bytes(SubscribeResponse(partition: 1, batches: [GoldenBytesTests.batch, GoldenBytesTests.batch],
                                    highWatermark: 9).protobufBytes()),
            bytes(ServerReflectionResponse(
                validHost: "h", originalRequest: .init(messageRequest: .fileContainingSymbol("x")),
                messageResponse: .listServicesResponse(.init(service: [.init(name: "a")]))).protobufBytes()),
            bytes(TopicDescription(name: "t", configs: ["a": "b"],
                                   partitions: [PartitionDescription(replicas: [1, 2])]).protobufBytes()),
            bytes(Records(records: [GoldenBytesTests.record, GoldenBytesTests.record]).protobufBytes()),
        ]
        var decodedCount = 0
        for iteration in 0..<count {
            var input: [UInt8]
            if iteration % 2 == 0 {
                input = (0..<Int(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            } else {
                input = seeds[Int(generator.next() % UInt64(seeds.count))]
                for _ in 0...Int(generator.next() % 3) where !input.isEmpty {
                    let position = Int(generator.next() % UInt64(input.count))
                    switch generator.next() % 3 {
                    case 0: input[position] = UInt8(truncatingIfNeeded: generator.next())
                    case 1: input.removeSubrange(position...)
                    default: input.insert(UInt8(truncatingIfNeeded: generator.next()), at: position)
                    }
                }
            }
            decodedCount += try survivesRoundTrip(SubscribeResponse.self, input)
            decodedCount += try survivesRoundTrip(ServerReflectionResponse.self, input)
            decodedCount += try survivesRoundTrip(TopicDescription.self, input)
            decodedCount += try survivesRoundTrip(Records.self, input)
        }
        // Some inputs decode (the empty one always does), most random ones do not.
        #expect(decodedCount > 0 && decodedCount < 4 * count)
    }

    private func survivesRoundTrip<Message: ProtobufMessage>(_: Message.Type, _ input: [UInt8]) throws -> Int {
        guard let decoded = try? Message(protobuf: buffer(input)) else { return 0 }
        #expect(try Message(protobuf: decoded.protobufBytes()) == decoded)
        return 1
    }
}


enum Environment {
    static func value(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name]
    }
}
