public import Logging
public import SluiceBroker
import SluiceCluster
import SluiceStorage
public import SluiceWire
import Synchronization

/// A broker: its data directory, topic registry and gRPC services on one `GRPCServer`,
/// alone (a single node) or in a cluster (`Configuration.cluster`). `sluice serve` runs
/// one; tests run one in-process on port 0.
public final class BrokerServer: Sendable {
    public struct Configuration: Sendable {
        public var dataDirectory: String
        public var transport: GRPCServerConfiguration
        /// Also serve `sluice.test.v1.Echo`.
        public var testServices: Bool = false
        public var brokerID: UInt32 = 1
        /// Partition logs: file system, fsync policy, maintenance interval.
        public var storage = StorageSettings()
        public var produceLimits = ProduceLimits()
        public var subscribeLimits = SubscribeLimits()
        /// Consumer groups: session timeouts, queues, the offsets log's bounds.
        public var groups = GroupSettings()
        /// In a cluster: how partitions this broker leads replicate (the ISR writer, the
        /// follower lag bound, the Replicate streams' limits).
        public var replication = ReplicationSettings()
        /// In a cluster: its metadata and controller. Nil for a single node, which leads
        /// every partition it has and makes admin changes itself.
        public var cluster: ClusterContext?
        /// `host:port` at which clients reach this broker (what Metadata says); nil means
        /// the address it listens on.
        public var advertisedAddress: String?
        /// In a cluster: how this broker fetches the partitions it follows.
        public var fetching = ReplicaFetcherSettings()

        public init(dataDirectory: String, transport: GRPCServerConfiguration) {
            self.dataDirectory = dataDirectory
            self.transport = transport
        }
    }

    /// Room for the ProduceRequest around a batch, so that a batch of `max.message.bytes`
    /// always fits in one wire message (`BrokerLimits`).
    public static let produceRequestOverheadBytes = BrokerLimits.defaults.produceRequestOverheadBytes.value

    public let broker: Broker
    public var registry: TopicRegistry { broker.registry }
    public let health: HealthService
    /// The services served, by full name (what health and reflection report).
    public let serviceNames: [String]
    private let server: GRPCServer
    private let logger: Logger
    private let identity: BrokerIdentity
    private let cluster: ClusterContext?
    /// In a cluster, the task keeping local topics, and the fetchers copying the
    /// partitions this broker follows, in step with the metadata.
    private let follower = Mutex<Task<Void, Never>?>(nil)
    private let fetchers: ReplicaFetcherManager?

    /// Opens (and locks) the data directory, loads the topics and opens (recovering)
    /// every partition log; does not bind yet.
    public init(configuration: Configuration, logger: Logger) throws(BrokerError) {
        let ceiling = configuration.transport.maxReceiveMessageBytes - Self.produceRequestOverheadBytes
        guard ceiling >= TopicConfig.defaults.maxMessageBytes else {
            throw BrokerError(
                .invalidConfig,
                "the transport's message limit of \(configuration.transport.maxReceiveMessageBytes) bytes must be at least \(TopicConfig.defaults.maxMessageBytes + Self.produceRequestOverheadBytes) so that a batch of the default max.message.bytes fits")
        }
        let directory = try DataDirectory.open(configuration.dataDirectory)
        var registryConfiguration = TopicRegistry.Configuration()
        registryConfiguration.brokerID = configuration.brokerID
        registryConfiguration.maxMessageBytesCeiling = ceiling
        let leadership = configuration.cluster.map { ClusterLeadership(metadata: $0.metadata, brokerID: configuration.brokerID) }
        broker = try Broker(
            directory: directory, registryConfiguration: registryConfiguration, storage: configuration.storage,
            groupSettings: configuration.groups, leadership: leadership, replication: configuration.replication, logger: logger)
        identity = BrokerIdentity(id: configuration.brokerID, advertised: configuration.advertisedAddress)
        cluster = configuration.cluster
        let broker = self.broker
        fetchers = configuration.cluster.map { _ in
            ReplicaFetcherManager(broker: broker, brokerID: configuration.brokerID, settings: configuration.fetching, logger: logger)
        }

        var names = [BrokerService.serviceName]
        var methods = BrokerService(
            broker: broker, produceLimits: configuration.produceLimits, subscribeLimits: configuration.subscribeLimits,
            identity: identity, cluster: configuration.cluster, logger: logger
        ).methods
        names.append(GroupsService.serviceName)
        methods += GroupsService(groups: broker.groups).methods
        if configuration.testServices {
            names.append(EchoService.serviceName)
            methods += EchoService().methods
        }
        names.append(HealthService.serviceName)
        names += ReflectionService.serviceNames
        let health = HealthService(services: names)
        methods += health.methods
        methods += ReflectionService(servedServices: names).methods

        self.health = health
        self.serviceNames = names
        self.logger = logger
        server = GRPCServer(configuration: configuration.transport, methods: methods, logger: logger)
    }

    /// Binds and starts serving; returns the bound address (the real port when 0 was asked).
    public func start() async throws -> (host: String, port: Int) {
        let address = try await server.start()
        identity.bound(host: address.host, port: address.port)
        broker.startMaintenance()
        if let cluster {
            let follower = LocalTopicFollower(broker: broker, brokerID: identity.id, logger: logger)
            let fetchers = self.fetchers
            // The fetchers after the local topics, so a new topic's logs exist when they look.
            self.follower.withLock {
                $0 = Task { await follower.follow(cluster.metadata) { fetchers?.apply($0) } }
            }
        }
        logger.info("serving", metadata: ["address": "\(address.host):\(address.port)", "services": "\(serviceNames)"])
        return address
    }

    /// Graceful shutdown: health turns NOT_SERVING, then the transport sends GOAWAY, lets
    /// unary calls finish and streams run for the grace period; then every partition log
    /// is closed cleanly and the data directory released.
    public func shutdown() async {
        logger.info("shutting down")
        health.beginShutdown()
        let follower = self.follower.withLock { $0.take() }
        follower?.cancel()
        await follower?.value
        // Before the partitions close: nothing is appended to a closing log.
        await fetchers?.stop()
        broker.beginShutdown()
        await server.shutdown()
        await broker.close()
        registry.directory.close()
        logger.info("shut down")
    }
}
