import Logging
import SluiceBroker
import SluiceWire

/// A single-node broker: its data directory, topic registry and gRPC services on one
/// `GRPCServer`. `sluice serve` runs one; tests run one in-process on port 0.
public final class BrokerServer: Sendable {
    public struct Configuration: Sendable {
        public var dataDirectory: String
        public var transport: GRPCServerConfiguration
        /// Also serve `sluice.test.v1.Echo`.
        public var testServices: Bool = false
        public var brokerID: UInt32 = 1

        public init(dataDirectory: String, transport: GRPCServerConfiguration) {
            self.dataDirectory = dataDirectory
            self.transport = transport
        }
    }

    /// Room for the ProduceRequest around a batch (topic name of up to 249 bytes, the
    /// scalar fields and the RecordBatch header fields take well under this), so that a
    /// batch of `max.message.bytes` always fits in one wire message.
    public static let produceRequestOverheadBytes = 1024

    public let registry: TopicRegistry
    public let health: HealthService
    /// The services served, by full name (what health and reflection report).
    public let serviceNames: [String]
    private let server: GRPCServer
    private let logger: Logger

    /// Opens (and locks) the data directory and loads the topics; does not bind yet.
    /// `partitionOffsets` is where describe's offsets come from (the storage engine, once
    /// it is wired in; all zero until then).
    public init(configuration: Configuration, partitionOffsets: any PartitionOffsetsSource = NoPartitionLogs(),
                logger: Logger) throws(BrokerError) {
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
        registry = try TopicRegistry(
            directory: directory, configuration: registryConfiguration, partitionOffsets: partitionOffsets, logger: logger)

        var names = [BrokerService.serviceName]
        var methods = BrokerService(registry: registry).methods
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
        logger.info("serving", metadata: ["address": "\(address.host):\(address.port)", "services": "\(serviceNames)"])
        return address
    }

    /// Graceful shutdown: health turns NOT_SERVING, then the transport sends GOAWAY, lets
    /// unary calls finish and streams run for the grace period; then the data directory
    /// is released.
    public func shutdown() async {
        logger.info("shutting down")
        health.beginShutdown()
        await server.shutdown()
        registry.directory.close()
        logger.info("shut down")
    }
}
