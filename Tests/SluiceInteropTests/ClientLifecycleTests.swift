import Logging
import NIOCore
import ServiceLifecycle
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import Synchronization
import Testing

/// The scoped helpers close their client on every way out (return, throw, cancellation),
/// and a `ServiceGroup` shut down gracefully leaves nothing running: no member in the group,
/// no connection to the broker, a closed producer.
@Suite("Client lifecycle: scopes and services", .serialized, .timeLimit(.minutes(2)))
struct ClientLifecycleTests {
    struct Thrown: Error {}

    /// How `body` leaves its scope.
    enum Exit: String, CaseIterable, Sendable {
        case returns, throwsError, cancelled
    }

    /// Runs `scoped` (a call of a scoped helper whose body calls `started` with its client,
    /// then leaves as `exit` says); returns once the scope has returned or thrown.
    static func leave<Client: Sendable>(
        _ exit: Exit,
        _ scoped: @escaping @Sendable (_ body: @escaping @Sendable (Client) async throws -> Void) async throws -> Void
    ) async throws -> Client {
        let (started, continuation) = AsyncStream.makeStream(of: Client.self)
        let task = Task {
            try await scoped { client in
                continuation.yield(client)
                switch exit {
                case .returns: return
                case .throwsError: throw Thrown()
                case .cancelled:
                    // Waits to be cancelled: the scope must end through cancellation.
                    while true { try await Task.sleep(for: .seconds(3600)) }
                }
            }
        }
        var iterator = started.makeAsyncIterator()
        guard let client = await iterator.next() else { throw TestProcessError("the scope's body never started") }
        if exit == .cancelled { task.cancel() }
        let result = await task.result
        switch (exit, result) {
        case (.returns, .success), (.throwsError, .failure(is Thrown)), (.cancelled, .failure(is CancellationError)): break
        default: Issue.record("\(exit): the scope ended with \(result)")
        }
        return client
    }

    @Test("withProducer closes the producer", arguments: Exit.allCases)
    func withProducerCloses(_ exit: Exit) async throws {
        try await withBroker { broker in
            try await broker.createTopic("orders", partitions: 1)
            let address = broker.address
            let producer: Producer = try await Self.leave(exit) { body in
                try await withProducer(address: address) { producer in
                    _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "inside"))
                    try await body(producer)
                }
            }
            await #expect(throws: ProducerError.closed) { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "after")) }
            try await eventually("the producer's connection to close") {
                try DroppedProducerTests.clientConnections(to: broker.port) == 0
            }
        }
    }

    @Test("withConsumer closes its subscriptions", arguments: Exit.allCases)
    func withConsumerCloses(_ exit: Exit) async throws {
        try await withBroker { broker in
            try await broker.createTopic("orders", partitions: 1)
            let producer = Producer(address: broker.address)
            _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "one"))
            await producer.close()
            let address = broker.address
            let reader = Mutex<Task<ConsumerRecord?, any Error>?>(nil)
            let consumer: Consumer = try await Self.leave(exit) { body in
                try await withConsumer(address: address, topic: "orders") { consumer in
                    // A reader still waiting for records when the scope ends: the scope
                    // closes its subscription anyway, and its iteration ends.
                    let started = AsyncStream.makeStream(of: Void.self)
                    reader.withLock {
                        $0 = Task {
                            var iterator = consumer.makeAsyncIterator()
                            _ = try await iterator.next()
                            started.continuation.yield()
                            return try await iterator.next()
                        }
                    }
                    var first = started.stream.makeAsyncIterator()
                    await first.next()
                    try await body(consumer)
                }
            }
            try await eventually("the subscription's connection to close") {
                try DroppedProducerTests.clientConnections(to: broker.port) == 0
            }
            let waiting = reader.withLock { $0 }
            #expect(try await waiting?.value == nil, "an iteration inside the scope ends with it")
            var after = consumer.makeAsyncIterator()
            #expect(try await after.next() == nil, "a consumer iterated after its scope ended ends at once")
        }
    }

    static func groupConfiguration() -> GroupConsumerConfiguration {
        var configuration = GroupConsumerConfiguration(group: "billing", topics: ["orders"])
        configuration.sessionTimeout = .seconds(30)
        return configuration
    }

    /// The group's members; a group without members or offsets is gone (NOT_FOUND).
    static func members(of group: String, _ admin: SluiceAdminClient) async throws -> Int {
        do {
            return try await admin.describeGroup(named: group).members.count
        } catch let status as GRPCStatus where status.code == .notFound {
            return 0
        }
    }

    @Test("withGroupConsumer leaves the group and returns body's result, events as a sequence")
    func withGroupConsumerLeaves() async throws {
        try await withBroker { broker in
            try await broker.createTopic("orders", partitions: 2)
            let assigned = try await withGroupConsumer(
                address: broker.address, configuration: Self.groupConfiguration(), handler: { _ in }
            ) { consumer in
                for await event in consumer.events() {
                    if case .assigned(_, let partitions, _) = event, !partitions.isEmpty { return partitions }
                }
                return []
            }
            #expect(assigned.count == 2)
            let admin = try await SluiceAdminClient(address: broker.address)
            #expect(try await Self.members(of: "billing", admin) == 0, "the member left")
            await admin.close()
            try await eventually("the member's connection to close") {
                try DroppedProducerTests.clientConnections(to: broker.port) == 0
            }
        }
    }

    @Test("a ServiceGroup shut down gracefully closes the producer and the group member")
    func serviceGroupShutsDown() async throws {
        try await withBroker { broker in
            try await broker.createTopic("orders", partitions: 1)
            let producer = Producer(address: broker.address)
            let member = GroupConsumer(address: broker.address, configuration: Self.groupConfiguration())
            let handled = AsyncStream.makeStream(of: String.self)
            let group = ServiceGroup(
                services: [producer, member.service { batch in
                    for record in batch.records { handled.continuation.yield(String(buffer: record.value)) }
                }],
                logger: Logger(label: "sluice.test.lifecycle"))
            let running = Task { try await group.run() }
            // The services work: a record produced through the producer reaches the member.
            _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "through the group"))
            var values = handled.stream.makeAsyncIterator()
            #expect(await values.next() == "through the group")
            await group.triggerGracefulShutdown()
            try await running.value
            await #expect(throws: ProducerError.closed) { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "after")) }
            let admin = try await SluiceAdminClient(address: broker.address)
            #expect(try await Self.members(of: "billing", admin) == 0, "the member left")
            await admin.close()
            try await eventually("every client connection to close") {
                try DroppedProducerTests.clientConnections(to: broker.port) == 0
            }
        }
    }
}
