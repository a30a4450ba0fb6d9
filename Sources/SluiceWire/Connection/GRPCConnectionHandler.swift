import DequeModule
import Logging
import NIOCore

/// One gRPC connection, server or client: the I/O shell around an `HTTP2Session`.
///
/// It feeds socket bytes to nghttp2, writes what nghttp2 produces (only while the channel is
/// writable, so the socket's own buffer stays bounded), and turns session events into stream
/// state machine events (`+SessionEvents`, `+StreamIO`, `+Server`, `+Client`; the actions
/// they return are carried out in `+Actions`). Everything here runs on the channel's event loop;
/// handler tasks and callers reach it through `StreamHandle` hops. The bounded pieces of
/// state are plain structs: `GRPCStreamStateMachine` (one per call), `InboundMessageBuffer`,
/// `OutboundMessageQueue`, `SendBudget`, `KeepaliveStateMachine`.
final class GRPCConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Role {
        case server(routes: [String: GRPCMethod], configuration: GRPCServerConfiguration)
        case client(authority: String, enforcesDeadlineLocally: Bool)

        /// A client speaks first (magic + SETTINGS). A server holds its SETTINGS until the
        /// peer's first bytes, so an HTTP/1.x client gets a clean text reply, not binary frames.
        var speaksFirst: Bool { !acceptsPeerStreams }
        /// The peer opens streams (requests) only towards a server; a server answers a
        /// peer speaking HTTP/1.x with text.
        var acceptsPeerStreams: Bool {
            if case .server = self { return true }
            return false
        }
        /// A client takes a GOAWAY as "open no new calls here"; a server's own draining is
        /// `beginGracefulShutdown`.
        var stopsCallsOnGoaway: Bool { !acceptsPeerStreams }
    }

    let role: Role
    let limits: ConnectionLimits
    let eventLoop: any EventLoop
    var logger: Logger
    let session: HTTP2Session
    var context: ChannelHandlerContext?

    var streams: [Int32: GRPCStreamContext] = [:]
    var budget: SendBudget
    /// Streams whose writer waits for room in `budget`, oldest first; at most one entry per
    /// live stream, so bounded by the concurrent-stream limit.
    var blockedWriters: Deque<GRPCStreamContext> = []
    var sendProgress = false
    var stallTimer: Scheduled<Void>?

    var keepalive = KeepaliveStateMachine()
    var keepaliveTimer: Scheduled<Void>?
    var keepaliveAckTimer: Scheduled<Void>?

    var prefaceReceived = false
    var prefaceTimer: Scheduled<Void>?
    /// Completed when the peer's SETTINGS arrive (clients wait for it in `connect`).
    let prefacePromise: EventLoopPromise<Void>
    var firstBytesSeen = false

    var isFlushing = false
    /// The channel turned writable during `flush()`'s own socket flush (see
    /// `channelWritabilityChanged`).
    var writableAgainWhileFlushing = false
    var flushScheduled = false
    /// Inside `session.receive`: nghttp2 forbids producing output from its callbacks, so
    /// `flush` waits until `channelRead` calls it after the input is processed.
    var isReceiving = false
    /// Received bytes nghttp2 could not take yet: they would begin more request streams
    /// than it has room for until the refusals already queued are written, and the socket
    /// is not writable (`receiveHeldInput`). Reading from the socket stops meanwhile.
    var heldInput: ByteBuffer?
    /// A read the pipeline asked for while input was held; issued once it is taken.
    var readDeferred = false
    var isInactive = false
    /// Server: GOAWAY sent, draining. Client: GOAWAY received, no new calls.
    var isDraining = false
    enum ShutdownPhase { case running, noticeSent, goawaySent }
    /// Server only: where the two-phase GOAWAY stands (`beginGracefulShutdown`).
    var shutdownPhase = ShutdownPhase.running
    var drainTimers: [Scheduled<Void>] = []
    /// Called once the channel is gone (the server drops it from its registry).
    var onClose: (() -> Void)?

    init(role: Role, settings: HTTP2SessionSettings, limits: ConnectionLimits, eventLoop: any EventLoop, logger: Logger)
        throws
    {
        self.role = role
        self.limits = limits
        self.eventLoop = eventLoop
        self.logger = logger
        self.session = try HTTP2Session(settings: settings)
        self.budget = SendBudget(limitBytes: limits.sendQueueBytes)
        self.prefacePromise = eventLoop.makePromise()
        switch role {
        case .server(let routes, _): streamRole = .server(methods: routes.mapValues(\.kind))
        case .client: streamRole = .client
        }
        session.delegate = self
    }

    /// What each new stream's state machine knows of its side.
    private let streamRole: GRPCStreamStateMachine.Role

    /// A stream of this connection, with its state machine in its first state.
    func makeStream(id: Int32) -> GRPCStreamContext {
        let inbound = InboundMessageBuffer(
            limitBytes: limits.inboundBufferBytes, maxMessageBytes: limits.maxReceiveMessageBytes)
        return GRPCStreamContext(id: id, machine: GRPCStreamStateMachine(role: streamRole, inbound: inbound))
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard prefaceTimer == nil, !prefaceReceived else { return }
        if let address = context.channel.remoteAddress { logger[metadataKey: "peer"] = "\(address)" }
        prefaceTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(limits.prefaceTimeout)) {
            guard !self.prefaceReceived else { return }
            self.logger.info("closing connection: no HTTP/2 preface in time")
            self.close()
        }
        if role.speaksFirst { flush() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if !firstBytesSeen {
            firstBytesSeen = true
            if role.acceptsPeerStreams, rejectHTTP1(bytes, context: context) { return }
        }
        if heldInput != nil {
            // Bytes of a read already under way when input was held: they queue behind it.
            heldInput!.writeBuffer(&bytes)
            return
        }
        receive(bytes)
    }

    /// Feeds `input` to the session, writing output between passes: a server session takes
    /// only as many new request streams per pass as nghttp2 has room for, and the room comes
    /// back when the refusals it queued are written (`HTTP2Session`, "Stream cap"). If the
    /// socket will not take them now, the rest of the input is held, and reading stops,
    /// until it is writable again: a peer that floods HEADERS without reading is slowed by
    /// TCP instead of growing the queue of refusals.
    private func receive(_ input: ByteBuffer) {
        var input = input
        while input.readableBytes > 0, !isInactive {
            guard session.acceptsNewStreams else {
                heldInput = input
                limits.onInputHeld?()
                return
            }
            isReceiving = true
            let (consumed, error) = session.receive(input)
            isReceiving = false
            input.moveReaderIndex(forwardBy: consumed)
            if let error {
                logger.info("closing connection: HTTP/2 error", metadata: ["error": "\(error)"])
                flush()
                close()
                return
            }
            flush()
        }
    }

    /// Takes the held input once the socket accepts output again (a fresh stack: this runs
    /// from the event loop, never inside `flush`), then lets reading resume.
    private func receiveHeldInput() {
        guard let input = heldInput, !isInactive, let context else { return }
        heldInput = nil
        receive(input)
        if heldInput == nil && readDeferred {
            readDeferred = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if heldInput != nil {
            readDeferred = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // `context.flush()` inside `flush()` can drain the socket and make the channel
        // writable again right there; that nested call cannot flush, so it asks the
        // running flush to go round once more (else output would wait for the next read).
        if isFlushing { writableAgainWhileFlushing = true }
        flush()
        if heldInput != nil && context.channel.isWritable {
            eventLoop.assumeIsolated().execute { self.receiveHeldInput() }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connectionClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        close()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        connectionClosed()
        self.context = nil
    }

    /// A client speaking HTTP/1.x gets a plain 505 before the close, instead of silence.
    private func rejectHTTP1(_ bytes: ByteBuffer, context: ChannelHandlerContext) -> Bool {
        let magic = Array("PRI * HTTP/2.0".utf8)
        let head = bytes.getBytes(at: bytes.readerIndex, length: min(bytes.readableBytes, magic.count)) ?? []
        guard !head.isEmpty, !magic.starts(with: head) else { return false }
        // An HTTP/1 request line starts with an upper-case method token and a space.
        let method = head.prefix { $0 != 0x20 }
        let looksLikeHTTP1 =
            !method.isEmpty && method.count < head.count
            && method.allSatisfy { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
        logger.info("closing connection: not an HTTP/2 client", metadata: ["http1": "\(looksLikeHTTP1)"])
        guard looksLikeHTTP1 else {
            close()
            return true
        }
        let text = "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + "Content-Length: 26\r\n\r\nthis server speaks gRPC.\r\n"
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: text)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in self.close() }
        return true
    }

    // MARK: Output

    /// Writes whatever nghttp2 has queued, then lets blocked writers in while the send
    /// budget has room, and repeats until nothing changes. Closes the channel once the
    /// session wants no more I/O (after GOAWAY both ways, or a fatal error).
    func flush() {
        guard let context, !isFlushing, !isReceiving, !isInactive else { return }
        isFlushing = true
        defer { isFlushing = false }
        repeat {
            writableAgainWhileFlushing = false
            var wrote = false
            repeat {
                while context.channel.isWritable {
                    // Serialised frames and, in between, large DATA payloads as the very
                    // buffers handlers wrote (no copy); NIO gathers them into one writev.
                    var pieces: [ByteBuffer] = []
                    if let error = session.produceOutput(
                        into: &pieces, allocator: context.channel.allocator, limit: limits.outputChunkBytes)
                    {
                        logger.info("closing connection: HTTP/2 send error", metadata: ["error": "\(error)"])
                        close()
                        return
                    }
                    guard !pieces.isEmpty else { break }
                    for piece in pieces { context.write(wrapOutboundOut(piece), promise: nil) }
                    wrote = true
                }
            } while admitBlockedWriters()
            if wrote { context.flush() }
        } while writableAgainWhileFlushing && context.channel.isWritable && !isInactive
        if !session.isAlive || (shutdownPhase == .goawaySent && streams.isEmpty) {
            close()
        }
    }

    /// Flushes at the end of this event-loop tick: writes and reads from many tasks that
    /// arrive together leave in one socket write instead of one each.
    func scheduleFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.flush()
        }
    }

    func close() {
        guard let context, !isInactive else { return }
        context.close(promise: nil)
    }

    // MARK: Keepalive

    /// Started once the peer's preface arrived (before that, the preface timer guards).
    func scheduleKeepalive() {
        guard let interval = limits.keepaliveInterval, !isInactive else { return }
        keepaliveTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(interval)) {
            self.keepaliveIntervalElapsed()
            self.scheduleKeepalive()
        }
    }

    private func keepaliveIntervalElapsed() {
        switch keepalive.intervalElapsed() {
        case .none:
            return
        case .sendPing(let payload):
            session.ping(payload: payload)
            flush()
            keepaliveAckTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(limits.keepaliveTimeout)) {
                if self.keepalive.timeoutElapsed() == .closeConnection {
                    self.logger.info("closing connection: keepalive PING not answered")
                    self.close()
                }
            }
        }
    }

    func pingAckReceived() {
        // Any ACK after the shutdown notice's PING is at least one round trip after the notice.
        if shutdownPhase == .noticeSent { sendFinalGoaway() }
        keepalive.ackReceived()
        keepaliveAckTimer?.cancel()
        keepaliveAckTimer = nil
    }

    // MARK: Close

    private func connectionClosed() {
        guard !isInactive else { return }
        isInactive = true
        prefaceTimer?.cancel()
        keepaliveTimer?.cancel()
        keepaliveAckTimer?.cancel()
        stallTimer?.cancel()
        for timer in drainTimers { timer.cancel() }
        prefacePromise.fail(GRPCStatus(.unavailable, "connection closed"))
        heldInput = nil
        let open = streams.values
        streams.removeAll()
        for stream in open { perform(stream.machine.connectionClosed(), on: stream) }
        blockedWriters.removeAll()
        onClose?()
        onClose = nil
    }
}
