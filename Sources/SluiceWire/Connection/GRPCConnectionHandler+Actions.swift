import Logging
import NIOCore

/// Carries out what a stream's state machine decided: frames to nghttp2, window back to the
/// peer, promises completed, handler tasks started and cancelled. The only place where a
/// `GRPCStreamStateMachine.Action` turns into I/O.
extension GRPCConnectionHandler {
    /// Feeds one event's actions to the connection. `.sendMessage` and `.refuse` belong to
    /// the caller that asked to write or finish (`write`, `finishSending`) and are handled there.
    func perform(_ actions: [GRPCStreamStateMachine.Action], on stream: GRPCStreamContext) {
        for action in actions { perform(action, on: stream) }
    }

    func perform(_ action: GRPCStreamStateMachine.Action, on stream: GRPCStreamContext) {
        switch action {
        case .sendResponseHeaders:
            var headers = [(name: ":status", value: "200"), (name: "content-type", value: "application/grpc")]
            for (name, value) in stream.initialMetadata where !GRPCMetadata.isReserved(name) {
                headers.append((name, value))
            }
            submitResponse(stream, headers: headers, hasBody: true)
        case .sendMessage, .refuse:
            assertionFailure("\(action) is the caller's")
        case .sendEndOfMessages:
            stream.outbound.finish(.endStream)
            session.resumeData(stream: stream.id)
        case .sendStatus(let status, .trailers):
            stream.outbound.finish(.trailers(statusFields(status, metadata: stream.trailingMetadata, after: [])))
            session.resumeData(stream: stream.id)
        case .sendStatus(let status, .trailersOnly(let httpStatus, let withMetadata)):
            if !withMetadata {
                logger.debug("rejecting call", metadata: ["stream": "\(stream.id)", "status": "\(status)"])
            }
            let leading = [(name: ":status", value: "\(httpStatus)"), (name: "content-type", value: "application/grpc")]
            let metadata = withMetadata ? stream.trailingMetadata : [:]
            submitResponse(stream, headers: leading + statusFields(status, metadata: metadata, after: leading), hasBody: false)
        case .resetStream(let errorCode):
            session.resetStream(stream.id, errorCode: errorCode)
        case .consume(let bytes):
            session.consume(stream: stream.id, bytes: bytes)
        case .startHandler(let start):
            startHandler(start, on: stream)
        case .cancelHandler:
            stream.handlerTask?.cancel()
        case .storeResponseMetadata(let metadata):
            stream.responseMetadata = metadata
        case .wakeReader:
            deliverToReader(stream)
        case .failBlockedWriter(let status):
            if let pending = stream.pendingWrite {
                stream.pendingWrite = nil
                blockedWriters.removeAll { $0 === stream }
                pending.promise.fail(status)
            }
        case .discardOutbound:
            budget.remove(stream.outbound.discard())
        case .callEnded(let status, let trailers):
            stream.deadlineTimer?.cancel()
            stream.deadlineTimer = nil
            stream.finished?.succeed(CallOutcome(status: status, trailers: trailers))
        }
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
}
