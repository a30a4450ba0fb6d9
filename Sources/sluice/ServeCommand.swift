import ArgumentParser
import Dispatch
import Logging
import SluiceBroker
import SluiceCluster
import SluiceService
import SluiceStorage
import SluiceWire
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a single-node broker.",
        discussion: """
            Serves sluice.v1.Broker, grpc.health.v1.Health and gRPC server reflection on --listen, \
            keeping topic metadata in --data-dir. Once listening it prints one line to stdout, \
            "sluice listening on HOST:PORT" (the real port when --listen asks for port 0). \
            SIGTERM or SIGINT shut it down gracefully: health turns NOT_SERVING, GOAWAY is sent, \
            calls in flight get --shutdown-grace seconds to finish; then it exits 0. \
            See docs/operations.md.
            """)

    /// What serving without flags means. Every default below that a library type also has
    /// is read from here, and every limit's from its layer's limits file (`WireLimits`,
    /// `BrokerLimits`), so each is stated once, beside the setting it is the default of.
    private static let defaults = BrokerServer.Configuration(dataDirectory: "", transport: GRPCServerConfiguration())
    private static let wire = WireLimits.defaults
    private static let broker = BrokerLimits.defaults

    @Option(help: "Directory for topic metadata and logs; created if missing, locked while serving.")
    var dataDir: String = "./sluice-data"

    @Option(help: "Address to listen on (host:port; port 0 picks a free port).")
    var listen: HostPort = HostPort(host: "127.0.0.1", port: 9092)

    @Flag(help: "Also serve the test service sluice.test.v1.Echo (for transport tests).")
    var testServices = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical. Logs go to stderr.")
    var logLevel: Logger.Level = .info

    @Option(help: "This broker's id, reported as partition leader and replica.")
    var brokerID: UInt32 = ServeCommand.defaults.brokerID

    @Option(help: .limit(
        "Largest gRPC message accepted, in bytes; larger ones are refused with RESOURCE_EXHAUSTED before allocation. A topic's max.message.bytes can be at most this less \(ServeCommand.broker.produceRequestOverheadBytes.value) bytes.",
        why: ServeCommand.wire.maxReceiveMessageBytes.why))
    var maxMessageBytes: Int = ServeCommand.wire.maxReceiveMessageBytes.value

    @Option(help: .limit("Concurrent streams per connection; more are refused with REFUSED_STREAM.", why: ServeCommand.wire.maxConcurrentStreams.why))
    var maxConcurrentStreams: Int = ServeCommand.wire.maxConcurrentStreams.value

    @Option(help: .limit(
        "Seconds that calls in flight (streams and unary calls) get to finish after a shutdown signal before they end with UNAVAILABLE.",
        why: ServeCommand.wire.shutdownGracePeriod.why))
    var shutdownGrace: Double = ServeCommand.wire.shutdownGracePeriod.value.inSeconds

    @Option(help: .limit("Seconds between keepalive PINGs on an idle connection; 0 disables them.", why: ServeCommand.wire.keepaliveInterval.why))
    var keepaliveInterval: Double = ServeCommand.wire.keepaliveInterval.value?.inSeconds ?? 0

    @Option(help: .limit("Seconds to wait for a keepalive PING's answer before closing the connection.", why: ServeCommand.wire.keepaliveTimeout.why))
    var keepaliveTimeout: Double = ServeCommand.wire.keepaliveTimeout.value.inSeconds

    @Option(help: ArgumentHelp(
        "When partition logs fdatasync: always, never or interval:<ms>.",
        discussion: "always: group commit, every append is synced before subscribers see it. interval:<ms>: a background sync every <ms>. never: the OS writes back when it likes. Produce requests with acks durable/all force a sync covering their batch under every policy."))
    var fsync = FsyncSetting(policy: ServeCommand.defaults.storage.fsyncPolicy)

    @Option(help: .limit(
        "Seconds between background retention passes (deleting old segments, rolling idle ones by segment.ms).",
        why: ServeCommand.broker.maintenanceInterval.why))
    var retentionCheckInterval: Double = ServeCommand.broker.maintenanceInterval.value?.inSeconds ?? 0

    @Option(help: .limit("Sealed segments each partition keeps open besides its active one.", why: ServeCommand.broker.maxOpenSealedSegmentsPerPartition.why))
    var maxOpenSegmentsPerPartition: Int = ServeCommand.broker.maxOpenSealedSegmentsPerPartition.value

    @Option(help: .limit(
        "Milliseconds after which a partition forgets an idempotent producer that stopped appending to it.",
        why: ServeCommand.broker.producerIdExpiryMs.why))
    var producerIdExpiryMs: Int64 = ServeCommand.broker.producerIdExpiryMs.value

    @Option(help: .limit(
        "In a cluster: milliseconds a follower may go without catching up with a partition leader's log end before the leader drops it from the in-sync replicas.",
        why: ServeCommand.broker.replicaLagTimeMaxMs.why))
    var replicaLagTimeMaxMs: Int64 = ServeCommand.broker.replicaLagTimeMaxMs.value

    @Option(help: "For crash tests only: journal every fdatasync to this file, so a killed broker's logs can be cut back to what was synced (`sluice debug cut-to-synced`).")
    var testSyncJournal: String?

    @OptionGroup(title: "Throughput, latency and memory (docs/profiles.md)")
    var tuning: ServeTuningOptions

    @OptionGroup(title: "Cluster (docs/architecture.md, Cluster metadata in etcd)")
    var cluster: ServeClusterOptions

    func validate() throws {
        // In a cluster the broker id also names the broker's range of producer ids.
        if cluster.cluster != nil, !(1...ProducerIDSpace.maxBrokerID).contains(brokerID) {
            throw ValidationError("--broker-id must be 1...\(ProducerIDSpace.maxBrokerID) in a cluster")
        }
        let overhead = BrokerServer.produceRequestOverheadBytes
        guard maxMessageBytes >= TopicConfig.defaults.maxMessageBytes + overhead else {
            throw ValidationError(
                "--max-message-bytes must be at least \(TopicConfig.defaults.maxMessageBytes + overhead) (the default max.message.bytes plus \(overhead))")
        }
        guard maxMessageBytes <= Int(Int32.max) else { throw ValidationError("--max-message-bytes must be below 2 GiB") }
        guard maxConcurrentStreams >= 1 else { throw ValidationError("--max-concurrent-streams must be at least 1") }
        guard shutdownGrace >= 0, shutdownGrace.isFinite else { throw ValidationError("--shutdown-grace must be 0 or more") }
        guard keepaliveInterval >= 0, keepaliveInterval.isFinite else { throw ValidationError("--keepalive-interval must be 0 or more") }
        guard keepaliveTimeout > 0, keepaliveTimeout.isFinite else { throw ValidationError("--keepalive-timeout must be positive") }
        guard retentionCheckInterval > 0, retentionCheckInterval.isFinite else {
            throw ValidationError("--retention-check-interval must be positive")
        }
        guard maxOpenSegmentsPerPartition >= 1 else { throw ValidationError("--max-open-segments-per-partition must be at least 1") }
        guard producerIdExpiryMs >= 1 else { throw ValidationError("--producer-id-expiry-ms must be at least 1") }
        guard replicaLagTimeMaxMs >= 1 else { throw ValidationError("--replica-lag-time-max-ms must be at least 1") }
        try tuning.validate(maxMessageBytes: maxMessageBytes)
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sluice")

        var transport = GRPCServerConfiguration(host: listen.host, port: listen.port)
        transport.maxReceiveMessageBytes = maxMessageBytes
        transport.maxConcurrentStreams = maxConcurrentStreams
        transport.shutdownGracePeriod = .milliseconds(Int64(shutdownGrace * 1000))
        // One bound for the whole shutdown, so a service manager's stop timeout can be set
        // just above it.
        transport.shutdownUnaryLimit = transport.shutdownGracePeriod
        transport.keepaliveInterval = keepaliveInterval == 0 ? nil : .milliseconds(Int64(keepaliveInterval * 1000))
        transport.keepaliveTimeout = .milliseconds(Int64(keepaliveTimeout * 1000))
        var configuration = BrokerServer.Configuration(dataDirectory: dataDir, transport: transport)
        configuration.testServices = testServices
        configuration.brokerID = brokerID
        configuration.advertisedAddress = cluster.advertisedAddress?.description
        configuration.storage.fsyncPolicy = fsync.policy
        configuration.storage.maintenanceInterval = .milliseconds(Int64(retentionCheckInterval * 1000))
        configuration.storage.maxOpenSealedSegmentsPerPartition = maxOpenSegmentsPerPartition
        configuration.storage.producerIdExpiryMs = producerIdExpiryMs
        if let journal = testSyncJournal {
            // Test only: record what was synced so a test can SIGKILL this process and cut
            // the logs back to their synced state (`sluice debug cut-to-synced`).
            do {
                configuration.storage.fileSystem = try DataDirectory.recordingSyncs(of: dataDir, journal: journal)
            } catch {
                fail("cannot start the sync journal \(journal): \(error)")
            }
        }
        tuning.apply(to: &configuration)
        // In a cluster the server answers from the metadata cache from its first request;
        // the membership that feeds it and elects a controller exists only once it listens.
        let membershipBox = Mutex<ClusterMembership?>(nil)
        let metadata = cluster.emptyMetadataCache()
        if let metadata, let address = cluster.cluster {
            configuration.cluster = ClusterContext(metadata: metadata, localController: {
                membershipBox.withLock { $0?.localController }
            })
            // The copies this broker keeps are replicas: their high watermark is the ISR's.
            configuration.storage.replicated = true
            configuration.replication.replicaLagTimeMaxMs = replicaLagTimeMaxMs
            configuration.replication.isrChanger = MembershipISRChanger(
                brokerID: brokerID, keys: ClusterKeys(clusterName: address.clusterName),
                client: { membershipBox.withLock { $0?.client } })
        }

        // Signals are taken before the socket is bound, so a signal right after the
        // "listening" line cannot kill the process ungracefully.
        let shutdownSignal = ShutdownSignal()
        let server: BrokerServer
        let address: (host: String, port: Int)
        do {
            server = try BrokerServer(configuration: configuration, logger: logger)
        } catch {
            fail("cannot start: \(error.message)")
        }
        do {
            address = try await server.start()
        } catch {
            await server.shutdown()
            fail("cannot listen on \(listen): \(error)")
        }
        let shown = HostPort(host: address.host, port: address.port)
        // Registered before the line below, so whoever waits for it finds the broker in etcd.
        let membership: ClusterMembership?
        do {
            membership = try await cluster.join(brokerID: brokerID, listening: shown, metadata: metadata, logger: logger)
            membershipBox.withLock { $0 = membership }
        } catch {
            await server.shutdown()
            fail("\(error)")
        }
        // Written straight to the descriptor, unbuffered, so a reader of a pipe sees it now.
        StandardStreams.emit("sluice listening on \(shown)\n", to: STDOUT_FILENO)

        let ending = await ServeEnding.first(of: shutdownSignal, membership: membership)
        let signal: String
        switch ending {
        case .signal(let name):
            signal = name
        case .expelled(let reason):
            // Another broker holds the id now: this one leads nothing it may hand over.
            await membership?.leave(brokerID: brokerID, handOver: nil, logger: logger)
            await server.shutdown()
            fail(reason)
        }
        logger.notice("received \(signal), shutting down gracefully", metadata: ["grace": "\(shutdownGrace)s"])
        // A second signal means the operator will not wait for the hand-over or the grace period.
        let impatience = Task {
            let again = await shutdownSignal.wait()
            if !Task.isCancelled { fail("received \(again) again, exiting without waiting for open streams") }
        }
        // Leaving first lets the cluster move leadership away while this broker still
        // serves (a controlled shutdown).
        let handOver: Duration? = cluster.controlledShutdownSeconds > 0 ? .seconds(cluster.controlledShutdownSeconds) : nil
        await membership?.leave(brokerID: brokerID, handOver: handOver, logger: logger)
        await server.shutdown()
        impatience.cancel()
    }
}

/// `--fsync always|never|interval:<ms>`.
struct FsyncSetting: ExpressibleByArgument, Sendable {
    var policy: FsyncPolicy

    init(policy: FsyncPolicy) { self.policy = policy }

    init?(argument: String) {
        switch argument {
        case "always": policy = .always
        case "never": policy = .never
        default:
            guard argument.hasPrefix("interval:"), let milliseconds = Int(argument.dropFirst("interval:".count)),
                  milliseconds > 0 else { return nil }
            policy = .interval(milliseconds: milliseconds)
        }
    }

    var defaultValueDescription: String {
        switch policy {
        case .always: "always"
        case .never: "never"
        case .interval(let milliseconds): "interval:\(milliseconds)"
        }
    }
}

extension Duration {
    /// Whole and fractional seconds, as the command line's time flags take them.
    var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// One line on stderr and exit status 1.
func fail(_ message: String) -> Never {
    StandardStreams.emit("sluice: \(message)\n", to: STDERR_FILENO)
    exit(1)
}

enum StandardStreams {
    /// Writes all of `text` to a descriptor, unbuffered.
    static func emit(_ text: String, to descriptor: Int32) {
        // Anything print() buffered goes first, to keep the order.
        fflush(nil)
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            bytes = bytes.dropFirst(count)
        }
    }
}

/// Waits for SIGTERM or SIGINT. Their default actions are switched off so the process
/// outlives the signal and shuts down in order.
final class ShutdownSignal {
    private let sources: [any DispatchSourceSignal]
    private let stream: AsyncStream<String>

    init() {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.stream = stream
        var sources: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(name) }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func wait() async -> String {
        for await name in stream { return name }
        return "end of signal stream"
    }

    deinit {
        for source in sources { source.cancel() }
    }
}
