/// Settings of one client connection. The defaults, and why each is what it is, are
/// `WireLimits`'s (docs/limits.md); docs/wire.md explains how each is enforced.
public struct GRPCClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// `:authority` sent with every call; "host:port" when nil.
    public var authority: String?
    /// Largest response message, checked from the 5-byte prefix: RESOURCE_EXHAUSTED above it.
    public var maxReceiveMessageBytes: Int = WireLimits.defaults.maxReceiveMessageBytes.value
    /// TCP connect plus the server's HTTP/2 SETTINGS must arrive within this.
    public var connectTimeout: Duration = WireLimits.defaults.connectTimeout.value
    /// PING interval; nil (the default) sends none, because gRPC servers penalise
    /// frequent pings (grpc-go's default policy allows one per 5 minutes).
    public var keepaliveInterval: Duration? = WireLimits.defaults.clientKeepaliveInterval.value
    public var keepaliveTimeout: Duration = WireLimits.defaults.keepaliveTimeout.value
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise: response bytes per stream before we read.
    public var initialWindowBytes: Int = WireLimits.defaults.initialWindowBytes.value
    public var connectionWindowBytes: Int = WireLimits.defaults.connectionWindowBytes.value
    /// SETTINGS_MAX_FRAME_SIZE we accept; also the largest DATA frame we send when the
    /// server accepts it (it bounds nghttp2's frame buffer).
    public var maxFrameBytes: Int = WireLimits.defaults.maxFrameBytes.value
    public var maxHeaderListBytes: Int = WireLimits.defaults.maxHeaderListBytes.value
    /// Decoded responses held per call for a reader that has not taken them yet.
    public var inboundBufferBytes: Int = WireLimits.defaults.inboundBufferBytes.value
    /// Bytes of requests queued per connection before `GRPCClientCall.send` suspends.
    public var sendQueueBytes: Int = WireLimits.defaults.sendQueueBytes.value
    /// Senders blocked this long with no progress close the connection.
    public var sendStallTimeout: Duration = WireLimits.defaults.sendStallTimeout.value

    /// Tests only: false sends grpc-timeout but leaves enforcing it to the server.
    var enforcesDeadlineLocally = true
    /// Tests only: called on the event loop each time a sender starts waiting for send room.
    var onWriterBlocked: (@Sendable () -> Void)?

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}
