import Logging
import SluiceAPI
@testable import SluiceClient
import SluiceWire
import Synchronization
import Testing

/// The client's metadata rules (`ClusterMetadata`, `MetadataRefreshPolicy`) with answers
/// and instants passed in, and `ClusterView` against fake brokers answering Metadata.
@Suite("Client cluster metadata")
struct ClusterMetadataTests {
    static let orders0 = TopicPartition(topic: "orders", partition: 0)

    static func answer(revision: Int64, leader: UInt32, epoch: UInt32, brokers: [UInt32: String]) -> MetadataResponse {
        MetadataResponse(
            brokers: brokers.map { MetadataBroker(id: $0.key, address: $0.value) },
            topics: [MetadataTopic(name: "orders", partitions: [
                MetadataPartition(partition: 0, leaderId: leader, hasLeader: true, leaderEpoch: epoch, replicas: [1, 2]),
            ])],
            cluster: "test", metadataRevision: revision)
    }

    static let brokers: [UInt32: String] = [1: "a:9092", 2: "b:9092"]

    @Test("an answer with a lower revision than the one held is ignored; an equal or higher one is adopted")
    func revisionOrdering() {
        var metadata = ClusterMetadata()
        let answer1 = metadata.adopt(Self.answer(revision: 10, leader: 1, epoch: 3, brokers: Self.brokers))
        #expect(answer1)
        #expect(metadata.leader(of: Self.orders0) == "a:9092")
        // A broker whose view lags: older revision, older leader.
        let answer2 = metadata.adopt(Self.answer(revision: 9, leader: 2, epoch: 2, brokers: Self.brokers))
        #expect(!answer2)
        #expect(metadata.leader(of: Self.orders0) == "a:9092")
        #expect(metadata.revision == 10)
        let answer3 = metadata.adopt(Self.answer(revision: 12, leader: 2, epoch: 4, brokers: Self.brokers))
        #expect(answer3)
        #expect(metadata.leader(of: Self.orders0) == "b:9092")
        #expect(metadata.revision == 12)
    }

    @Test("a NOT_LEADER hint is taken only with a newer epoch, and a partition never moves back to an older epoch")
    func hintsAndEpochs() {
        var metadata = ClusterMetadata()
        metadata.adopt(Self.answer(revision: 10, leader: 1, epoch: 3, brokers: Self.brokers))
        let answer4 = metadata.adopt(LeaderHint(brokerId: 2, address: "b:9092", leaderEpoch: 3), at: Self.orders0)
        #expect(!answer4)
        #expect(metadata.leader(of: Self.orders0) == "a:9092")
        let answer5 = metadata.adopt(LeaderHint(brokerId: 2, address: "b:9092", leaderEpoch: 4), at: Self.orders0)
        #expect(answer5)
        #expect(metadata.leader(of: Self.orders0) == "b:9092")
        // The same revision read again still names the old leader at epoch 3: the hint's
        // epoch 4 stands.
        let answer6 = metadata.adopt(Self.answer(revision: 10, leader: 1, epoch: 3, brokers: Self.brokers))
        #expect(answer6)
        #expect(metadata.leader(of: Self.orders0) == "b:9092")
        // An empty hint (no leader now) teaches nothing.
        let answer7 = metadata.adopt(LeaderHint(), at: Self.orders0)
        #expect(!answer7)
    }

    @Test("a broker without the Metadata RPC leads every partition, until a real answer arrives")
    func singleNode() {
        var metadata = ClusterMetadata()
        metadata.adoptSingleNode("127.0.0.1:9092")
        #expect(metadata.leader(of: Self.orders0) == "127.0.0.1:9092")
        #expect(metadata.leader(of: .init(topic: "anything", partition: 7)) == "127.0.0.1:9092")
        metadata.adopt(Self.answer(revision: 1, leader: 2, epoch: 1, brokers: Self.brokers))
        #expect(metadata.leader(of: Self.orders0) == "b:9092")
        #expect(metadata.leader(of: .init(topic: "anything", partition: 7)) == nil)
    }

    @Test("metadata requests start at least the minimum interval apart")
    func minimumInterval() {
        var policy = MetadataRefreshPolicy(minimumInterval: .milliseconds(100))
        let start = ContinuousClock.now
        #expect(policy.earliestStart(now: start) == start)
        policy.started(at: start)
        #expect(policy.earliestStart(now: start.advanced(by: .milliseconds(10))) == start.advanced(by: .milliseconds(100)))
        #expect(policy.earliestStart(now: start.advanced(by: .milliseconds(150))) == start.advanced(by: .milliseconds(150)))
    }

    @Test("refreshes asked for while one runs join it: one Metadata request")
    func refreshesCoalesce() async throws {
        let fake = MetadataFake { _ in Self.answer(revision: 1, leader: 1, epoch: 0, brokers: [1: "127.0.0.1:1"]) }
        let address = try await fake.start()
        let view = ClusterView(bootstrap: [address], requestTimeout: .seconds(10), logger: Logger(label: "test"))
        for _ in 0..<10 { view.requestRefresh(reason: "test") }
        try await view.refresh(reason: "test")
        #expect(view.refreshCount == 1)
        #expect(fake.requests == 1)
        #expect(view.leader(of: Self.orders0)?.description == "127.0.0.1:1")
        try await view.refresh(reason: "test")
        #expect(view.refreshCount == 2)
        #expect(fake.requests == 2)
        await fake.stop()
    }

    @Test("a lagging broker's older answer does not replace a newer one")
    func laggingBrokerIgnored() async throws {
        // B lags: revision 3 naming itself. A (bootstrap) answers revision 5 naming A as
        // the leader and B among the brokers, so the next refresh asks B first.
        let lagging = MetadataFake { _ in Self.answer(revision: 3, leader: 2, epoch: 1, brokers: [:]) }
        let laggingAddress = try await lagging.start()
        let current = MetadataFake { fake in
            Self.answer(revision: 5, leader: 1, epoch: 2, brokers: [1: fake, 2: "\(laggingAddress)"])
        }
        let currentAddress = try await current.start()
        let view = ClusterView(bootstrap: [currentAddress], requestTimeout: .seconds(10), logger: Logger(label: "test"))
        try await view.refresh(reason: "test")
        #expect(view.leader(of: Self.orders0)?.description == "\(currentAddress)")
        await current.stop()
        try await view.refresh(reason: "test")
        #expect(lagging.requests == 1, "the second refresh reached the lagging broker")
        #expect(view.metadata.revision == 5)
        #expect(view.leader(of: Self.orders0)?.description == "\(currentAddress)")
        await lagging.stop()
    }

    @Test("a broker answering Metadata UNIMPLEMENTED (an older broker) leads everything")
    func unimplementedIsSingleNode() async throws {
        let (server, address) = try await startFakeServer([], label: "test.no-metadata")
        try await Self.expectSingleNode(at: address)
        await server.shutdown()
    }

    @Test("a single node (no cluster name) leads everything at the address it was reached at, not the one it names")
    func singleNodeAnswerIsSingleNode() async throws {
        let fake = MetadataFake { _ in
            MetadataResponse(
                brokers: [MetadataBroker(id: 1, address: "0.0.0.0:9092")],
                topics: [MetadataTopic(name: "orders", partitions: [MetadataPartition(partition: 0, leaderId: 1, hasLeader: true)])])
        }
        try await Self.expectSingleNode(at: try await fake.start())
        await fake.stop()
    }

    static func expectSingleNode(at address: BrokerAddress) async throws {
        let view = ClusterView(bootstrap: [address], requestTimeout: .seconds(10), logger: Logger(label: "test"))
        try await view.refresh(reason: "test")
        #expect(view.leader(of: Self.orders0)?.description == address.description)
        #expect(view.leader(of: .init(topic: "other", partition: 3))?.description == address.description)
    }
}

/// A gRPC server answering Metadata with `answer(its own address)`, counting requests.
final class MetadataFake: Sendable {
    private let answer: @Sendable (String) -> MetadataResponse
    private let state = Mutex<(requests: Int, server: GRPCServer?, address: String)>((0, nil, ""))

    init(_ answer: @escaping @Sendable (String) -> MetadataResponse) {
        self.answer = answer
    }

    var requests: Int { state.withLock { $0.requests } }

    func start() async throws -> BrokerAddress {
        let (server, address) = try await startFakeServer([
            .unary("/sluice.v1.Broker/Metadata") { [self] _, _ in
                let own = state.withLock { state in
                    state.requests += 1
                    return state.address
                }
                return answer(own).protobufBytes()
            },
        ], label: "test.metadata-fake")
        state.withLock {
            $0.server = server
            $0.address = address.description
        }
        return address
    }

    func stop() async {
        await state.withLock { $0.server }?.shutdown()
    }
}
