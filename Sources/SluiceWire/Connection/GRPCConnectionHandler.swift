import DequeModule
import Logging
import NIOCore

/// One gRPC connection, server or client: the I/O shell around an `HTTP2Session`.
///
/// It feeds socket bytes to nghttp2, writes what nghttp2 produces (only while the channel is
/// writable, so the socket's own buffer stays bounded), and turns session events into stream
/// state changes (`+Server`, `+Client`). Everything here runs on the channel's event loop;
/// handler tasks and callers reach it through `StreamHandle` hops. The bounded pieces of
/// state are plain structs: `InboundMessageBuffer`, `OutboundMessageQueue`, `SendBudget`,
/// `KeepaliveStateMachine`.
final class GRPCConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Role {
        case server(routes: [String: GRPCMethod], configuration: GRPCServerConfiguration)
        case client(authority: String, enforcesDeadlineLocally: Bool)
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
        session.delegate = self
    }

    var isServer: Bool {
        if case .server = role { return true }
        return false
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
        // A client speaks first (magic + SETTINGS). A server holds its SETTINGS until the
        // peer's first bytes, so an HTTP/1.x client gets a clean text reply, not binary frames.
        if !isServer { flush() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if !firstBytesSeen {
            firstBytesSeen = true
            if isServer, rejectHTTP1(bytes, context: context) { return }
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

    // MARK: Stream I/O (called through StreamHandle)

    func read(from stream: GRPCStreamContext) -> EventLoopFuture<ByteBuffer?> {
        if let (message, consume) = stream.inbound.take() {
            session.consume(stream: stream.id, bytes: consume)
            if consume > 0 { scheduleFlush() }
            return eventLoop.makeSucceededFuture(message)
        }
        switch stream.readEnd {
        case .success?: return eventLoop.makeSucceededFuture(nil)
        case .failure(let status)?: return eventLoop.makeFailedFuture(status)
        case nil: break
        }
        guard stream.readWaiter == nil else {
            return eventLoop.makeFailedFuture(GRPCStatus(.internalError, "concurrent reads of one stream"))
        }
        let promise = eventLoop.makePromise(of: ByteBuffer?.self)
        stream.readWaiter = promise
        return promise.futureResult
    }

    /// Completes a waiting reader if a message or the end is available.
    func deliverToReader(_ stream: GRPCStreamContext) {
        guard let waiter = stream.readWaiter else { return }
        if let (message, consume) = stream.inbound.take() {
            stream.readWaiter = nil
            session.consume(stream: stream.id, bytes: consume)
            waiter.succeed(message)
        } else if let end = stream.readEnd {
            stream.readWaiter = nil
            switch end {
            case .success: waiter.succeed(nil)
            case .failure(let status): waiter.fail(status)
            }
        }
    }

    /// Queues `message` (unframed) on `stream`, or parks the writer while the budget is used up.
    func write(_ message: ByteBuffer, to stream: GRPCStreamContext) -> EventLoopFuture<Void> {
        if let status = stream.status {
            let failure = status.code == .ok ? GRPCStatus(.cancelled, "the call already ended") : status
            return eventLoop.makeFailedFuture(failure)
        }
        guard !stream.outbound.isFinished, !stream.isClosed else {
            return eventLoop.makeFailedFuture(GRPCStatus(.internalError, "write after the end of the stream"))
        }
        guard stream.pendingWrite == nil else {
            return eventLoop.makeFailedFuture(GRPCStatus(.internalError, "concurrent writes to one stream"))
        }
        if isServer && !stream.responseHeadersSent { sendResponseHeaders(stream) }
        if budget.hasRoom {
            enqueue(message, on: stream)
            flush()
            return eventLoop.makeSucceededFuture(())
        }
        let promise = eventLoop.makePromise(of: Void.self)
        stream.pendingWrite = (message, promise)
        blockedWriters.append(stream)
        armStallTimer()
        limits.onWriterBlocked?()
        return promise.futureResult
    }

    /// The 5-byte prefix and the message go in as two buffers: the message is never copied
    /// to be framed (and large DATA frames take it by reference, `HTTP2Session`).
    func enqueue(_ message: ByteBuffer, on stream: GRPCStreamContext) {
        let prefix = GRPCMessageFrame.prefix(for: message, allocator: context?.channel.allocator ?? ByteBufferAllocator())
        stream.outbound.append(prefix)
        stream.outbound.append(message)
        budget.add(prefix.readableBytes + message.readableBytes)
        session.resumeData(stream: stream.id)
    }

    private func admitBlockedWriters() -> Bool {
        var admitted = false
        while budget.hasRoom, let stream = blockedWriters.popFirst() {
            guard let pending = stream.pendingWrite else { continue }
            stream.pendingWrite = nil
            enqueue(pending.message, on: stream)
            pending.promise.succeed(())
            admitted = true
        }
        if blockedWriters.isEmpty {
            stallTimer?.cancel()
            stallTimer = nil
        }
        return admitted
    }

    /// Fails a blocked writer and a waiting reader of a stream that ended.
    func failWaiters(_ stream: GRPCStreamContext, with status: GRPCStatus) {
        if let pending = stream.pendingWrite {
            stream.pendingWrite = nil
            blockedWriters.removeAll { $0 === stream }
            pending.promise.fail(status)
        }
        if stream.readEnd == nil { stream.readEnd = .failure(status) }
        deliverToReader(stream)
    }

    /// The send-stall timer runs only while writers are blocked; it restarts whenever bytes
    /// leave the send queue, so it measures time without any progress.
    private func armStallTimer() {
        guard stallTimer == nil else { return }
        sendProgress = false
        stallTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(limits.sendStallTimeout)) {
            self.stallTimer = nil
            guard !self.blockedWriters.isEmpty else { return }
            if self.sendProgress {
                self.armStallTimer()
            } else {
                self.logger.warning("closing connection: peer stopped reading (send stall timeout)")
                self.close()
            }
        }
    }

    /// A task waiting on the stream was cancelled.
    func taskCancelled(_ stream: GRPCStreamContext) {
        if isServer {
            failWaiters(stream, with: stream.status ?? GRPCStatus(.cancelled, "the handler was cancelled"))
        } else {
            cancelClientCall(stream, status: GRPCStatus(.cancelled, "the call was cancelled"))
        }
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
        for stream in open {
            stream.isClosed = true
            if isServer {
                abortServerCall(stream, status: GRPCStatus(.cancelled, "the client disconnected"))
            } else {
                completeClientCall(stream, status: GRPCStatus(.unavailable, "the connection closed"), trailers: [:])
            }
        }
        blockedWriters.removeAll()
        onClose?()
        onClose = nil
    }
}
