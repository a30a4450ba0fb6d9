import Logging
import NIOCore

/// The client half: opening calls, reading response headers and trailers, cancelling.
extension GRPCConnectionHandler {
    /// What a finished client call reports.
    struct CallOutcome: Sendable {
        var status: GRPCStatus
        var trailers: GRPCMetadata
    }

    /// Opens a call. With `onlyMessage` (unframed), a unary-style request (one message, then END_STREAM)
    /// is queued in the same hop when the send budget has room; `sent` says whether it was.
    func startClientCall(path: String, metadata: GRPCMetadata, timeout: Duration?, onlyMessage: ByteBuffer? = nil)
        throws(GRPCStatus) -> (stream: GRPCStreamContext, sent: Bool)
    {
        guard case .client(let authority, let enforcesDeadline) = role else { preconditionFailure("client role") }
        guard !isInactive, context != nil else { throw GRPCStatus(.unavailable, "the connection is closed") }
        guard !isDraining else { throw GRPCStatus(.unavailable, "the server is going away (GOAWAY)") }
        let limit = session.peerMaxConcurrentStreams
        guard streams.count < limit else {
            throw GRPCStatus(.resourceExhausted, "the server allows \(limit) concurrent streams per connection")
        }
        var headers: [(name: String, value: String)] = [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "sluice-wire/1"),
        ]
        if let timeout { headers.append(("grpc-timeout", GRPCTimeout.format(timeout))) }
        for (name, value) in metadata where !GRPCMetadata.isReserved(name) { headers.append((name, value)) }

        let inbound = InboundMessageBuffer(
            limitBytes: limits.inboundBufferBytes, maxMessageBytes: limits.maxReceiveMessageBytes)
        guard let id = session.submitRequest(headers: headers) else {
            throw GRPCStatus(.unavailable, "no stream available on this connection")
        }
        let stream = GRPCStreamContext(id: id, inbound: inbound)
        stream.finished = eventLoop.makePromise(of: CallOutcome.self)
        streams[id] = stream
        if let timeout, enforcesDeadline {
            stream.deadlineTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) {
                self.cancelClientCall(stream, status: GRPCStatus(.deadlineExceeded, "deadline exceeded"))
            }
        }
        var sent = false
        if let onlyMessage, budget.hasRoom {
            enqueue(onlyMessage, on: stream)
            stream.outbound.finish(.endStream)
            sent = true
        }
        flush()
        return (stream, sent)
    }

    func finishSending(_ stream: GRPCStreamContext) throws(GRPCStatus) {
        if let status = stream.status, status.code != .ok { throw status }
        guard stream.status == nil, !stream.outbound.isFinished else { return }
        guard stream.pendingWrite == nil else {
            throw GRPCStatus(.internalError, "finishSending while a send is still pending")
        }
        stream.outbound.finish(.endStream)
        session.resumeData(stream: stream.id)
        flush()
    }

    func clientReceivedHeaders(_ stream: GRPCStreamContext, endStream: Bool) {
        let headers = stream.headerBlock
        stream.headerBlock = []
        guard stream.status == nil else { return }
        func value(_ name: String) -> String? { headers.first { $0.name == name }?.value }

        if !stream.responseHeadersReceived {
            stream.responseHeadersReceived = true
            let httpStatus = value(":status").flatMap { Int($0) } ?? 0
            guard httpStatus == 200 else {
                let status = Self.parseStatus(headers) ?? GRPCStatus.fromHTTPStatus(httpStatus)
                return cancelClientCall(stream, status: status)
            }
            guard value("content-type")?.hasPrefix("application/grpc") == true else {
                return cancelClientCall(
                    stream, status: GRPCStatus(.internalError, "response content-type is not application/grpc"))
            }
            if !endStream {
                stream.responseMetadata = GRPCMetadata.custom(from: headers)
                return
            }
            // Trailers-only response: the status rides on the only HEADERS frame.
        }
        let status = Self.parseStatus(headers) ?? GRPCStatus(.internalError, "the response has no grpc-status")
        var outcome = status
        if status.code == .ok, stream.inbound.hasMessages == false {
            do { try stream.inbound.receiveEnd() } catch { outcome = error.status }
        }
        completeClientCall(stream, status: outcome, trailers: GRPCMetadata.custom(from: headers))
    }

    static func parseStatus(_ headers: [(name: String, value: String)]) -> GRPCStatus? {
        guard let code = headers.first(where: { $0.name == "grpc-status" }).flatMap({ Int($0.value) }) else {
            return nil
        }
        let message = headers.first { $0.name == "grpc-message" }.map { GRPCStatusMessageCoding.decode($0.value) }
        return GRPCStatus(GRPCStatus.Code(rawValue: code), message ?? "")
    }

    /// Records the call's final status. Messages that arrived before it are still
    /// delivered; the reader sees the status after them.
    func completeClientCall(_ stream: GRPCStreamContext, status: GRPCStatus, trailers: GRPCMetadata) {
        guard stream.status == nil else { return }
        stream.status = status
        stream.trailingMetadata = trailers
        stream.deadlineTimer?.cancel()
        stream.deadlineTimer = nil
        if stream.readEnd == nil { stream.readEnd = status.code == .ok ? .success(()) : .failure(status) }
        budget.remove(stream.outbound.discard())
        failWaiters(stream, with: status.code == .ok ? GRPCStatus(.cancelled, "the call already ended") : status)
        stream.finished?.succeed(CallOutcome(status: status, trailers: trailers))
        if !stream.isClosed && !stream.outbound.isFinished {
            // The server is done; stop our half too so the stream can close.
            session.resetStream(stream.id, errorCode: 0x8)
        }
    }

    /// Ends a call locally (cancel, deadline, bad response) and resets the stream.
    func cancelClientCall(_ stream: GRPCStreamContext, status: GRPCStatus) {
        guard stream.status == nil else { return }
        session.consume(stream: stream.id, bytes: stream.inbound.releaseAll(dropMessages: true))
        stream.readEnd = .failure(status)
        if !stream.isClosed { session.resetStream(stream.id, errorCode: 0x8) }
        stream.isClosed = true
        completeClientCall(stream, status: status, trailers: [:])
        flush()
    }
}
