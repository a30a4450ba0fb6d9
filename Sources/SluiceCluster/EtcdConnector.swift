public import Logging
import NIOCore
import SluiceAPI
public import SluiceWire

/// The one connection an etcd client talks through, to one of several etcd members, with
/// failover: when the connection is lost (etcd closed it, a call found it gone, or etcd
/// answered UNAVAILABLE: no leader, a timed-out proposal), the next call connects to the
/// next endpoint of the list, trying each once in turn.
///
/// Failover moves on from a member, never back to a preferred one: every member of an
/// etcd cluster serves the same linearizable reads and writes, so any live one will do.
public actor EtcdConnector {
    /// Settings shared by every connection.
    public struct Configuration: Sendable {
        /// The deadline sent with every unary request (grpc-timeout).
        public var requestTimeout = ClusterLimits.defaults.etcdRequestTimeout.value
        /// TCP connect plus etcd's HTTP/2 SETTINGS, per endpoint tried.
        public var connectTimeout = ClusterLimits.defaults.etcdConnectTimeout.value
        /// HTTP/2 PING interval; nil sends none. etcd closes a connection that pings more
        /// often than its `--grpc-keepalive-min-time` (5 s by default) or pings with no
        /// stream open; leave nil unless etcd is configured to accept it.
        public var keepaliveInterval: Duration?

        public init() {}
    }

    public nonisolated let endpoints: [EtcdEndpoint]
    public nonisolated let configuration: Configuration
    let logger: Logger

    /// The endpoint the next connection attempt starts with.
    private var nextEndpoint = 0
    private var current: GRPCClientConnection?
    /// The attempt in progress, shared by every caller waiting for a connection.
    private var connecting: Task<GRPCClientConnection, any Error>?
    private var isClosed = false

    public init(endpoints: [EtcdEndpoint], configuration: Configuration = Configuration(), logger: Logger) {
        precondition(!endpoints.isEmpty, "an etcd client needs at least one endpoint")
        precondition(configuration.requestTimeout > .zero, "a request timeout must be positive")
        self.endpoints = endpoints
        self.configuration = configuration
        self.logger = logger
    }

    /// The current connection, connecting first if there is none. Throws UNAVAILABLE
    /// naming every endpoint's failure when none answers.
    public func connection() async throws -> GRPCClientConnection {
        guard !isClosed else { throw Self.closedStatus }
        if let current { return current }
        let attempt: Task<GRPCClientConnection, any Error>
        if let connecting {
            attempt = connecting
        } else {
            attempt = Task { try await self.connectToNextEndpoint() }
            connecting = attempt
        }
        return try await attempt.value
    }

    /// Reports that `connection` failed (a call on it ended UNAVAILABLE, or answered
    /// nothing in time): it is closed, and the next call connects to the next endpoint.
    /// A report about a connection already replaced changes nothing.
    public func failed(_ connection: GRPCClientConnection) {
        guard current === connection else { return }
        current = nil
        nextEndpoint = (nextEndpoint + 1) % endpoints.count
        logger.info("etcd connection lost; the next call tries \(endpoints[nextEndpoint])")
        Task { await connection.close() }
    }

    /// Closes the connection; calls in flight end with UNAVAILABLE, later ones fail.
    public func close() async {
        isClosed = true
        connecting?.cancel()
        let connection = current
        current = nil
        await connection?.close()
    }

    private func connectToNextEndpoint() async throws -> GRPCClientConnection {
        defer { connecting = nil }
        var failures: [String] = []
        for step in 0..<endpoints.count {
            let index = (nextEndpoint + step) % endpoints.count
            let endpoint = endpoints[index]
            var transport = GRPCClientConfiguration(host: endpoint.host, port: endpoint.port)
            transport.connectTimeout = configuration.connectTimeout
            transport.keepaliveInterval = configuration.keepaliveInterval
            do {
                let connection = try await GRPCClientConnection.connect(transport, logger: logger)
                guard !isClosed else {
                    await connection.close()
                    throw Self.closedStatus
                }
                nextEndpoint = index
                current = connection
                // A connection etcd closes (a restart, a member leaving) is dropped at
                // once, before a call has to find it dead.
                Task { [weak self] in
                    await connection.closed()
                    await self?.failed(connection)
                }
                return connection
            } catch let status as GRPCStatus where status == Self.closedStatus {
                throw status
            } catch {
                failures.append("\(endpoint): \(error)")
            }
        }
        throw GRPCStatus(.unavailable, "no etcd endpoint answered (\(failures.joined(separator: "; ")))")
    }

    static let closedStatus = GRPCStatus(.unavailable, "the etcd client is closed")

    /// One request, one response, with the configured deadline. UNAVAILABLE marks the
    /// connection failed; an `idempotent` request is then sent again to the next endpoints
    /// (each at most once), any other is not, since etcd may have applied it.
    nonisolated func unary<Response: ProtobufMessage>(
        _ path: String, _ request: some ProtobufMessage, idempotent: Bool, as: Response.Type = Response.self
    ) async throws -> Response {
        let bytes = request.protobufBytes()
        let attempts = idempotent ? endpoints.count : 1
        var lastStatus = GRPCStatus(.unavailable, "not sent")
        for _ in 0..<attempts {
            let connection = try await connection()
            let answer: ByteBuffer
            do {
                answer = try await connection.unary(path: path, request: bytes, timeout: configuration.requestTimeout)
            } catch let status as GRPCStatus where status.code == .unavailable {
                await failed(connection)
                lastStatus = status
                continue
            }
            do {
                return try Response(protobuf: answer)
            } catch {
                throw GRPCStatus(.internalError, "etcd's answer to \(path) is not valid protobuf: \(error)")
            }
        }
        throw lastStatus
    }

    /// Opens a streaming call (Watch, LeaseKeepAlive), connecting to the next endpoint if
    /// the current connection refuses it as gone. The call carries `hasleader: true`, so a
    /// member cut off from its cluster's leader ends it with UNAVAILABLE instead of serving
    /// a stream that would never see another event or renewal.
    nonisolated func openStream(_ path: String) async throws -> (call: GRPCClientCall, connection: GRPCClientConnection) {
        var lastStatus = GRPCStatus(.unavailable, "not opened")
        for _ in 0..<endpoints.count {
            let connection = try await connection()
            do {
                return (try await connection.makeCall(path: path, metadata: ["hasleader": "true"]), connection)
            } catch let status as GRPCStatus where status.code == .unavailable {
                await failed(connection)
                lastStatus = status
            }
        }
        throw lastStatus
    }
}
