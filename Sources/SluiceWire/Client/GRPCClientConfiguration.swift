/// Settings of one client connection. docs/wire.md explains each and its default.
public struct GRPCClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// `:authority` sent with every call; "host:port" when nil.
    public var authority: String?
    /// Largest response message, checked from the 5-byte prefix: RESOURCE_EXHAUSTED above it.
    public var maxReceiveMessageBytes: Int = 4 * 1024 * 1024
    /// TCP connect plus the server's HTTP/2 SETTINGS must arrive within this.
    public var connectTimeout: Duration = .seconds(10)
    /// PING interval; nil (the default) sends none, because gRPC servers penalise
    /// frequent pings (grpc-go's default policy allows one per 5 minutes).
    public var keepaliveInterval: Duration?
    public var keepaliveTimeout: Duration = .seconds(20)
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise: response bytes per stream before we read.
    public var initialWindowBytes: Int = 1024 * 1024
    public var connectionWindowBytes: Int = 8 * 1024 * 1024
    /// SETTINGS_MAX_FRAME_SIZE we accept; also the largest DATA frame we send when the
    /// server accepts it (it bounds nghttp2's frame buffer).
    public var maxFrameBytes: Int = 16 * 1024
    public var maxHeaderListBytes: Int = 16 * 1024
    /// Decoded responses held per call for a reader that has not taken them yet.
    public var inboundBufferBytes: Int = 256 * 1024
    /// Bytes of requests queued per connection before `GRPCClientCall.send` suspends.
    public var sendQueueBytes: Int = 1024 * 1024
    /// Senders blocked this long with no progress close the connection.
    public var sendStallTimeout: Duration = .seconds(300)

    /// Tests only: false sends grpc-timeout but leaves enforcing it to the server.
    var enforcesDeadlineLocally = true
    /// Tests only: called on the event loop each time a sender starts waiting for send room.
    var onWriterBlocked: (@Sendable () -> Void)?

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
}
