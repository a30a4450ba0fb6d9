import Logging
import NIOCore

/// The client half: opening calls, finishing the request half, cancelling. The responses'
/// headers and trailers are the state machine's (`GRPCStreamStateMachine.receivedHeaders`).
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

        guard let id = session.submitRequest(headers: headers) else {
            throw GRPCStatus(.unavailable, "no stream available on this connection")
        }
        let stream = makeStream(id: id)
        stream.finished = eventLoop.makePromise(of: CallOutcome.self)
        streams[id] = stream
        if let timeout, enforcesDeadline {
            stream.deadlineTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) {
                self.perform(stream.machine.deadlineExpired(), on: stream)
                self.flush()
            }
        }
        var sent = false
        if let onlyMessage, budget.hasRoom {
            // A fresh stream accepts a write and the half-close: `sendMessage`, `sendEndOfMessages`.
            for action in stream.machine.writeRequested() + stream.machine.finishSending(hasPendingWrite: false) {
                if case .sendMessage = action { enqueue(onlyMessage, on: stream) } else { perform(action, on: stream) }
            }
            sent = true
        }
        flush()
        return (stream, sent)
    }

    func finishSending(_ stream: GRPCStreamContext) throws(GRPCStatus) {
        for action in stream.machine.finishSending(hasPendingWrite: stream.pendingWrite != nil) {
            if case .refuse(let status) = action { throw status }
            perform(action, on: stream)
        }
        flush()
    }

    /// Ends a call locally (the caller cancelled) and resets the stream.
    func cancelClientCall(_ stream: GRPCStreamContext, status: GRPCStatus) {
        perform(stream.machine.abort(status), on: stream)
        flush()
    }
}
