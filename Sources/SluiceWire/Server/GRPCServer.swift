public import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A gRPC server: listens on TCP, runs one `GRPCConnectionHandler` per connection, and routes
/// calls to `GRPCMethod`s by path.
public final class GRPCServer: Sendable {
    public let configuration: GRPCServerConfiguration
    private let routes: [String: GRPCMethod]
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: ConnectionEntry] = [:]
        var isShuttingDown = false
    }

    private struct ConnectionEntry: @unchecked Sendable {
        let channel: any Channel
        let handler: GRPCConnectionHandler  // only touched on channel.eventLoop
    }

    public init(configuration: GRPCServerConfiguration, methods: [GRPCMethod], logger: Logger) {
        self.configuration = configuration
        var routes: [String: GRPCMethod] = [:]
        for method in methods {
            precondition(routes[method.path] == nil, "duplicate gRPC method \(method.path)")
            routes[method.path] = method
        }
        self.routes = routes
        self.logger = logger
    }

    /// Binds and starts accepting; returns the bound address (the real port when port was 0).
    public func start() async throws -> (host: String, port: Int) {
        let configuration = configuration
        let settings = HTTP2SessionSettings(
            isServer: true, maxConcurrentStreams: configuration.maxConcurrentStreams,
            initialStreamWindowBytes: configuration.initialWindowBytes,
            connectionWindowBytes: configuration.connectionWindowBytes, maxFrameBytes: configuration.maxFrameBytes,
            maxHeaderListBytes: configuration.maxHeaderListBytes, maxOutboundAcks: configuration.maxOutboundAcks,
            resetRateBurst: UInt64(configuration.resetRateBurst),
            resetRatePerSecond: UInt64(configuration.resetRatePerSecond),
            maxContinuations: configuration.maxContinuations)
        var limits = ConnectionLimits(configuration, prefaceTimeout: configuration.prefaceTimeout)
        limits.onInputHeld = configuration.onInputHeld
        let connectionLimits = limits
        let routes = routes
        let logger = logger
        var bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        if let bytes = configuration.socketSendBufferBytes {
            bootstrap = bootstrap.childChannelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(bytes))
        }
        let listener = try await bootstrap
            .childChannelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try GRPCConnectionHandler(
                        role: .server(routes: routes, configuration: configuration), settings: settings,
                        limits: connectionLimits, eventLoop: channel.eventLoop, logger: logger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    self?.register(channel: channel, handler: handler)
                }
            }
            .bind(host: configuration.host, port: configuration.port).get()
        let accepted = state.withLock { state -> Bool in
            guard !state.isShuttingDown else { return false }
            state.listener = listener
            return true
        }
        guard accepted else {
            try? await listener.close()
            throw GRPCStatus(.unavailable, "the server was shut down")
        }
        let port = listener.localAddress?.port ?? configuration.port
        logger.info("gRPC server listening", metadata: ["host": "\(configuration.host)", "port": "\(port)"])
        return (configuration.host, port)
    }

    /// Tests only: the listening port.
    var boundPortForTests: Int {
        state.withLock { $0.listener?.localAddress?.port } ?? configuration.port
    }

    /// Tests only: per connection, the bytes queued for sending and the bytes received but
    /// not yet read by handlers (decoded messages and partial ones).
    func memoryForTests() async -> [(queuedSendBytes: Int, bufferedReceiveBytes: Int)] {
        let connections = state.withLock { Array($0.connections.values) }
        var result: [(queuedSendBytes: Int, bufferedReceiveBytes: Int)] = []
        for entry in connections {
            let sample = try? await entry.channel.eventLoop.submit {
                let handler = entry.handler
                let received = handler.streams.values.reduce(0) {
                    $0 + $1.inbound.bufferedMessageBytes + $1.inbound.partialMessageBytes
                }
                return (handler.budget.queuedBytes, received)
            }.get()
            if let sample { result.append(sample) }
        }
        return result
    }

    /// Must run on the channel's event loop (from the child initializer).
    private func register(channel: any Channel, handler: GRPCConnectionHandler) {
        let key = ObjectIdentifier(channel)
        let entry = ConnectionEntry(channel: channel, handler: handler)
        let draining = state.withLock { state -> Bool in
            state.connections[key] = entry
            return state.isShuttingDown
        }
        handler.onClose = { [weak self] in
            _ = self?.state.withLock { $0.connections.removeValue(forKey: key) }
        }
        if draining {
            handler.beginGracefulShutdown(grace: .zero, unaryLimit: .zero)
        }
    }

    /// Graceful shutdown: stop listening, GOAWAY every connection; unary calls finish,
    /// streaming calls get `shutdownGracePeriod` and then end with UNAVAILABLE; returns once
    /// every connection has closed.
    public func shutdown() async {
        let (listener, connections) = state.withLock { state in
            state.isShuttingDown = true
            return (state.listener, Array(state.connections.values))
        }
        try? await listener?.close()
        let grace = configuration.shutdownGracePeriod
        let unaryLimit = max(configuration.shutdownUnaryLimit, grace)
        for entry in connections {
            entry.channel.eventLoop.execute {
                entry.handler.beginGracefulShutdown(grace: grace, unaryLimit: unaryLimit)
            }
        }
        for entry in connections {
            try? await entry.channel.closeFuture.get()
        }
        logger.info("gRPC server stopped")
    }
}
