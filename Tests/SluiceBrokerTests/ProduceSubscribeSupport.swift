import NIOCore
import SluiceAPI
import SluiceChecksum
import SluiceStorage
import SluiceWire
import Testing

/// Batches as a producer builds them: a serialized `Records` message and its CRC32C.
enum TestBatches {
    /// A batch of `values.count` records (no keys), values as UTF-8.
    static func batch(_ values: [String], firstTimestampMs: Int64 = 1_700_000_000_000, spacingMs: Int64 = 1) -> RecordBatch {
        let records = Records(records: values.enumerated().map { index, value in
            Record(timestampDeltaMs: Int64(index) * spacingMs, value: ByteBuffer(string: value))
        })
        let bytes = records.protobufBytes()
        return RecordBatch(
            formatVersion: 1, recordCount: UInt32(values.count), firstTimestampMs: firstTimestampMs,
            maxTimestampMs: firstTimestampMs + Int64(max(values.count - 1, 0)) * spacingMs,
            recordsCrc32c: CRC32C.checksum(bytes), records: bytes)
    }

    /// The record values of a subscribed batch.
    static func values(_ batch: RecordBatch) throws -> [String] {
        try Records(protobuf: batch.records).records.map { String(buffer: $0.value) }
    }
}

/// A Produce stream opened with SluiceWire's client.
struct ProduceStream {
    let call: GRPCClientCall
    private var responses: GRPCResponseStream.AsyncIterator

    init(_ connection: GRPCClientConnection) async throws {
        call = try await connection.makeCall(path: "/sluice.v1.Broker/Produce")
        responses = call.responses.makeAsyncIterator()
    }

    func send(_ request: ProduceRequest) async throws {
        try await call.send(request.protobufBytes())
    }

    mutating func next() async throws -> ProduceResponse? {
        guard let bytes = try await responses.next() else { return nil }
        return try ProduceResponse(protobuf: bytes)
    }

    /// Sends one request and returns its answer.
    mutating func produce(
        _ topic: String, partition: UInt32 = 0, acks: Acks = .durable, correlationID: UInt64 = 0, _ batch: RecordBatch?
    ) async throws -> ProduceResponse {
        try await send(ProduceRequest(correlationId: correlationID, topic: topic, partition: partition, acks: acks, batch: batch))
        guard let response = try await next() else { throw TestFailure("the produce stream ended without an answer") }
        return response
    }

    func close() async throws {
        try await call.finishSending()
    }
}

/// A Subscribe stream opened with SluiceWire's client.
struct SubscribeStream {
    let call: GRPCClientCall
    private var responses: GRPCResponseStream.AsyncIterator

    init(_ connection: GRPCClientConnection, _ request: SubscribeRequest) async throws {
        call = try await connection.makeCall(path: "/sluice.v1.Broker/Subscribe")
        try await call.send(request.protobufBytes())
        try await call.finishSending()
        responses = call.responses.makeAsyncIterator()
    }

    mutating func next() async throws -> SubscribeResponse? {
        guard let bytes = try await responses.next() else { return nil }
        return try SubscribeResponse(protobuf: bytes)
    }

    /// Reads responses until `count` records of `partition` arrived (any partition if nil).
    mutating func records(_ count: Int, partition: UInt32? = nil) async throws -> [(offset: Int64, value: String)] {
        var collected: [(offset: Int64, value: String)] = []
        while collected.count < count {
            guard let response = try await next() else { throw TestFailure("the subscription ended after \(collected.count) records") }
            if let partition, response.partition != partition { continue }
            for batch in response.batches {
                for (index, value) in try TestBatches.values(batch).enumerated() {
                    collected.append((batch.baseOffset + Int64(index), value))
                }
            }
        }
        return collected
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension StartPosition {
    static var earliest: StartPosition { StartPosition(position: .earliest(true)) }
    static var latest: StartPosition { StartPosition(position: .latest(true)) }
    static func offset(_ offset: Int64) -> StartPosition { StartPosition(position: .offset(offset)) }
    static func timestamp(_ ms: Int64) -> StartPosition { StartPosition(position: .timestampMs(ms)) }
}

/// Produces `values` as one batch to `partition` of `topic` on a stream of its own and
/// expects it accepted.
func produce(_ broker: InProcessBroker, _ topic: String, partition: UInt32, _ values: [String]) async throws {
    var stream = try await ProduceStream(broker.connection)
    let answer = try await stream.produce(topic, partition: partition, TestBatches.batch(values))
    #expect(answer.error == ErrorCode.none, "\(answer.errorMessage)")
    try await stream.close()
}
