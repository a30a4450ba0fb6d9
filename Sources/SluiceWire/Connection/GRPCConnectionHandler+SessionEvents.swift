import Logging
import NIOCore

/// nghttp2's events, routed to the server or client half. Runs inside `session.receive` or
/// `produceOutput`; nothing here writes to the channel (the caller flushes afterwards).
extension GRPCConnectionHandler: HTTP2SessionDelegate {
    func sessionDidBeginHeaders(stream id: Int32) {
        if let stream = streams[id] {
            stream.headerBlock.removeAll()
            stream.headerBlockBytes = 0
        } else if isServer {
            let inbound = InboundMessageBuffer(
                limitBytes: limits.inboundBufferBytes, maxMessageBytes: limits.maxReceiveMessageBytes)
            streams[id] = GRPCStreamContext(id: id, inbound: inbound)
        }
    }

    func sessionDidReceiveHeader(stream id: Int32, name: String, value: String) -> Bool {
        guard let stream = streams[id] else { return true }
        // RFC 9113 §6.5.2: a field's size is name + value + 32 octets of overhead.
        stream.headerBlockBytes += name.utf8.count + value.utf8.count + 32
        guard stream.headerBlockBytes <= limits.maxHeaderListBytes else {
            logger.info("resetting stream: header list too large", metadata: ["stream": "\(id)"])
            return false
        }
        stream.headerBlock.append((name, value))
        return true
    }

    func sessionDidReceiveHeaders(stream id: Int32, endStream: Bool) {
        guard let stream = streams[id] else { return }
        if isServer {
            if stream.methodKind == nil && stream.status == nil {
                startServerCall(stream, endStream: endStream)
            } else if endStream {
                // Trailers from a client: gRPC defines none; treat as the end of the request.
                sessionDidReceiveEndOfData(stream: id)
            }
        } else {
            clientReceivedHeaders(stream, endStream: endStream)
        }
    }

    func sessionDidReceiveData(stream id: Int32, bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[id], stream.status == nil || !isServer else {
            // The call is over; hand the window back so other streams are not starved.
            session.consume(stream: id, bytes: bytes.count)
            return
        }
        do {
            let consume = try stream.inbound.receive(bytes)
            session.consume(stream: id, bytes: consume)
            deliverToReader(stream)
        } catch {
            session.consume(stream: id, bytes: stream.inbound.releaseAll(dropMessages: true))
            logger.debug("bad message on stream", metadata: ["stream": "\(id)", "error": "\(error)"])
            if isServer {
                abortServerCall(stream, status: error.status)
            } else {
                cancelClientCall(stream, status: error.status)
            }
        }
    }

    func sessionDidReceiveEndOfData(stream id: Int32) {
        guard let stream = streams[id] else { return }
        if isServer {
            guard stream.status == nil else { return }
            do {
                try stream.inbound.receiveEnd()
                if stream.readEnd == nil { stream.readEnd = .success(()) }
                deliverToReader(stream)
            } catch {
                abortServerCall(stream, status: error.status)
            }
        } else if stream.status == nil {
            completeClientCall(
                stream, status: GRPCStatus(.internalError, "the server ended the stream without trailers"), trailers: [:])
        }
    }

    func sessionStreamDidClose(stream id: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        stream.isClosed = true
        stream.deadlineTimer?.cancel()
        // Bytes never read still count against the connection window: give them back.
        session.consume(stream: id, bytes: stream.inbound.releaseAll())
        budget.remove(stream.outbound.discard())
        if isServer {
            if stream.status == nil {
                abortServerCall(stream, status: GRPCStatus(.cancelled, "the client cancelled the call"))
            } else {
                failWaiters(stream, with: GRPCStatus(.cancelled, "the call already ended"))
            }
        } else if stream.status == nil {
            completeClientCall(stream, status: Self.status(forReset: errorCode), trailers: [:])
        }
        blockedWriters.removeAll { $0 === stream }
    }

    func sessionDidReceiveSettings() {
        guard !prefaceReceived else { return }
        prefaceReceived = true
        prefaceTimer?.cancel()
        prefaceTimer = nil
        scheduleKeepalive()
        prefacePromise.succeed(())
    }

    func sessionDidReceivePingAck() {
        pingAckReceived()
    }

    func sessionDidReceiveGoaway(lastStreamID: Int32, errorCode: UInt32) {
        logger.debug("GOAWAY received", metadata: ["lastStream": "\(lastStreamID)", "code": "\(errorCode)"])
        if !isServer { isDraining = true }
    }

    func sessionDidSendEndStream(stream id: Int32) {
        // A server that answered before the request ended resets the rest of it
        // (RFC 9113 §8.1: RST_STREAM with NO_ERROR after a complete response).
        guard isServer, let stream = streams[id], !stream.inbound.receivedEnd else { return }
        session.resetStream(id, errorCode: 0)
    }

    func sessionCouldNotSendHeaders(stream id: Int32, reason: String) {
        logger.warning(
            "resetting stream: its response headers could not be sent",
            metadata: ["stream": "\(id)", "reason": "\(reason)"])
    }

    func sessionReadData(stream id: Int32, into buffer: UnsafeMutableRawBufferPointer) -> HTTP2DataSourceResult {
        guard let stream = streams[id] else { return .data(count: 0, end: .endStream) }
        let before = stream.outbound.queuedBytes
        let result = stream.outbound.read(into: buffer)
        let sent = before - stream.outbound.queuedBytes
        if sent > 0 {
            budget.remove(sent)
            sendProgress = true
        }
        return result
    }

    func sessionPeekData(stream id: Int32, limit: Int) -> HTTP2DataSourceResult {
        guard let stream = streams[id] else { return .data(count: 0, end: .endStream) }
        return stream.outbound.peek(limit: limit)
    }

    func sessionTakeData(stream id: Int32, count: Int, into pieces: inout [ByteBuffer]) -> Bool {
        // nghttp2 drops a closed stream's frame before asking, so this is only a safeguard.
        guard let stream = streams[id], count <= stream.outbound.queuedBytes else { return false }
        stream.outbound.take(count, into: &pieces)
        if count > 0 {
            budget.remove(count)
            sendProgress = true
        }
        return true
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
}
