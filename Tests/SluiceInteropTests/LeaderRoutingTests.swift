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
            let former = try await startFormerLeader(leader: leader.address)
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
            #expect(former.counts.read(\.produceRequests) >= 1, "A was asked first and answered NOT_LEADER")
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

    @Test("a leader that cannot be reached (killed before its partitions moved) makes the producer ask again")
    func producerRefreshesOnDeadLeader() async throws {
        try await withBroker { leader in
            try await leader.createTopic("moves", partitions: 1)
            let dead = try await deadAddress()
            // A's first answer names a dead broker 3 as the leader, later ones B.
            let front = try await FrontBroker(leader: leader.address, counts: 0) { _, own, answers in [
                .unary("/sluice.v1.Broker/Metadata") { _, _ in
                    let first = answers.update { answers in
                        answers += 1
                        return answers == 1
                    }
                    return MetadataResponse(
                        brokers: [MetadataBroker(id: 1, address: own.get()), MetadataBroker(id: 2, address: leader.address.description),
                                  MetadataBroker(id: 3, address: dead.description)],
                        topics: [MetadataTopic(name: "moves", partitions: [
                            MetadataPartition(partition: 0, leaderId: first ? 3 : 2, hasLeader: true, leaderEpoch: first ? 0 : 1)])],
                        cluster: "test", metadataRevision: first ? 1 : 2).protobufBytes()
                },
            ] }
            var configuration = ProducerConfiguration()
            configuration.retryBackoff = .milliseconds(20)
            // Bounded: without asking again every attempt would go to the dead broker until this.
            configuration.deliveryTimeout = .seconds(10)
            let producer = Producer(bootstrap: [front.address], configuration: configuration)
            let placed = try await producer.send(topic: "moves", value: ByteBuffer(string: "one"), partition: 0)
            #expect(placed.offset == 0)
            #expect(front.counts.read { $0 } >= 2, "the dead leader made the producer ask again")
            await producer.close()
            await front.stop()
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

            let former = try await startFormerLeader(leader: leader.address)
            var consumerConfiguration = ConsumerConfiguration()
            consumerConfiguration.reconnectBackoff = .milliseconds(20)
            let consumer = Consumer(
                bootstrap: [former.address], topic: "moves", partitions: [0: .earliest], configuration: consumerConfiguration)
            let records = try await read(consumer, count: 30)
            #expect(records.map(\.offset) == (0..<30).map(Int64.init))
            #expect(records.map { String(buffer: $0.value) } == (0..<30).map { "r\($0)" })
            #expect(former.counts.read(\.subscribes) == 1, "after \"not leader\" the consumer went to the leader, not back to A")
            await former.stop()
        }
    }

    @Test("a consumer whose partitions have different leaders reads each from its own leader")
    func consumerSplitsByLeader() async throws {
        try await withBroker { leader in
            try await leader.createTopic("split", partitions: 2)
            let producer = Producer(address: leader.address)
            for index in 0..<40 { _ = try await producer.enqueue(topic: "split", value: ByteBuffer(string: "r\(index)"), partition: index % 2) }
            await producer.flush()
            await producer.close()

            let half = try await startHalfLeader(leader: leader.address)
            for partitions in [[0: ConsumerStart.earliest, 1: .earliest], nil] {
                let consumer = Consumer(bootstrap: [half.address], topic: "split", partitions: partitions)
                let records = try await read(consumer, count: 40)
                #expect(Set(records.map { String(buffer: $0.value) }) == Set((0..<40).map { "r\($0)" }))
                for partition in 0..<2 {
                    let offsets = records.filter { $0.partition == partition }.map(\.offset)
                    #expect(offsets == (0..<20).map(Int64.init), "partition \(partition) in order, once")
                }
            }
            #expect(half.counts.read(\.refusals) == 0, "no subscription asked A for a partition it does not lead")
            #expect(half.counts.read(\.subscribes) == 2, "A served partition 0 of each consumer")
            await half.stop()
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

/// A fake broker A (id 1) in front of a real broker B (id 2): the test's methods, plus
/// DescribeTopic and InitProducerId relayed to B, and `counts` its handlers keep.
struct FrontBroker<Counts: Sendable>: Sendable {
    let server: GRPCServer
    let address: BrokerAddress
    let relay: GRPCClientConnection
    let counts: Counter<Counts>

    /// `methods` gets the relay to B, A's own address (known once it listens) and the counts.
    init(
        leader: BrokerAddress, counts initial: Counts,
        methods: (GRPCClientConnection, OwnAddress, Counter<Counts>) -> [GRPCMethod]
    ) async throws {
        let relay = try await leader.connect(logger: Logger(label: "sluice.test.front-broker"))
        let own = OwnAddress()
        counts = Counter(initial)
        let relayed = ["DescribeTopic", "InitProducerId"].map { method in
            GRPCMethod.unary("/sluice.v1.Broker/\(method)") { bytes, _ in
                try await relay.unary(path: "/sluice.v1.Broker/\(method)", request: bytes, timeout: .seconds(10))
            }
        }
        server = GRPCServer(
            configuration: GRPCServerConfiguration(host: "127.0.0.1", port: 0), methods: relayed + methods(relay, own, counts),
            logger: Logger(label: "sluice.test.front-broker"))
        let bound = try await server.start()
        address = BrokerAddress(host: bound.host, port: bound.port)
        own.set(address.description)
        self.relay = relay
    }

    func stop() async {
        await server.shutdown()
        await relay.close()
    }
}

/// A Metadata answer naming A (`own`, id 1) and B (`leader`, id 2), with `leaders[p]` =
/// (broker id, epoch).
func frontMetadata(own: String, leader: String, topic: String, leaders: [(UInt32, UInt32)], revision: Int64) -> ByteBuffer {
    MetadataResponse(
        brokers: [MetadataBroker(id: 1, address: own), MetadataBroker(id: 2, address: leader)],
        topics: [MetadataTopic(name: topic, partitions: leaders.enumerated().map { partition, leader in
            MetadataPartition(partition: UInt32(partition), leaderId: leader.0, hasLeader: true, leaderEpoch: leader.1, replicas: [1, 2])
        })],
        cluster: "test", metadataRevision: revision, answeredBy: 1).protobufBytes()
}

/// A fake broker's own address, set once it listens, read by its handlers.
final class OwnAddress: Sendable {
    private let value = Mutex("")
    func set(_ text: String) { value.withLock { $0 = text } }
    func get() -> String { value.withLock { $0 } }
}

/// What a fake broker's handlers count, read by the test.
final class Counter<Counts: Sendable>: Sendable {
    private let state: Mutex<Counts>
    init(_ initial: Counts) { state = Mutex(initial) }
    func update<T>(_ change: (inout Counts) -> T) -> T { state.withLock { change(&$0) } }
    func read<T: Sendable>(_ pick: (Counts) -> T) -> T { state.withLock { pick($0) } }
}

struct FormerLeaderCounts: Sendable {
    var moved = false
    var produceRequests = 0
    var subscribes = 0
}

/// Broker A, the former leader of "moves" partition 0. Metadata: revision 1 with A leading,
/// until A answered NOT_LEADER or ended a subscription "not leader"; then revision 2 with B
/// leading at epoch 1. Produce: NOT_LEADER with B as the hint. Subscribe: the first is
/// relayed from B for one batch, then ended "not leader"; later ones end "not leader" at once.
func startFormerLeader(leader: BrokerAddress) async throws -> FrontBroker<FormerLeaderCounts> {
    try await FrontBroker(leader: leader, counts: FormerLeaderCounts()) { relay, own, counts in [
        .unary("/sluice.v1.Broker/Metadata") { _, _ in
            let moved = counts.read(\.moved)
            return frontMetadata(
                own: own.get(), leader: leader.description, topic: "moves", leaders: [moved ? (2, 1) : (1, 0)], revision: moved ? 2 : 1)
        },
        .bidirectional("/sluice.v1.Broker/Produce") { requests, writer, _ in
            for try await bytes in requests {
                let request = try ProduceRequest(protobuf: bytes)
                counts.update {
                    $0.produceRequests += 1
                    $0.moved = true
                }
                try await writer.write(ProduceResponse(
                    correlationId: request.correlationId, topic: request.topic, partition: request.partition,
                    error: .notLeader, errorMessage: "broker 1 no longer leads \(request.topic)/\(request.partition)",
                    leader: LeaderHint(brokerId: 2, address: leader.description, leaderEpoch: 1)).protobufBytes())
            }
        },
        .serverStreaming("/sluice.v1.Broker/Subscribe") { bytes, writer, _ in
            let first = counts.update { counts in
                counts.subscribes += 1
                return counts.subscribes == 1
            }
            if first {
                // The first stored batch only, whatever the push held: the rest must come
                // from the leader.
                try await relaySubscribe(bytes, via: relay, to: writer, pushes: 1) { push in
                    push.batches = Array(push.batches.prefix(1))
                }
            }
            counts.update { $0.moved = true }
            throw GRPCStatus(.unavailable, "not leader for moves/0: broker 2 leads it at epoch 1")
        },
    ] }
}

struct HalfLeaderCounts: Sendable {
    var subscribes = 0
    var refusals = 0
}

/// Broker A leading partition 0 of "split" while B leads partition 1: Metadata says so; a
/// Subscribe for partition 0 alone is relayed from B, any other ends "not leader".
func startHalfLeader(leader: BrokerAddress) async throws -> FrontBroker<HalfLeaderCounts> {
    try await FrontBroker(leader: leader, counts: HalfLeaderCounts()) { relay, own, counts in [
        .unary("/sluice.v1.Broker/Metadata") { _, _ in
            frontMetadata(own: own.get(), leader: leader.description, topic: "split", leaders: [(1, 0), (2, 0)], revision: 1)
        },
        .serverStreaming("/sluice.v1.Broker/Subscribe") { bytes, writer, _ in
            let request = try SubscribeRequest(protobuf: bytes)
            guard request.partitions.map(\.partition) == [0] else {
                counts.update { $0.refusals += 1 }
                throw GRPCStatus(.unavailable, "not leader for split/1: broker 2 leads it at epoch 0")
            }
            counts.update { $0.subscribes += 1 }
            try await relaySubscribe(bytes, via: relay, to: writer, pushes: nil) { _ in }
        },
    ] }
}

/// Relays a Subscribe to B: `pushes` pushes (nil: until the client leaves), each changed
/// by `edit` on the way.
func relaySubscribe(
    _ request: ByteBuffer, via relay: GRPCClientConnection, to writer: GRPCResponseWriter, pushes: Int?,
    edit: (inout SubscribeResponse) -> Void
) async throws {
    let call = try await relay.makeCall(path: "/sluice.v1.Broker/Subscribe")
    defer { call.cancel() }
    try await call.send(request)
    try await call.finishSending()
    var relayed = 0
    for try await bytes in call.responses {
        var push = try SubscribeResponse(protobuf: bytes)
        edit(&push)
        try await writer.write(push.protobufBytes())
        relayed += 1
        if let pushes, relayed >= pushes { return }
    }
}
