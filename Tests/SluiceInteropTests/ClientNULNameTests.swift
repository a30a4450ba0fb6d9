import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceWire
import SluiceTestSupport
import Testing

/// protobuf-c measures strings with strlen, so a Swift caller's "orders\0-staging" would go
/// on the wire as "orders". The client refuses such strings before sending; the broker
/// refuses them on decoding too, but a cut string arrives whole-looking and cannot be.
@Suite("The Swift client refuses names with a NUL byte", .serialized, .timeLimit(.minutes(2)))
struct ClientNULNameTests {
    @Test("admin calls, the producer's topic and header keys: INVALID_ARGUMENT, and the cut-off name is untouched")
    func nulNamesNeverReachTheBroker() async throws {
        try await withBroker { broker in
            let admin = try await broker.admin()
            _ = try await admin.createTopic(CreateTopicRequest(name: "orders", partitions: 1))

            await expectInvalidArgument { try await admin.deleteTopic(named: "orders\0-staging") }
            await expectInvalidArgument { _ = try await admin.createTopic(CreateTopicRequest(name: "bc5nul\0tail", partitions: 1)) }
            #expect(try await admin.describeTopic(named: "orders").name == "orders", "orders survives")
            await #expect(throws: GRPCStatus.self) { _ = try await admin.describeTopic(named: "bc5nul") }

            let producer = Producer(address: broker.address)
            await #expect(throws: (any Error).self) {
                _ = try await producer.send(topic: "orders\0evil", value: ByteBuffer(string: "x"))
            }
            await #expect(throws: ProducerError.self) {
                _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "x"),
                                            headers: [RecordHeader(key: "trace\0id", value: ByteBuffer(string: "1"))])
            }
            let placed = try await producer.send(topic: "orders", value: ByteBuffer(string: "kept"))
            #expect(placed.offset == 0, "nothing was appended to orders before this record")
            await producer.close()
            await admin.connection.close()
        }
    }

    func expectInvalidArgument(_ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("expected INVALID_ARGUMENT, the call succeeded")
        } catch let status as GRPCStatus {
            #expect(status.code == .invalidArgument, "\(status)")
            #expect(status.message.contains("NUL"), "\(status)")
        } catch {
            Issue.record("expected a GRPCStatus, got \(error)")
        }
    }
}
