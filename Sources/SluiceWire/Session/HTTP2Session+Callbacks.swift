import CNghttp2
import NIOCore

/// The C side of `HTTP2Session`: the callbacks nghttp2 calls and the data provider it
/// pulls DATA through. They are C function pointers, so they capture nothing and recover
/// the session from `user_data`.
extension HTTP2Session {
    static func owner(_ userData: UnsafeMutableRawPointer?) -> HTTP2Session? {
        guard let userData else { return nil }
        return Unmanaged<HTTP2Session>.fromOpaque(userData).takeUnretainedValue()
    }

    static var dataProvider: nghttp2_data_provider {
        nghttp2_data_provider(
            source: nghttp2_data_source(ptr: nil),
            read_callback: { session, stream, buffer, length, flags, _, userData -> Int in
                guard let owner = HTTP2Session.owner(userData), let delegate = owner.delegate, let buffer, let flags
                else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
                var result = delegate.sessionPeekData(stream: stream, limit: length)
                if case .data(let count, _) = result, count >= owner.noCopyMinimumBytes {
                    // The bytes are taken when nghttp2 writes the frame (`sendDataFrame`).
                    flags.pointee |= NGHTTP2_DATA_FLAG_NO_COPY.rawValue
                } else {
                    result = delegate.sessionReadData(
                        stream: stream, into: UnsafeMutableRawBufferPointer(start: buffer, count: length))
                }
                switch result {
                case .deferred:
                    return Int(NGHTTP2_ERR_DEFERRED.rawValue)
                case .data(let count, nil):
                    precondition(count <= length)
                    return count
                case .data(let count, .endStream?):
                    precondition(count <= length)
                    flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                    return count
                case .data(let count, .trailers(let trailers)?):
                    precondition(count <= length)
                    flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                    let rc = HTTP2Session.withNameValues(trailers) { nva, n in
                        nghttp2_submit_trailer(session, stream, nva, n)
                    }
                    // Without trailers the call would never end: nghttp2 resets this stream
                    // alone (RST_STREAM INTERNAL_ERROR) rather than leave it half-closed.
                    return rc == 0 ? count : Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
                }
            })
    }

    static func install(_ callbacks: OpaquePointer) {
        nghttp2_session_callbacks_set_send_data_callback(callbacks) { _, frame, header, length, _, userData in
            guard let frame, let header, let owner = HTTP2Session.owner(userData) else {
                return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
            }
            return owner.sendDataFrame(
                stream: frame.pointee.hd.stream_id, header: header, length: length, padding: frame.pointee.data.padlen)
        }
        // DATA frames as large as the peer accepts, up to our own maxFrameBytes (nghttp2
        // sizes its frame buffer to this, and clamps it to the flow-control windows).
        nghttp2_session_callbacks_set_data_source_read_length_callback(callbacks) {
            _, _, _, _, _, peerMaxFrameBytes, userData in
            guard let owner = HTTP2Session.owner(userData) else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
            return max(min(Int(peerMaxFrameBytes), owner.maxSendFrameBytes), 1)
        }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            guard let frame, let owner = HTTP2Session.owner(userData) else { return 0 }
            let stream = frame.pointee.hd.stream_id
            if owner.isServer && frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST {
                guard owner.admitRequestStream(stream) else { return 0 }
            }
            owner.delegate?.sessionDidBeginHeaders(stream: stream)
            return 0
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _, frame, name, nameLength, value, valueLength, _, userData in
            guard let frame, let name, let value, let owner = HTTP2Session.owner(userData),
                !owner.isRefused(frame.pointee.hd.stream_id), let delegate = owner.delegate
            else { return 0 }
            let accepted = delegate.sessionDidReceiveHeader(
                stream: frame.pointee.hd.stream_id,
                name: String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self),
                value: String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self))
            return accepted ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            guard let frame, let owner = HTTP2Session.owner(userData),
                !owner.isRefused(frame.pointee.hd.stream_id), let delegate = owner.delegate
            else { return 0 }
            let header = frame.pointee.hd
            let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
            let isAck = header.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0
            switch UInt32(header.type) {
            case NGHTTP2_HEADERS.rawValue:
                delegate.sessionDidReceiveHeaders(stream: header.stream_id, endStream: endStream)
            case NGHTTP2_DATA.rawValue where endStream:
                delegate.sessionDidReceiveEndOfData(stream: header.stream_id)
            case NGHTTP2_SETTINGS.rawValue where !isAck:
                delegate.sessionDidReceiveSettings()
            case NGHTTP2_PING.rawValue where isAck:
                delegate.sessionDidReceivePingAck()
            case NGHTTP2_GOAWAY.rawValue:
                delegate.sessionDidReceiveGoaway(
                    lastStreamID: frame.pointee.goaway.last_stream_id, errorCode: frame.pointee.goaway.error_code)
            default:
                break
            }
            return 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) {
            _, _, stream, data, length, userData in
            guard let owner = HTTP2Session.owner(userData) else { return 0 }
            if owner.isRefused(stream) {
                // Nobody reads a refused stream: hand its bytes back to the connection window.
                owner.consume(stream: stream, bytes: length)
                return 0
            }
            guard let data, let delegate = owner.delegate else { return 0 }
            delegate.sessionDidReceiveData(stream: stream, bytes: UnsafeRawBufferPointer(start: data, count: length))
            return 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, stream, errorCode, userData in
            guard let owner = HTTP2Session.owner(userData) else { return 0 }
            guard owner.forgetStream(stream) else { return 0 }
            owner.delegate?.sessionStreamDidClose(stream: stream, errorCode: errorCode)
            return 0
        }
        // A HEADERS frame nghttp2 takes at submit but cannot send (a header block over
        // `max_send_header_block_length`, a compression failure) is dropped silently, with
        // the stream left open: the peer would wait forever. A server resets such a stream.
        // (A client's request HEADERS is different: nghttp2 closes that stream itself, and the
        // close callback fails the call.) Errors saying the stream or session is already
        // ending need nothing more.
        nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks) { _, frame, errorCode, userData in
            guard let frame, let owner = HTTP2Session.owner(userData), owner.isServer,
                UInt32(frame.pointee.hd.type) == NGHTTP2_HEADERS.rawValue
            else { return 0 }
            switch errorCode {
            case NGHTTP2_ERR_STREAM_CLOSED.rawValue, NGHTTP2_ERR_STREAM_CLOSING.rawValue,
                NGHTTP2_ERR_SESSION_CLOSING.rawValue, NGHTTP2_ERR_STREAM_SHUT_WR.rawValue:
                return 0
            default:
                let stream = frame.pointee.hd.stream_id
                owner.resetStream(stream, errorCode: HTTP2Session.internalError)
                owner.delegate?.sessionCouldNotSendHeaders(
                    stream: stream, reason: String(cString: nghttp2_strerror(errorCode)))
                return 0
            }
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            guard let frame, let delegate = HTTP2Session.owner(userData)?.delegate else { return 0 }
            let header = frame.pointee.hd
            let type = UInt32(header.type)
            if type == NGHTTP2_HEADERS.rawValue || type == NGHTTP2_DATA.rawValue,
                header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
            {
                delegate.sessionDidSendEndStream(stream: header.stream_id)
            }
            return 0
        }
    }

    /// Builds a temporary `nghttp2_nv` array over copies of the strings; nghttp2 copies
    /// name/value pairs during submit, so nothing outlives `body`.
    static func withNameValues<R>(
        _ headers: [(name: String, value: String)], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R
    ) -> R {
        let total = headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count }
        let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: max(total, 1))
        defer { storage.deallocate() }
        let nva = UnsafeMutablePointer<nghttp2_nv>.allocate(capacity: max(headers.count, 1))
        defer { nva.deallocate() }
        var offset = 0
        for (index, header) in headers.enumerated() {
            let name = storage + offset
            for byte in header.name.utf8 { storage[offset] = byte; offset += 1 }
            let value = storage + offset
            for byte in header.value.utf8 { storage[offset] = byte; offset += 1 }
            (nva + index).initialize(
                to: nghttp2_nv(
                    name: name, value: value, namelen: header.name.utf8.count, valuelen: header.value.utf8.count,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
        }
        return body(nva, headers.count)
    }
}
