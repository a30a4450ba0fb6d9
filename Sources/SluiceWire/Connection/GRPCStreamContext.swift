import NIOCore

/// One HTTP/2 stream carrying one gRPC call, on either side: the call's state machine and
/// the I/O pieces the shell holds for it (waiting reader and writer, timers, the handler's
/// task, the send queue). Owned by `GRPCConnectionHandler` and touched only on its event loop.
final class GRPCStreamContext {
    /// 0 until a client stream has been submitted.
    var id: Int32
    /// The call's lifecycle: every protocol decision is made here (`GRPCStreamStateMachine`).
    var machine: GRPCStreamStateMachine
    var outbound = OutboundMessageQueue()
    /// A reader waiting for the next message (at most one: streams have a single consumer).
    var readWaiter: EventLoopPromise<ByteBuffer?>?
    /// A writer waiting for room in the send budget (at most one per stream), with its
    /// message (not yet framed).
    var pendingWrite: (message: ByteBuffer, promise: EventLoopPromise<Void>)?
    var deadlineTimer: Scheduled<Void>?

    // Received headers of the current HEADERS block.
    var headerBlock: [(name: String, value: String)] = []
    var headerBlockBytes = 0

    // Server side.
    var handlerTask: Task<Void, Never>?
    /// Set when the handler starts; graceful shutdown ends streaming calls first.
    var methodKind: GRPCMethod.Kind?
    var initialMetadata = GRPCMetadata()
    var trailingMetadata = GRPCMetadata()

    // Client side.
    var responseMetadata = GRPCMetadata()
    var finished: EventLoopPromise<GRPCConnectionHandler.CallOutcome>?

    init(id: Int32, machine: GRPCStreamStateMachine) {
        self.id = id
        self.machine = machine
    }

    /// The receive half, for the memory figures of tests.
    var inbound: InboundMessageBuffer { machine.inbound }
}
