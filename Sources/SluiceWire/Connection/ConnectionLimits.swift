import NIOCore

/// The limits and timers both sides of a connection share, taken from the server or client
/// configuration (whose doc comments, and docs/wire.md, give the defaults).
struct ConnectionLimits {
    var maxReceiveMessageBytes: Int
    var maxHeaderListBytes: Int
    var inboundBufferBytes: Int
    var sendQueueBytes: Int
    var sendStallTimeout: Duration
    var prefaceTimeout: Duration
    var keepaliveInterval: Duration?
    var keepaliveTimeout: Duration
    /// Bytes of frames serialised per pass before checking socket writability again.
    var outputChunkBytes = WireLimits.defaults.outputChunkBytes.value
    /// Tests only: observes the moment a writer blocks on the send budget.
    var onWriterBlocked: (@Sendable () -> Void)?
    /// Tests only: observes the moment received input is held back (`heldInput`).
    var onInputHeld: (@Sendable () -> Void)?
}

/// What a server's and a client's configuration both set for each of their connections.
protocol GRPCConnectionSettings {
    var maxReceiveMessageBytes: Int { get }
    var maxHeaderListBytes: Int { get }
    var inboundBufferBytes: Int { get }
    var sendQueueBytes: Int { get }
    var sendStallTimeout: Duration { get }
    var keepaliveInterval: Duration? { get }
    var keepaliveTimeout: Duration { get }
    var onWriterBlocked: (@Sendable () -> Void)? { get }
}

extension GRPCServerConfiguration: GRPCConnectionSettings {}
extension GRPCClientConfiguration: GRPCConnectionSettings {}

extension ConnectionLimits {
    /// The limits of a connection made with `configuration`. `prefaceTimeout` bounds the
    /// wait for the peer's first frames: a server's preface timeout, a client's connect timeout.
    init(_ configuration: some GRPCConnectionSettings, prefaceTimeout: Duration) {
        self.init(
            maxReceiveMessageBytes: configuration.maxReceiveMessageBytes,
            maxHeaderListBytes: configuration.maxHeaderListBytes, inboundBufferBytes: configuration.inboundBufferBytes,
            sendQueueBytes: configuration.sendQueueBytes, sendStallTimeout: configuration.sendStallTimeout,
            prefaceTimeout: prefaceTimeout, keepaliveInterval: configuration.keepaliveInterval,
            keepaliveTimeout: configuration.keepaliveTimeout)
        onWriterBlocked = configuration.onWriterBlocked
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        self = nanos.overflow ? .nanoseconds(.max) : .nanoseconds(nanos.partialValue + attoseconds / 1_000_000_000)
    }
}
