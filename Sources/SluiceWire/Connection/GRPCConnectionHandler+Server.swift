import Logging
import NIOCore

/// The server half: validating requests, running handlers as tasks, sending status.
extension GRPCConnectionHandler {
    /// Request headers are complete: check them, route, and start the handler's task.
    func startServerCall(_ stream: GRPCStreamContext, endStream: Bool) {
        guard case .server(let routes, _) = role else { preconditionFailure("server role") }
        let headers = stream.headerBlock
        stream.headerBlock = []
        func value(_ name: String) -> String? { headers.first { $0.name == name }?.value }

        guard value(":method") == "POST" else {
            return rejectEarly(stream, httpStatus: 405, GRPCStatus(.internalError, "gRPC requires POST"))
        }
        guard let contentType = value("content-type"), contentType.hasPrefix("application/grpc") else {
            // gRPC spec: a non-gRPC content type gets HTTP 415 (clients map it to UNKNOWN/INTERNAL).
            return rejectEarly(
                stream, httpStatus: 415, GRPCStatus(.internalError, "content-type must be application/grpc"))
        }
        if let encoding = value("grpc-encoding"), encoding != "identity" {
            return rejectEarly(stream, httpStatus: 200, GRPCStatus(.unimplemented, "grpc-encoding \(GRPCStatus.quoting(encoding)) is not supported"))
        }
        let path = value(":path") ?? ""
        guard let method = routes[path] else {
            return rejectEarly(stream, httpStatus: 200, GRPCStatus(.unimplemented, "unknown method \(GRPCStatus.quoting(path))"))
        }
        var deadline: ContinuousClock.Instant?
        if let text = value("grpc-timeout") {
            guard let timeout = GRPCTimeout.parse(text) else {
                return rejectEarly(stream, httpStatus: 200, GRPCStatus(.internalError, "malformed grpc-timeout \(GRPCStatus.quoting(text))"))
            }
            deadline = .now + timeout
            stream.deadlineTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) {
                self.abortServerCall(stream, status: GRPCStatus(.deadlineExceeded, "deadline exceeded"))
                self.flush()
            }
        }
        stream.methodKind = method.kind
        if endStream { stream.readEnd = .success(()) }

        let handle = StreamHandle(loop: eventLoop, connection: self, stream: stream)
        let callContext = ServerCallContext(
            path: path, metadata: GRPCMetadata.custom(from: headers), deadline: deadline,
            remoteAddress: context?.channel.remoteAddress?.description)
        let logger = self.logger
        let body = method.body
        stream.handlerTask = spawnHandler(body, handle: handle, context: callContext, logger: logger)
    }

    func handlerFinished(_ stream: GRPCStreamContext, status: GRPCStatus) {
        guard stream.status == nil else { return }  // already ended (deadline, reset, shutdown)
        endServerCall(stream, status: status)
        flush()
    }

    /// Ends a call from the server's side while its handler may still run: cancels the
    /// handler, drops unsent responses, and sends `status` if the stream is still open.
    func abortServerCall(_ stream: GRPCStreamContext, status: GRPCStatus) {
        guard stream.status == nil else { return }
        stream.handlerTask?.cancel()
        budget.remove(stream.outbound.discard())
        session.consume(stream: stream.id, bytes: stream.inbound.releaseAll(dropMessages: true))
        endServerCall(stream, status: status)
    }

    /// Sends the status: as trailers after the responses, or as a trailers-only response
    /// when no response headers went out yet.
    private func endServerCall(_ stream: GRPCStreamContext, status: GRPCStatus) {
        precondition(stream.status == nil, "a call's status is sent once")
        stream.status = status
        stream.deadlineTimer?.cancel()
        stream.deadlineTimer = nil
        failWaiters(stream, with: status.code == .ok ? GRPCStatus(.cancelled, "the call already ended") : status)
        guard !stream.isClosed else { return }
        if stream.responseHeadersSent {
            let trailers = statusFields(status, metadata: stream.trailingMetadata, after: [])
            stream.outbound.finish(.trailers(trailers))
            session.resumeData(stream: stream.id)
        } else {
            stream.responseHeadersSent = true
            let leading = [(name: ":status", value: "200"), (name: "content-type", value: "application/grpc")]
            let headers = leading + statusFields(status, metadata: stream.trailingMetadata, after: leading)
            submitResponse(stream, headers: headers, hasBody: false)
        }
    }

    func sendResponseHeaders(_ stream: GRPCStreamContext) {
        stream.responseHeadersSent = true
        var headers = [(name: ":status", value: "200"), (name: "content-type", value: "application/grpc")]
        for (name, value) in stream.initialMetadata where !GRPCMetadata.isReserved(name) {
            headers.append((name, value))
        }
        submitResponse(stream, headers: headers, hasBody: true)
    }

    /// A request refused before any handler ran: one HEADERS frame carrying the status.
    private func rejectEarly(_ stream: GRPCStreamContext, httpStatus: Int, _ status: GRPCStatus) {
        logger.debug("rejecting call", metadata: ["stream": "\(stream.id)", "status": "\(status)"])
        stream.status = status
        stream.responseHeadersSent = true
        let leading = [(name: ":status", value: "\(httpStatus)"), (name: "content-type", value: "application/grpc")]
        submitResponse(stream, headers: leading + statusFields(status, metadata: [:], after: leading), hasBody: false)
    }

    /// Every call ends with an answer: a response nghttp2 will not take is replaced by
    /// RST_STREAM(INTERNAL_ERROR), so the client never waits for a status that cannot come.
    /// (One that nghttp2 takes but then cannot send, say a header block over its limit, is
    /// reset from `sessionCouldNotSendHeaders`.)
    private func submitResponse(_ stream: GRPCStreamContext, headers: [(name: String, value: String)], hasBody: Bool) {
        guard !session.submitResponse(stream: stream.id, headers: headers, hasBody: hasBody) else { return }
        logger.warning("resetting stream: the response could not be submitted", metadata: ["stream": "\(stream.id)"])
        session.resetStream(stream.id, errorCode: HTTP2Session.internalError)
    }

    /// grpc-status, grpc-message and the trailing metadata, to follow `leading` in one header
    /// block (the response headers of a trailers-only answer). The message is capped at
    /// `GRPCStatusMessageCoding.maxEncodedBytes`, and cut further if the peer advertised a
    /// SETTINGS_MAX_HEADER_LIST_SIZE the block would otherwise pass (left out if not even a
    /// marked cut fits): a client always gets a status it accepts. The metadata is the
    /// handler's and is sent as it is; a block nghttp2 cannot send resets the stream.
    func statusFields(
        _ status: GRPCStatus, metadata: GRPCMetadata, after leading: [(name: String, value: String)]
    ) -> [(name: String, value: String)] {
        var fields = [(name: "grpc-status", value: "\(status.code.rawValue)")]
        var custom: [(name: String, value: String)] = []
        for (name, value) in metadata where !GRPCMetadata.isReserved(name) { custom.append((name, value)) }
        if !status.message.isEmpty {
            // RFC 9113 §6.5.2: a field costs its name and value octets plus 32.
            let listBytes = (leading + fields + custom).reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 32 }
            let room = session.peerMaxHeaderListBytes - listBytes - ("grpc-message".utf8.count + 32)
            let message = GRPCStatusMessageCoding.encode(
                status.message, maxBytes: min(GRPCStatusMessageCoding.maxEncodedBytes, room))
            if !message.isEmpty { fields.append(("grpc-message", message)) }
        }
        return fields + custom
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
                    self.abortServerCall(stream, status: unavailable)
                }
                self.flush()
            })
        drainTimers.append(
            eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(unaryLimit)) {
                for stream in self.streams.values { self.abortServerCall(stream, status: unavailable) }
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
