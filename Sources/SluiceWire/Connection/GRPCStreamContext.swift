import NIOCore

/// Everything the connection tracks for one HTTP/2 stream carrying one gRPC call, on either
/// side. Owned by `GRPCConnectionHandler` and touched only on its event loop.
final class GRPCStreamContext {
    /// 0 until a client stream has been submitted.
    var id: Int32
    var inbound: InboundMessageBuffer
    var outbound = OutboundMessageQueue()
    /// A reader waiting for the next message (at most one: streams have a single consumer).
    var readWaiter: EventLoopPromise<ByteBuffer?>?
    /// A writer waiting for room in the send budget (at most one per stream), with its
    /// message (not yet framed).
    var pendingWrite: (message: ByteBuffer, promise: EventLoopPromise<Void>)?
    /// The call's outcome, once known. Server: the status sent. Client: the status received
    /// (or made up locally on cancel, deadline, reset). Set exactly once.
    var status: GRPCStatus?
    /// Client: delivered to readers only after the buffered messages (trailers arrived in order).
    /// Server: the request half ended (END_STREAM) or failed.
    var readEnd: Result<Void, GRPCStatus>?
    /// The HTTP/2 stream is closed (after on_stream_close).
    var isClosed = false
    var deadlineTimer: Scheduled<Void>?

    // Received headers of the current HEADERS block.
    var headerBlock: [(name: String, value: String)] = []
    var headerBlockBytes = 0

    // Server side.
    var handlerTask: Task<Void, Never>?
    var methodKind: GRPCMethod.Kind?
    var responseHeadersSent = false
    var initialMetadata = GRPCMetadata()
    var trailingMetadata = GRPCMetadata()

    // Client side.
    var responseHeadersReceived = false
    var responseMetadata = GRPCMetadata()
    var finished: EventLoopPromise<GRPCConnectionHandler.CallOutcome>?

    init(id: Int32, inbound: InboundMessageBuffer) {
        self.id = id
        self.inbound = inbound
    }
}
