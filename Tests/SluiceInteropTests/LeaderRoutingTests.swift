import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Synchronization
import Testing

/// Clients that start from a bootstrap list and follow partition leaders, against a real
/// `sluice serve` process (broker B) and, for the leader moves, a fake broker A in the
/// test: A claims to lead until it has answered NOT_LEADER (or ended a subscription "not
/// leader"), after which its Metadata names B, as a broker whose partition moved would.
@Suite("Clients follow partition leaders", .serialized, .timeLimit(.minutes(2)))
struct LeaderRoutingTests {
    @Test("a bootstrap list whose first broker is dead produces, consumes and administers via the second")
    func deadFirstBootstrapBroker() async throws {
        try await withBroker { broker in
            let dead = try await deadAddress()
            let bootstrap = [dead, broker.address]
            let admin = try await SluiceAdminClient(bootstrap: bootstrap)
            try await admin.createTopic(name: "listed", partitions: 2)
            await admin.close()

            let producer = Producer(bootstrap: bootstrap)
            for index in 0..<20 {
                _ = try await producer.enqueue(topic: "listed", key: ByteBuffer(string: "k\(index % 4)"), value: ByteBuffer(string: "v\(index)"))
            }
            await producer.flush()
            await producer.close()

            let records = try await read(Consumer(bootstrap: bootstrap, topic: "listed"), count: 20)
            #expect(Set(records.map { String(buffer: $0.value) }) == Set((0..<20).map { "v\($0)" }))

            let list = ["--broker", "\(dead),\(broker.brokerArgument)"]
            let produced = try await runSluice(["produce", "--topic", "listed", "--partition", "1"] + list, input: "cli\n", in: broker.root)
            #expect(produced.status == 0, "\(produced.stderr)")
            let consumed = try await runSluice(["consume", "--topic", "listed", "--partition", "1"] + list, in: broker.root)
            #expect(consumed.status == 0, "\(consumed.stderr)")
            #expect(consumed.stdout.contains("\tcli\n"), "\(consumed.stdout)")
            let described = try await runSluice(["topic", "describe", "listed"] + list, in: broker.root)
            #expect(described.status == 0, "\(described.stderr)")
        }
    }

    @Test("a batch answered NOT_LEADER goes to the hinted leader; every record lands once, in order", arguments: [false, true])
    func producerFollowsNotLeader(idempotent: Bool) async throws {
        try await withBroker { leader in
            try await leader.createTopic("moves", partitions: 1)
            let former = try await FormerLeader(leader: leader.address)
            var configuration = ProducerConfiguration()
            configuration.idempotent = idempotent
            configuration.linger = .milliseconds(2)
            configuration.maxBatchBytes = 200
            // Bounded: without following the hint every batch would go back to A until this.
            configuration.deliveryTimeout = .seconds(20)
            let producer = Producer(bootstrap: [former.address], configuration: configuration)
            var deliveries: [Delivery] = []
            for index in 0..<60 {
                deliveries.append(try await producer.enqueue(topic: "moves", value: ByteBuffer(string: "r\(index)"), partition: 0))
            }
            var offsets: [Int64] = []
            for delivery in deliveries { offsets.append(try await delivery.result().offset) }
            #expect(offsets == (0..<60).map(Int64.init))
            #expect(former.produceRequests >= 1, "A was asked first and answered NOT_LEADER")
            // The first lookup, then the refresh NOT_LEADER asked for (it may start after the
            // records were already delivered through the hint).
            try await eventually("a metadata refresh after NOT_LEADER") { producer.metadataRefreshCount >= 2 }
            #expect(producer.clusterMetadata.leader(of: .init(topic: "moves", partition: 0)) == leader.address.description)
            await producer.close()

            let stored = try await read(Consumer(bootstrap: [leader.address], topic: "moves", partitions: [0: .earliest]), count: 60)
            #expect(stored.map { String(buffer: $0.value) } == (0..<60).map { "r\($0)" })
            #expect(stored.map(\.offset) == (0..<60).map(Int64.init))
            await former.stop()
        }
    }

    @Test("a subscription ended \"not leader\" resumes at the new leader, without duplicates or gaps")
    func consumerFollowsNotLeader() async throws {
        try await withBroker { leader in
            try await leader.createTopic("moves", partitions: 1)
            var configuration = ProducerConfiguration()
            configuration.linger = .zero
            let producer = Producer(address: leader.address, configuration: configuration)
            // Three flushes, three stored batches: A relays the first push only.
            for round in 0..<3 {
                for index in 0..<10 { _ = try await producer.enqueue(topic: "moves", value: ByteBuffer(string: "r\(round * 10 + index)"), partition: 0) }
                await producer.flush()
            }
            await producer.close()

            let former = try await FormerLeader(leader: leader.address)
            var consumerConfiguration = ConsumerConfiguration()
            consumerConfiguration.reconnectBackoff = .milliseconds(20)
            let consumer = Consumer(
                bootstrap: [former.address], topic: "moves", partitions: [0: .earliest], configuration: consumerConfiguration)
            let records = try await read(consumer, count: 30)
            #expect(records.map(\.offset) == (0..<30).map(Int64.init))
            #expect(records.map { String(buffer: $0.value) } == (0..<30).map { "r\($0)" })
            #expect(former.subscribes == 1, "after \"not leader\" the consumer went to the leader, not back to A")
            await former.stop()
        }
    }
}

/// An address where nothing listens: a server's port, closed.
func deadAddress() async throws -> BrokerAddress {
    let server = GRPCServer(configuration: GRPCServerConfiguration(host: "127.0.0.1", port: 0), methods: [], logger: Logger(label: "dead"))
    let address = try await server.start()
    await server.shutdown()
    return BrokerAddress(host: address.host, port: address.port)
}

/// Broker A, the former leader of every partition (id 1), with B at `leader` (id 2).
/// Metadata: revision 1 with A leading, until A answered NOT_LEADER or ended a subscription
/// "not leader"; then revision 2 with B leading at epoch 1. Produce: NOT_LEADER with B as
/// the hint. Subscribe: the first is relayed from B for one batch, then ended "not leader";
/// later ones end "not leader" at once. DescribeTopic and InitProducerId are relayed to B.
final class FormerLeader: Sendable {
    private struct State {
        var moved = false
        var produceRequests = 0
        var subscribes = 0
        var ownAddress = ""
    }

    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private let shared: Shared
    private let server: GRPCServer
    let address: BrokerAddress
    private let relay: GRPCClientConnection

    init(leader: BrokerAddress) async throws {
        let relay = try await leader.connect(logger: Logger(label: "sluice.test.former-leader"))
        let shared = Shared()
        let leaderAddress = leader.description
        let methods: [GRPCMethod] = [
            .unary("/sluice.v1.Broker/Metadata") { _, _ in
                let (moved, own) = shared.state.withLock { ($0.moved, $0.ownAddress) }
                let brokers = [MetadataBroker(id: 1, address: own), MetadataBroker(id: 2, address: leaderAddress)]
                return MetadataResponse(
                    brokers: brokers,
                    topics: [MetadataTopic(name: "moves", partitions: [MetadataPartition(
                        partition: 0, leaderId: moved ? 2 : 1, hasLeader: true, leaderEpoch: moved ? 1 : 0, replicas: [1, 2])])],
                    metadataRevision: moved ? 2 : 1, answeredBy: 1).protobufBytes()
            },
            .unary("/sluice.v1.Broker/DescribeTopic") { bytes, _ in
                try await relay.unary(path: "/sluice.v1.Broker/DescribeTopic", request: bytes, timeout: .seconds(10))
            },
            .unary("/sluice.v1.Broker/InitProducerId") { bytes, _ in
                try await relay.unary(path: "/sluice.v1.Broker/InitProducerId", request: bytes, timeout: .seconds(10))
            },
            .bidirectional("/sluice.v1.Broker/Produce") { requests, writer, _ in
                for try await bytes in requests {
                    let request = try ProduceRequest(protobuf: bytes)
                    shared.state.withLock {
                        $0.produceRequests += 1
                        $0.moved = true
                    }
                    try await writer.write(ProduceResponse(
                        correlationId: request.correlationId, topic: request.topic, partition: request.partition,
                        error: .notLeader, errorMessage: "broker 1 no longer leads \(request.topic)/\(request.partition)",
                        leader: LeaderHint(brokerId: 2, address: leaderAddress, leaderEpoch: 1)).protobufBytes())
                }
            },
            .serverStreaming("/sluice.v1.Broker/Subscribe") { bytes, writer, _ in
                let first = shared.state.withLock { state in
                    state.subscribes += 1
                    return state.subscribes == 1
                }
                if first {
                    let call = try await relay.makeCall(path: "/sluice.v1.Broker/Subscribe")
                    try await call.send(bytes)
                    try await call.finishSending()
                    var responses = call.responses.makeAsyncIterator()
                    // The first stored batch only, whatever the push held: the rest must
                    // come from the leader.
                    if let push = try await responses.next() {
                        var first = try SubscribeResponse(protobuf: push)
                        first.batches = Array(first.batches.prefix(1))
                        try await writer.write(first.protobufBytes())
                    }
                    call.cancel()
                }
                shared.state.withLock { $0.moved = true }
                throw GRPCStatus(.unavailable, "not leader for moves/0: broker 2 leads it at epoch 1")
            },
        ]
        server = GRPCServer(
            configuration: GRPCServerConfiguration(host: "127.0.0.1", port: 0), methods: methods,
            logger: Logger(label: "sluice.test.former-leader"))
        let bound = try await server.start()
        address = BrokerAddress(host: bound.host, port: bound.port)
        self.relay = relay
        self.shared = shared
        let own = address.description
        shared.state.withLock { $0.ownAddress = own }
    }

    var produceRequests: Int { shared.state.withLock { $0.produceRequests } }
    var subscribes: Int { shared.state.withLock { $0.subscribes } }

    func stop() async {
        await server.shutdown()
        await relay.close()
    }
}
