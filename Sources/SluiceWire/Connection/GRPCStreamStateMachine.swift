import NIOCore

/// The life of one gRPC call on one HTTP/2 stream, on the client or the server side, as a
/// plain value: no channel, no nghttp2, no timers. Every event the connection sees for the
/// stream (a header block, DATA bytes, END_STREAM, the stream closing, a deadline, the
/// application reading, writing, finishing, cancelling) is one `mutating func`; each returns
/// the actions the connection must carry out, in order (`GRPCConnectionHandler+Actions`).
/// In the style of swift-nio-http2's `HTTP2ConnectionStateMachine` and grpc-swift-2's
/// `GRPCStreamStateMachine`; docs/architecture.md draws the states.
///
/// The receive half (`InboundMessageBuffer`) lives here, so every DATA byte is counted
/// against flow control exactly once: it is handed back (`consume`) when it arrives below the
/// buffering bound, when the application reads past the bound, or when the call ends.
///
/// A transition that cannot happen in a conforming peer or caller (DATA before the request,
/// a server's role asked to finish sending) is not a trap: it ends the call with INTERNAL.
struct GRPCStreamStateMachine {
    enum Role {
        case client
        /// `methods`: the routes this server serves and their kinds.
        case server(methods: [String: GRPCMethod.Kind])
    }

    /// What the local side has put on the stream.
    enum Sending: Equatable {
        /// Server: no response headers yet (the first write or the status sends them).
        case nothing
        /// Headers are out (the client's request headers go out when the stream opens);
        /// messages may follow.
        case messages
        /// Client: END_STREAM is queued behind the messages; nothing more may be written.
        case finished
    }

    enum State: Equatable {
        /// Server: the request's header block is not complete yet.
        case awaitingRequest
        /// The call runs. `responseHeadersReceived`: client only, the first HEADERS of the
        /// response arrived (the next one is the trailers).
        case open(sending: Sending, responseHeadersReceived: Bool)
        /// The final status is decided: sent or queued (server), received or made up locally
        /// (client). `streamClosed`: no frame of ours goes out on the stream any more (nghttp2
        /// closed it, the connection closed, or we reset it).
        case ended(status: GRPCStatus, streamClosed: Bool)
    }

    /// How a server's status goes out.
    enum StatusFrame: Equatable {
        /// After the response headers: trailers with the handler's trailing metadata.
        case trailers
        /// No response headers went out: one HEADERS frame (END_STREAM) with `httpStatus`,
        /// the status and, `withMetadata`, the handler's trailing metadata.
        case trailersOnly(httpStatus: Int, withMetadata: Bool)
    }

    /// A request the server accepted: the handler to start.
    struct CallStart: Equatable {
        var path: String
        var metadata: GRPCMetadata
        var timeout: Duration?
        var kind: GRPCMethod.Kind
    }

    enum Action: Equatable {
        /// Server: `:status 200` and the handler's initial metadata, a body to follow.
        case sendResponseHeaders
        /// Queue the message of the write that asked (the connection's send budget permitting).
        case sendMessage
        /// Client: END_STREAM after the queued messages.
        case sendEndOfMessages
        /// Server: the call's status.
        case sendStatus(GRPCStatus, StatusFrame)
        case resetStream(errorCode: UInt32)
        /// Hand `n` received DATA bytes back to the peer as window (`nghttp2_session_consume`).
        case consume(Int)
        /// Server: run the method's handler.
        case startHandler(CallStart)
        /// Server: the call is over; the handler's task is cancelled.
        case cancelHandler
        /// Client: the custom metadata of the response headers.
        case storeResponseMetadata(GRPCMetadata)
        /// A message or the end may be ready for a waiting reader (`nextRead`).
        case wakeReader
        /// A writer parked on the send budget fails with this status.
        case failBlockedWriter(GRPCStatus)
        /// Drop the messages queued and not yet sent.
        case discardOutbound
        /// The final status, exactly once per stream (client: the call's outcome and
        /// trailers; both: the deadline timer stops).
        case callEnded(GRPCStatus, trailers: GRPCMetadata)
        /// The write or finish the application asked for fails with this status.
        case refuse(GRPCStatus)
    }

    /// What a reader gets.
    enum ReadResult: Equatable {
        /// The next message, and the bytes its reading releases for `consume`.
        case message(ByteBuffer, consume: Int)
        /// The peer ended its half cleanly.
        case end
        case failed(GRPCStatus)
        /// Nothing yet: the reader waits for `wakeReader`.
        case pending
    }

    static let peerCancelCode: UInt32 = 0x8  // RFC 9113 CANCEL
    static let protocolErrorCode: UInt32 = 0x1
    static let alreadyEnded = GRPCStatus(.cancelled, "the call already ended")

    let role: Role
    private(set) var state: State
    private(set) var inbound: InboundMessageBuffer
    /// What readers see once the messages run out. Client: set with the final status.
    /// Server: the request half ended (END_STREAM) or failed.
    private(set) var readEnd: Result<Void, GRPCStatus>?

    /// A client's stream opens with its request headers already submitted; a server's with
    /// the first HEADERS frame of a request.
    init(role: Role, inbound: InboundMessageBuffer) {
        self.role = role
        self.inbound = inbound
        switch role {
        case .client: state = .open(sending: .messages, responseHeadersReceived: false)
        case .server: state = .awaitingRequest
        }
    }

    var isServer: Bool {
        if case .server = role { return true }
        return false
    }

    /// The final status, once decided.
    var status: GRPCStatus? {
        if case .ended(let status, _) = state { return status }
        return nil
    }

    // MARK: Peer events

    /// A complete header block arrived: a request (server), response headers or trailers (client).
    mutating func receivedHeaders(_ headers: [(name: String, value: String)], endStream: Bool) -> [Action] {
        switch (role, state) {
        case (_, .ended):
            return []
        case (.server(let methods), .awaitingRequest):
            return startRequest(headers, endStream: endStream, methods: methods)
        case (.server, .open):
            // gRPC defines no request trailers; END_STREAM on them ends the request.
            guard endStream else { return protocolViolation("HEADERS in the middle of the request") }
            return receivedEndOfStream()
        case (.client, .open(let sending, let responseHeadersReceived)):
            if !responseHeadersReceived {
                state = .open(sending: sending, responseHeadersReceived: true)
                if let failure = Self.checkResponseHeaders(headers) { return cancel(failure) }
                // Without END_STREAM these are the response headers; with it, a trailers-only
                // response whose status rides on this only HEADERS frame.
                if !endStream { return [.storeResponseMetadata(GRPCMetadata.custom(from: headers))] }
            }
            let status = Self.parseStatus(headers) ?? GRPCStatus(.internalError, "the response has no grpc-status")
            var outcome = status
            if status.code == .ok, !inbound.hasMessages {
                do { try inbound.receiveEnd() } catch { outcome = error.status }
            }
            return complete(outcome, trailers: GRPCMetadata.custom(from: headers))
        case (.client, .awaitingRequest):
            return protocolViolation("a client stream waiting for a request")
        }
    }

    /// DATA bytes arrived.
    mutating func receivedData(_ bytes: UnsafeRawBufferPointer) -> [Action] {
        switch state {
        case .ended:
            // The call is over; hand the window back so other streams are not starved.
            return bytes.isEmpty ? [] : [.consume(bytes.count)]
        case .awaitingRequest:
            return [.consume(bytes.count)] + protocolViolation("DATA before the request headers")
        case .open(_, let responseHeadersReceived):
            if !isServer && !responseHeadersReceived {
                return [.consume(bytes.count)] + protocolViolation("DATA before the response headers")
            }
            do {
                let consume = try inbound.receive(bytes)
                return [.consume(consume), .wakeReader]
            } catch {
                return [.consume(inbound.releaseAll(dropMessages: true))] + abort(error.status)
            }
        }
    }

    /// END_STREAM arrived on DATA (a server's request half; a client without trailers).
    mutating func receivedEndOfStream() -> [Action] {
        guard case .open = state else {
            if case .awaitingRequest = state { return protocolViolation("END_STREAM before the request headers") }
            return []
        }
        guard isServer else {
            return complete(GRPCStatus(.internalError, "the server ended the stream without trailers"), trailers: [:])
        }
        do {
            try inbound.receiveEnd()
        } catch {
            return abort(error.status)
        }
        if readEnd == nil { readEnd = .success(()) }
        return [.wakeReader]
    }

    /// nghttp2 closed the stream: both halves ended, or RST_STREAM went either way.
    mutating func streamClosed(errorCode: UInt32) -> [Action] {
        // Bytes never read still count against the connection window: give them back.
        var actions = consumeAll(dropMessages: false)
        switch state {
        case .ended(let status, _):
            state = .ended(status: status, streamClosed: true)
            actions.append(.discardOutbound)
            if isServer { actions += failWaiters(Self.alreadyEnded) }
        case .open, .awaitingRequest:
            // The ending drops the unsent messages too.
            actions += markClosedAndEnd(
                isServer
                    ? GRPCStatus(.cancelled, "the client cancelled the call") : Self.status(forReset: errorCode))
        }
        return actions
    }

    /// END_STREAM of ours went out (the last DATA frame, the trailers or a trailers-only answer).
    mutating func sentEndOfStream() -> [Action] {
        // A server that answered before the request ended resets the rest of it (RFC 9113
        // §8.1: RST_STREAM with NO_ERROR after a complete response).
        // Our END_STREAM rides only on the status, so only an ended call gets here.
        guard isServer, !inbound.receivedEnd, case .ended(let status, streamClosed: false) = state else { return [] }
        state = .ended(status: status, streamClosed: true)
        return [.resetStream(errorCode: 0)]
    }

    /// The connection is gone: every stream ends with it.
    mutating func connectionClosed() -> [Action] {
        var actions = consumeAll(dropMessages: false)
        switch state {
        case .ended(let status, _):
            state = .ended(status: status, streamClosed: true)
        case .open, .awaitingRequest:
            actions += markClosedAndEnd(
                isServer
                    ? GRPCStatus(.cancelled, "the client disconnected") : GRPCStatus(.unavailable, "the connection closed"))
        }
        return actions
    }

    // MARK: Local events

    /// The call's deadline passed.
    mutating func deadlineExpired() -> [Action] {
        abort(GRPCStatus(.deadlineExceeded, "deadline exceeded"))
    }

    /// Ends the call from this side with `status` (server shutdown, deadline, a bad message):
    /// the client resets the stream, the server cancels its handler and sends the status.
    mutating func abort(_ status: GRPCStatus) -> [Action] {
        guard case .ended = state else { return isServer ? abortServerCall(status) : cancel(status) }
        return []
    }

    /// The application wants to send a message.
    mutating func writeRequested() -> [Action] {
        switch state {
        case .ended(let status, _):
            return [.refuse(status.code == .ok ? Self.alreadyEnded : status)]
        case .awaitingRequest:
            return [.refuse(GRPCStatus(.internalError, "write before the request"))]
        case .open(.finished, _):
            return [.refuse(GRPCStatus(.internalError, "write after the end of the stream"))]
        case .open(.nothing, let received):
            state = .open(sending: .messages, responseHeadersReceived: received)
            return [.sendResponseHeaders, .sendMessage]
        case .open(.messages, _):
            return [.sendMessage]
        }
    }

    /// Client: no more requests (half-close). `hasPendingWrite`: a writer still waits for room.
    mutating func finishSending(hasPendingWrite: Bool) -> [Action] {
        guard !isServer else { return protocolViolation("a server finishes with a status, not END_STREAM") }
        switch state {
        case .ended(let status, _):
            return status.code == .ok ? [] : [.refuse(status)]
        case .open(.finished, _):
            return []
        case .open(let sending, let received):
            guard !hasPendingWrite else {
                return [.refuse(GRPCStatus(.internalError, "finishSending while a send is still pending"))]
            }
            assert(sending == .messages, "a client's request headers go out with the stream")
            state = .open(sending: .finished, responseHeadersReceived: received)
            return [.sendEndOfMessages]
        case .awaitingRequest:
            return protocolViolation("a client stream waiting for a request")
        }
    }

    /// Server: the handler returned (or threw) and this is its status.
    mutating func handlerFinished(_ status: GRPCStatus) -> [Action] {
        guard isServer else { return protocolViolation("a client call has no handler") }
        guard case .ended = state else { return endServerCall(status) }
        return []  // already ended (deadline, reset, shutdown)
    }

    /// A task waiting on the stream was cancelled (or a client cancelled its call).
    mutating func cancelled() -> [Action] {
        guard isServer else { return cancel(GRPCStatus(.cancelled, "the call was cancelled")) }
        // The handler's own task: its waits end, the call ends when the handler returns.
        return failWaiters(status ?? GRPCStatus(.cancelled, "the handler was cancelled"))
    }

    /// The next message for a reader, or how the stream ended, or `.pending`.
    mutating func nextRead() -> ReadResult {
        if let (message, consume) = inbound.take() { return .message(message, consume: consume) }
        switch readEnd {
        case .success?: return .end
        case .failure(let status)?: return .failed(status)
        case nil: return .pending
        }
    }

    // MARK: Transitions shared by the events

    /// The server's checks of a request, in the order the gRPC spec gives them: each refusal
    /// is a trailers-only answer and no handler runs.
    private mutating func startRequest(
        _ headers: [(name: String, value: String)], endStream: Bool, methods: [String: GRPCMethod.Kind]
    ) -> [Action] {
        func value(_ name: String) -> String? { headers.first { $0.name == name }?.value }
        func reject(_ httpStatus: Int, _ status: GRPCStatus) -> [Action] {
            state = .ended(status: status, streamClosed: false)
            return [.callEnded(status, trailers: [:]), .sendStatus(status, .trailersOnly(httpStatus: httpStatus, withMetadata: false))]
        }
        guard value(":method") == "POST" else { return reject(405, GRPCStatus(.internalError, "gRPC requires POST")) }
        guard let contentType = value("content-type"), contentType.hasPrefix("application/grpc") else {
            // gRPC spec: a non-gRPC content type gets HTTP 415 (clients map it to UNKNOWN/INTERNAL).
            return reject(415, GRPCStatus(.internalError, "content-type must be application/grpc"))
        }
        if let encoding = value("grpc-encoding"), encoding != "identity" {
            return reject(200, GRPCStatus(.unimplemented, "grpc-encoding \(GRPCStatus.quoting(encoding)) is not supported"))
        }
        let path = value(":path") ?? ""
        guard let kind = methods[path] else {
            return reject(200, GRPCStatus(.unimplemented, "unknown method \(GRPCStatus.quoting(path))"))
        }
        var timeout: Duration?
        if let text = value("grpc-timeout") {
            guard let parsed = GRPCTimeout.parse(text) else {
                return reject(200, GRPCStatus(.internalError, "malformed grpc-timeout \(GRPCStatus.quoting(text))"))
            }
            timeout = parsed
        }
        state = .open(sending: .nothing, responseHeadersReceived: false)
        // END_STREAM on the request's HEADERS ends what the handler reads; it is not counted
        // as a received END_STREAM for the reset after the answer (`sentEndOfStream`), as
        // before the state machine: nghttp2 drops that RST_STREAM on the closed stream.
        if endStream { readEnd = .success(()) }
        return [.startHandler(CallStart(path: path, metadata: GRPCMetadata.custom(from: headers), timeout: timeout, kind: kind))]
    }

    /// The first HEADERS of a response must be HTTP 200 with a gRPC content type; the
    /// status to end the call with otherwise.
    private static func checkResponseHeaders(_ headers: [(name: String, value: String)]) -> GRPCStatus? {
        func value(_ name: String) -> String? { headers.first { $0.name == name }?.value }
        let httpStatus = value(":status").flatMap { Int($0) } ?? 0
        guard httpStatus == 200 else { return parseStatus(headers) ?? GRPCStatus.fromHTTPStatus(httpStatus) }
        guard value("content-type")?.hasPrefix("application/grpc") == true else {
            return GRPCStatus(.internalError, "response content-type is not application/grpc")
        }
        return nil
    }

    static func parseStatus(_ headers: [(name: String, value: String)]) -> GRPCStatus? {
        guard let code = headers.first(where: { $0.name == "grpc-status" }).flatMap({ Int($0.value) }) else {
            return nil
        }
        let message = headers.first { $0.name == "grpc-message" }.map { GRPCStatusMessageCoding.decode($0.value) }
        return GRPCStatus(GRPCStatus.Code(rawValue: code), message ?? "")
    }

    /// RFC 9113 error codes to what a caller sees.
    static func status(forReset errorCode: UInt32) -> GRPCStatus {
        switch errorCode {
        case 0x7: return GRPCStatus(.unavailable, "the server refused the stream (REFUSED_STREAM)")
        case 0x8: return GRPCStatus(.cancelled, "the stream was cancelled (CANCEL)")
        case 0xb: return GRPCStatus(.resourceExhausted, "the server is overloaded (ENHANCE_YOUR_CALM)")
        case 0xc: return GRPCStatus(.permissionDenied, "INADEQUATE_SECURITY")
        default: return GRPCStatus(.internalError, "the stream was reset (HTTP/2 error \(errorCode))")
        }
    }

    /// An event this role and state cannot take: the call ends with INTERNAL (the client
    /// resets the stream, the server answers with the status).
    private mutating func protocolViolation(_ what: String) -> [Action] {
        guard case .ended = state else { return abort(GRPCStatus(.internalError, "protocol violation: \(what)")) }
        return []
    }

    /// The stream closed under a call that had not ended: it ends, nothing more is sent.
    private mutating func markClosedAndEnd(_ status: GRPCStatus) -> [Action] {
        isServer ? abortServerCall(status, streamClosed: true) : complete(status, trailers: [:], streamClosed: true)
    }

    private mutating func consumeAll(dropMessages: Bool) -> [Action] {
        let bytes = inbound.releaseAll(dropMessages: dropMessages)
        return bytes > 0 ? [.consume(bytes)] : []
    }

    /// A blocked writer fails with `status`; a reader gets what is left, then `status`
    /// (unless the request half already ended cleanly).
    private mutating func failWaiters(_ status: GRPCStatus) -> [Action] {
        if readEnd == nil { readEnd = .failure(status) }
        return [.failBlockedWriter(status), .wakeReader]
    }

    // MARK: Client endings

    /// Records the client call's final status. Messages that arrived before it are still
    /// delivered; the reader sees the status after them. A stream whose request half is
    /// still open is reset: the server is done, so ours stops too.
    private mutating func complete(_ status: GRPCStatus, trailers: GRPCMetadata, streamClosed: Bool = false) -> [Action] {
        var requestFinished = false
        if case .open(.finished, _) = state { requestFinished = true }
        let reset = !streamClosed && !requestFinished
        state = .ended(status: status, streamClosed: streamClosed || reset)
        if readEnd == nil { readEnd = status.code == .ok ? .success(()) : .failure(status) }
        var actions: [Action] = [.discardOutbound]
        actions += failWaiters(status.code == .ok ? Self.alreadyEnded : status)
        actions.append(.callEnded(status, trailers: trailers))
        if reset { actions.append(.resetStream(errorCode: Self.peerCancelCode)) }
        return actions
    }

    /// Ends a client call locally (cancel, deadline, bad response): drops what was received
    /// and resets the stream.
    private mutating func cancel(_ status: GRPCStatus) -> [Action] {
        guard self.status == nil else { return [] }
        var actions = consumeAll(dropMessages: true)
        readEnd = .failure(status)
        actions.append(.resetStream(errorCode: Self.peerCancelCode))
        return actions + complete(status, trailers: [:], streamClosed: true)
    }

    // MARK: Server endings

    /// Ends a call while its handler may still run: cancels the handler, drops unsent
    /// responses and unread requests, and sends `status` if the stream is still open.
    private mutating func abortServerCall(_ status: GRPCStatus, streamClosed: Bool = false) -> [Action] {
        var actions: [Action] = [.cancelHandler, .discardOutbound]
        actions += consumeAll(dropMessages: true)
        return actions + endServerCall(status, streamClosed: streamClosed)
    }

    /// Sends the status: as trailers after the responses, or as a trailers-only response
    /// when no response headers went out yet.
    private mutating func endServerCall(_ status: GRPCStatus, streamClosed: Bool = false) -> [Action] {
        let headersSent: Bool
        if case .open(.messages, _) = state { headersSent = true } else { headersSent = false }
        state = .ended(status: status, streamClosed: streamClosed)
        var actions: [Action] = [.callEnded(status, trailers: [:])]
        actions += failWaiters(status.code == .ok ? Self.alreadyEnded : status)
        guard !streamClosed else { return actions }
        actions.append(.sendStatus(status, headersSent ? .trailers : .trailersOnly(httpStatus: 200, withMetadata: true)))
        return actions
    }
}
