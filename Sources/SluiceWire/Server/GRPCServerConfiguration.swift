/// Every limit and timer of a `GRPCServer`. docs/wire.md explains each and its default.
public struct GRPCServerConfiguration: Sendable {
    public var host: String
    /// 0 picks an ephemeral port; `GRPCServer.start()` returns the bound one.
    public var port: Int
    /// SETTINGS_MAX_CONCURRENT_STREAMS per connection; streams above it are refused
    /// (RST_STREAM REFUSED_STREAM, by nghttp2).
    public var maxConcurrentStreams: Int = 100
    /// Largest request message; checked from the 5-byte prefix before any payload is
    /// buffered. Larger: RESOURCE_EXHAUSTED.
    public var maxReceiveMessageBytes: Int = 4 * 1024 * 1024
    /// SETTINGS_MAX_HEADER_LIST_SIZE, also enforced per stream (RST_STREAM above it).
    public var maxHeaderListBytes: Int = 16 * 1024
    /// SETTINGS_INITIAL_WINDOW_SIZE: bytes a client may send per stream before the handler reads.
    public var initialWindowBytes: Int = 1024 * 1024
    /// The connection-level receive window (all streams together).
    public var connectionWindowBytes: Int = 8 * 1024 * 1024
    /// SETTINGS_MAX_FRAME_SIZE we accept; also the largest DATA frame we send when the
    /// client accepts it (it bounds nghttp2's frame buffer).
    public var maxFrameBytes: Int = 16 * 1024
    /// Decoded request messages held per stream for a handler that has not read them yet;
    /// beyond it the stream's window is no longer replenished.
    public var inboundBufferBytes: Int = 256 * 1024
    /// Bytes of responses written by handlers but not yet taken by HTTP/2 (peer windows
    /// closed or socket slow), per connection. `GRPCResponseWriter.write` suspends beyond it.
    public var sendQueueBytes: Int = 1024 * 1024
    /// How long writers may stay blocked with no byte leaving the send queue before the
    /// connection is closed (a peer that stopped reading).
    public var sendStallTimeout: Duration = .seconds(300)
    /// A connection that has not sent a valid HTTP/2 preface (magic + SETTINGS) by then is closed.
    public var prefaceTimeout: Duration = .seconds(10)
    /// PING interval; nil disables keepalive.
    public var keepaliveInterval: Duration? = .seconds(120)
    /// A PING not acknowledged within this closes the connection.
    public var keepaliveTimeout: Duration = .seconds(20)
    /// On `shutdown()`, streaming calls get this long to finish, then end with UNAVAILABLE.
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// On `shutdown()`, unary calls are let to finish (they are short), up to this long.
    public var shutdownUnaryLimit: Duration = .seconds(30)
    /// Outstanding PING/SETTINGS acks nghttp2 queues before dropping a flooding peer.
    public var maxOutboundAcks: Int = 1000
    /// RST_STREAM rate limit (token bucket): burst and tokens per second (rapid reset).
    public var resetRateBurst: Int = 1000
    public var resetRatePerSecond: Int = 33
    /// CONTINUATION frames allowed after one HEADERS frame.
    public var maxContinuations: Int = 8

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
