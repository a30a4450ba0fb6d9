import Logging
import NIOCore

/// nghttp2's events, fed to the stream's state machine. Runs inside `session.receive` or
/// `produceOutput`; nothing here writes to the channel (the caller flushes afterwards).
extension GRPCConnectionHandler: HTTP2SessionDelegate {
    func sessionDidBeginHeaders(stream id: Int32) {
        if let stream = streams[id] {
            stream.headerBlock.removeAll()
            stream.headerBlockBytes = 0
        } else if role.acceptsPeerStreams {
            streams[id] = makeStream(id: id)
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
        let headers = stream.headerBlock
        stream.headerBlock = []
        perform(stream.machine.receivedHeaders(headers, endStream: endStream), on: stream)
    }

    func sessionDidReceiveData(stream id: Int32, bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[id] else {
            // The call is over; hand the window back so other streams are not starved.
            session.consume(stream: id, bytes: bytes.count)
            return
        }
        perform(stream.machine.receivedData(bytes), on: stream)
    }

    func sessionDidReceiveEndOfData(stream id: Int32) {
        guard let stream = streams[id] else { return }
        perform(stream.machine.receivedEndOfStream(), on: stream)
    }

    func sessionStreamDidClose(stream id: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        stream.deadlineTimer?.cancel()
        perform(stream.machine.streamClosed(errorCode: errorCode), on: stream)
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
        if role.stopsCallsOnGoaway { isDraining = true }
    }

    func sessionDidSendEndStream(stream id: Int32) {
        guard let stream = streams[id] else { return }
        perform(stream.machine.sentEndOfStream(), on: stream)
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
}
