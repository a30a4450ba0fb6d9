/// What a handler knows about its call.
public struct ServerCallContext: Sendable {
    /// The method path, e.g. "/sluice.v1.Broker/Produce".
    public var path: String
    /// The client's custom metadata (reserved headers such as `grpc-timeout` removed).
    public var metadata: GRPCMetadata
    /// When the client's `grpc-timeout` runs out; the server cancels the handler then.
    public var deadline: ContinuousClock.Instant?
    /// The peer's socket address, e.g. "[IPv4]127.0.0.1/127.0.0.1:53412".
    public var remoteAddress: String?

    public init(path: String, metadata: GRPCMetadata, deadline: ContinuousClock.Instant?, remoteAddress: String?) {
        self.path = path
        self.metadata = metadata
        self.deadline = deadline
        self.remoteAddress = remoteAddress
    }
}
