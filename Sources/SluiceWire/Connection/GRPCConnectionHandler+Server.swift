import Logging
import NIOCore

/// The server half: running handlers as tasks (the state machine validates the requests
/// and decides the status frames), and graceful shutdown.
extension GRPCConnectionHandler {
    /// The state machine accepted a request: arm its deadline and start the handler's task.
    func startHandler(_ start: GRPCStreamStateMachine.CallStart, on stream: GRPCStreamContext) {
        guard case .server(let routes, _) = role, let method = routes[start.path] else {
            preconditionFailure("the state machine starts only routed calls")
        }
        var deadline: ContinuousClock.Instant?
        if let timeout = start.timeout {
            deadline = .now + timeout
            stream.deadlineTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) {
                self.perform(stream.machine.deadlineExpired(), on: stream)
                self.flush()
            }
        }
        stream.methodKind = start.kind
        let handle = StreamHandle(loop: eventLoop, connection: self, stream: stream)
        let callContext = ServerCallContext(
            path: start.path, metadata: start.metadata, deadline: deadline,
            remoteAddress: context?.channel.remoteAddress?.description)
        stream.handlerTask = spawnHandler(method.body, handle: handle, context: callContext, logger: logger)
    }

    func handlerFinished(_ stream: GRPCStreamContext, status: GRPCStatus) {
        perform(stream.machine.handlerFinished(status), on: stream)
        flush()
    }

    // MARK: Graceful shutdown

    static let shutdownPingPayload: UInt64 = 0x676f_6177_6179_0000  // "goaway\0\0"

    /// The second GOAWAY: streams above the last processed one are refused from now on.
    func sendFinalGoaway() {
        guard shutdownPhase == .noticeSent else { return }
        shutdownPhase = .goawaySent
        session.goaway(errorCode: 0)
        flush()
    }

    /// Two-phase GOAWAY (as nghttp2 and RFC 9113 §6.8 advise): first a notice naming stream
    /// 2^31-1 plus a PING; when the PING's ACK proves the peer saw the notice (or after at
    /// most `grace`), the final GOAWAY names the last stream we processed, so no request
    /// racing the shutdown is silently dropped. Unary calls may finish; streaming calls end
    /// with UNAVAILABLE after `grace`, anything left after `unaryLimit`; then the connection
    /// closes.
    func beginGracefulShutdown(grace: Duration, unaryLimit: Duration) {
        guard !isDraining, !isInactive else { return }
        isDraining = true
        shutdownPhase = .noticeSent
        session.shutdownNotice()
        session.ping(payload: Self.shutdownPingPayload)
        drainTimers.append(
            eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(min(grace, .seconds(1)))) {
                self.sendFinalGoaway()
            })
        let unavailable = GRPCStatus(.unavailable, "the server is shutting down")
        drainTimers.append(
            eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(grace)) {
                for stream in self.streams.values where stream.methodKind?.isStreaming ?? true {
                    self.perform(stream.machine.abort(unavailable), on: stream)
                }
                self.flush()
            })
        drainTimers.append(
            eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(unaryLimit)) {
                for stream in self.streams.values { self.perform(stream.machine.abort(unavailable), on: stream) }
                self.flush()
            })
        // A peer that never lets the last statuses out (not reading) must not hold the
        // shutdown forever: one more grace period, then the socket closes regardless.
        drainTimers.append(
            eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(unaryLimit + grace)) {
                self.logger.info("closing connection: shutdown drain timed out")
                self.close()
            })
        flush()
    }
}

/// The handler's task, created outside the connection's (non-Sendable) context: it only holds
/// Sendable values and reports back by hopping onto the event loop.
private func spawnHandler(
    _ body: @escaping GRPCMethod.Body, handle: StreamHandle, context: ServerCallContext, logger: Logger
) -> Task<Void, Never> {
    Task {
        let status = await runHandler(body, handle: handle, context: context, logger: logger)
        handle.loop.execute { handle.connection.handlerFinished(handle.stream, status: status) }
    }
}

/// Runs a handler and turns its outcome into the status to send.
private func runHandler(
    _ body: GRPCMethod.Body, handle: StreamHandle, context: ServerCallContext, logger: Logger
) async -> GRPCStatus {
    do {
        try await body(GRPCRequestStream(handle: handle), GRPCResponseWriter(handle: handle), context)
        return .ok
    } catch let status as GRPCStatus {
        return status
    } catch is CancellationError {
        return GRPCStatus(.cancelled, "the handler was cancelled")
    } catch {
        // Not leaked to the client: it may contain internals.
        logger.error("handler failed", metadata: ["path": "\(context.path)", "error": "\(error)"])
        return GRPCStatus(.internalError, "internal error")
    }
}
