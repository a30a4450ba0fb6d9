/// Every limit and timer of a `GRPCServer`. The defaults, and why each is what it is, are
/// `WireLimits`'s (docs/limits.md); docs/wire.md explains how each is enforced.
public struct GRPCServerConfiguration: Sendable {
    public var host: String
    /// 0 picks an ephemeral port; `GRPCServer.start()` returns the bound one.
    public var port: Int
    /// SETTINGS_MAX_CONCURRENT_STREAMS per connection; streams above it are refused
    /// (RST_STREAM REFUSED_STREAM, by nghttp2).
    public var maxConcurrentStreams: Int = WireLimits.defaults.maxConcurrentStreams.value
    /// Largest request message; checked from the 5-byte prefix before any payload is
    /// buffered. Larger: RESOURCE_EXHAUSTED.
    public var maxReceiveMessageBytes: Int = WireLimits.defaults.maxReceiveMessageBytes.value
    /// SETTINGS_MAX_HEADER_LIST_SIZE, also enforced per stream (RST_STREAM above it).
    public var maxHeaderListBytes: Int = WireLimits.defaults.maxHeaderListBytes.value
    /// SETTINGS_INITIAL_WINDOW_SIZE: bytes a client may send per stream before the handler reads.
    public var initialWindowBytes: Int = WireLimits.defaults.initialWindowBytes.value
    /// The connection-level receive window (all streams together).
    public var connectionWindowBytes: Int = WireLimits.defaults.connectionWindowBytes.value
    /// SETTINGS_MAX_FRAME_SIZE we accept; also the largest DATA frame we send when the
    /// client accepts it (it bounds nghttp2's frame buffer).
    public var maxFrameBytes: Int = WireLimits.defaults.maxFrameBytes.value
    /// Decoded request messages held per stream for a handler that has not read them yet;
    /// beyond it the stream's window is no longer replenished.
    public var inboundBufferBytes: Int = WireLimits.defaults.inboundBufferBytes.value
    /// Bytes of responses written by handlers but not yet taken by HTTP/2 (peer windows
    /// closed or socket slow), per connection. `GRPCResponseWriter.write` suspends beyond it.
    public var sendQueueBytes: Int = WireLimits.defaults.sendQueueBytes.value
    /// How long writers may stay blocked with no byte leaving the send queue before the
    /// connection is closed (a peer that stopped reading).
    public var sendStallTimeout: Duration = WireLimits.defaults.sendStallTimeout.value
    /// A connection that has not sent a valid HTTP/2 preface (magic + SETTINGS) by then is closed.
    public var prefaceTimeout: Duration = WireLimits.defaults.prefaceTimeout.value
    /// PING interval; nil disables keepalive.
    public var keepaliveInterval: Duration? = WireLimits.defaults.keepaliveInterval.value
    /// A PING not acknowledged within this closes the connection.
    public var keepaliveTimeout: Duration = WireLimits.defaults.keepaliveTimeout.value
    /// On `shutdown()`, streaming calls get this long to finish, then end with UNAVAILABLE.
    public var shutdownGracePeriod: Duration = WireLimits.defaults.shutdownGracePeriod.value
    /// On `shutdown()`, unary calls are let to finish (they are short), up to this long.
    public var shutdownUnaryLimit: Duration = WireLimits.defaults.shutdownUnaryLimit.value
    /// Outstanding PING/SETTINGS acks nghttp2 queues before dropping a flooding peer.
    public var maxOutboundAcks: Int = WireLimits.defaults.maxOutboundAcks.value
    /// RST_STREAM rate limit (token bucket): burst and tokens per second (rapid reset).
    public var resetRateBurst: Int = WireLimits.defaults.resetRateBurst.value
    public var resetRatePerSecond: Int = WireLimits.defaults.resetRatePerSecond.value
    /// CONTINUATION frames allowed after one HEADERS frame.
    public var maxContinuations: Int = WireLimits.defaults.maxContinuations.value

    /// Tests only: called on the event loop each time a writer starts waiting for send room.
    var onWriterBlocked: (@Sendable () -> Void)?
    /// Tests only: called on the event loop each time a connection holds received input
    /// back (refusals wait for a writable socket; `GRPCConnectionHandler.heldInput`).
    var onInputHeld: (@Sendable () -> Void)?
    /// Tests only: SO_SNDBUF of accepted connections, so that a test can fill a socket's
    /// send buffer without writing megabytes (nil: the kernel's default).
    var socketSendBufferBytes: Int?

    public init(host: String = "127.0.0.1", port: Int = 0) {
        self.host = host
        self.port = port
    }
}
