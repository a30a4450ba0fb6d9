public import Logging
public import NIOCore
import NIOPosix

/// One TCP connection to a gRPC server, multiplexing calls as HTTP/2 streams.
public final class GRPCClientConnection: Sendable {
    private let channel: any Channel
    private let connection: LoopBoundHandler
    public let configuration: GRPCClientConfiguration

    private init(channel: any Channel, connection: LoopBoundHandler, configuration: GRPCClientConfiguration) {
        self.channel = channel
        self.connection = connection
        self.configuration = configuration
    }

    /// Connects and waits for the server's HTTP/2 SETTINGS, so the first call already knows
    /// the server's limits.
    public static func connect(_ configuration: GRPCClientConfiguration, logger: Logger) async throws
        -> GRPCClientConnection
    {
        let authority = configuration.authority ?? "\(configuration.host):\(configuration.port)"
        let settings = HTTP2SessionSettings(
            isServer: false, maxConcurrentStreams: WireLimits.defaults.maxConcurrentStreams.value, initialStreamWindowBytes: configuration.initialWindowBytes,
            connectionWindowBytes: configuration.connectionWindowBytes, maxFrameBytes: configuration.maxFrameBytes,
            maxHeaderListBytes: configuration.maxHeaderListBytes)
        let connectionLimits = ConnectionLimits(configuration, prefaceTimeout: configuration.connectTimeout)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        var logger = logger
                        logger[metadataKey: "grpc.server"] = "\(authority)"
                        let handler = try GRPCConnectionHandler(
                            role: .client(
                                authority: authority,
                                enforcesDeadlineLocally: configuration.enforcesDeadlineLocally), settings: settings, limits: connectionLimits,
                            eventLoop: channel.eventLoop, logger: logger)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(host: configuration.host, port: configuration.port).get()
        } catch {
            throw GRPCStatus(.unavailable, "cannot connect to \(authority): \(error)")
        }
        let bound: LoopBoundHandler
        do {
            bound = try await channel.eventLoop.submit {
                LoopBoundHandler(try channel.pipeline.syncOperations.handler(type: GRPCConnectionHandler.self))
            }.get()
        } catch {
            // A connection the server closed at once has an empty pipeline already.
            channel.close(promise: nil)
            throw GRPCStatus(.unavailable, "connection to \(authority) closed during setup")
        }
        do {
            try await channel.eventLoop.flatSubmit { bound.handler.prefacePromise.futureResult }.get()
        } catch {
            channel.close(promise: nil)
            throw GRPCStatus(.unavailable, "no HTTP/2 settings from \(authority)")
        }
        return GRPCClientConnection(channel: channel, connection: bound, configuration: configuration)
    }

    /// Opens a call of any kind. Throws UNAVAILABLE if the connection is closed or going away,
    /// RESOURCE_EXHAUSTED if the server's concurrent-stream limit is reached.
    public func makeCall(path: String, metadata: GRPCMetadata = [:], timeout: Duration? = nil) async throws
        -> GRPCClientCall
    {
        try await open(path: path, metadata: metadata, timeout: timeout, onlyMessage: nil).call
    }

    private func open(path: String, metadata: GRPCMetadata, timeout: Duration?, onlyMessage: ByteBuffer?)
        async throws -> (call: GRPCClientCall, sent: Bool)
    {
        let connection = connection
        let loop = channel.eventLoop
        let opened = try await loop.submit { () throws -> StreamContextBox in
            let (stream, sent) = try connection.handler.startClientCall(
                path: path, metadata: metadata, timeout: timeout, onlyMessage: onlyMessage)
            return StreamContextBox(stream, sent: sent)
        }.get()
        let handle = StreamHandle(loop: loop, connection: connection.handler, stream: opened.stream)
        return (GRPCClientCall(handle: handle), opened.sent)
    }

    /// One request, one response. Throws `GRPCStatus` for any non-OK outcome.
    public func unary(path: String, request: ByteBuffer, metadata: GRPCMetadata = [:], timeout: Duration? = nil)
        async throws -> ByteBuffer
    {
        // One hop opens the stream and queues the request with END_STREAM when there is room.
        let (call, sent) = try await open(
            path: path, metadata: metadata, timeout: timeout, onlyMessage: request)
        if !sent {
            try await call.send(request)
            try await call.finishSending()
        }
        var response: ByteBuffer?
        for try await message in call.responses {
            guard response == nil else {
                call.cancel()
                throw GRPCStatus(.internalError, "a unary call received more than one response")
            }
            response = message
        }
        guard let response else { throw GRPCStatus(.internalError, "a unary call received no response") }
        return response
    }

    /// Closes the connection; calls in flight end with UNAVAILABLE.
    public func close() async {
        try? await channel.close()
    }

    /// Completes when the connection has closed (by either side).
    public func closed() async {
        try? await channel.closeFuture.get()
    }
}

/// Carries loop-confined references across the `submit` boundary; only dereferenced on the loop.
struct LoopBoundHandler: @unchecked Sendable {
    let handler: GRPCConnectionHandler
    init(_ handler: GRPCConnectionHandler) { self.handler = handler }
}

struct StreamContextBox: @unchecked Sendable {
    let stream: GRPCStreamContext
    let sent: Bool
    init(_ stream: GRPCStreamContext, sent: Bool) {
        self.stream = stream
        self.sent = sent
    }
}
