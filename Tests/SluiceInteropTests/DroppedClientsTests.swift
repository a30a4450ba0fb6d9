import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import Testing

/// Clients their user drops without closing release their connections, as dropped
/// producers do (`DroppedProducerTests`): 20 of each kind, used once, then let go, and the
/// broker's established connections from this machine and the clients' own tasks
/// (`ClientTasks`) are counted afterwards.
@Suite("Dropped clients", .serialized, .timeLimit(.minutes(2)))
struct DroppedClientsTests {
    static let count = 20

    func withOrders(_ body: (BrokerProcess) async throws -> Void) async throws {
        try await withBroker { broker in
            try await broker.createTopic("orders", partitions: 1)
            let producer = Producer(address: broker.address)
            _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "one"))
            await producer.close()
            try await eventually("the set-up's connections to close") {
                try DroppedProducerTests.clientConnections(to: broker.port) == 0
            }
            let tasks = ClientTaskCounter()
            try await ClientTasks.$counter.withValue(tasks) { try await body(broker) }
            try await tasks.eventuallyNoneRunning("the dropped clients' tasks to end")
        }
    }

    @Test("consumers whose iteration was dropped release their connections")
    func droppedConsumers() async throws {
        try await withOrders { broker in
            for _ in 0..<Self.count {
                let consumer = Consumer(address: broker.address, topic: "orders")
                var iterator = consumer.makeAsyncIterator()
                #expect(try await iterator.next()?.value == ByteBuffer(string: "one"))
            }
            try await eventually("the dropped subscriptions' connections to close") {
                try DroppedProducerTests.clientConnections(to: broker.port) == 0
            }
        }
    }

    @Test("admin clients dropped without close release their connections")
    func droppedAdminClients() async throws {
        try await withOrders { broker in
            for _ in 0..<Self.count {
                let admin = try await SluiceAdminClient(address: broker.address)
                #expect(try await admin.describeTopic(named: "orders").partitionCount == 1)
            }
            try await eventually("the dropped admin clients' connections to close") {
                try DroppedProducerTests.clientConnections(to: broker.port) == 0
            }
        }
    }

    @Test("group consumers whose run was cancelled are freed and release their connections")
    func droppedGroupConsumers() async throws {
        try await withOrders { broker in
            var dropped: [WeakGroupConsumer] = []
            for index in 0..<Self.count {
                var configuration = GroupConsumerConfiguration(group: "g\(index)", topics: ["orders"])
                configuration.sessionTimeout = .seconds(30)
                let consumer = GroupConsumer(address: broker.address, configuration: configuration)
                let events = consumer.events()
                let running = Task { try await consumer.run { _ in } }
                for await event in events {
                    if case .assigned(_, let partitions, _) = event, !partitions.isEmpty { break }
                }
                running.cancel()
                try await running.value
                dropped.append(WeakGroupConsumer(consumer))
            }
            try await eventually("the group consumers to be freed") {
                dropped.allSatisfy { $0.consumer == nil }
            }
            try await eventually("the group consumers' connections to close") {
                try DroppedProducerTests.clientConnections(to: broker.port) == 0
            }
        }
    }
}

final class WeakGroupConsumer: @unchecked Sendable {
    // @unchecked: written once in init; read by the test task only.
    weak var consumer: GroupConsumer?
    init(_ consumer: GroupConsumer) { self.consumer = consumer }
}
