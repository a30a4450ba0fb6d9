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

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        self = nanos.overflow ? .nanoseconds(.max) : .nanoseconds(nanos.partialValue + attoseconds / 1_000_000_000)
    }
}
