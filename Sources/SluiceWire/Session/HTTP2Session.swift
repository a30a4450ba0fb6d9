import CNghttp2
import NIOCore

/// Events an `HTTP2Session` reports while it parses input (`receive`) or produces output
/// (`produceOutput`). Always called on the connection's event loop, from inside nghttp2; an
/// implementation may queue frames (submit, RST, consume) but must not re-enter `receive` or
/// `produceOutput`.
protocol HTTP2SessionDelegate: AnyObject {
    func sessionDidBeginHeaders(stream: Int32)
    /// Returns false to reset the stream (nghttp2 sends RST_STREAM(INTERNAL_ERROR)).
    func sessionDidReceiveHeader(stream: Int32, name: String, value: String) -> Bool
    func sessionDidReceiveHeaders(stream: Int32, endStream: Bool)
    func sessionDidReceiveData(stream: Int32, bytes: UnsafeRawBufferPointer)
    /// END_STREAM arrived on a DATA frame (END_STREAM on HEADERS is reported by `…Headers`).
    func sessionDidReceiveEndOfData(stream: Int32)
    func sessionStreamDidClose(stream: Int32, errorCode: UInt32)
    func sessionDidReceiveSettings()
    func sessionDidReceivePingAck()
    func sessionDidReceiveGoaway(lastStreamID: Int32, errorCode: UInt32)
    func sessionDidSendEndStream(stream: Int32)
    /// A response HEADERS frame (headers or trailers) for `stream` was dropped by nghttp2
    /// (`reason`: a header block over its limit, say). The session has already queued
    /// RST_STREAM(INTERNAL_ERROR) for the stream so its peer is not left waiting.
    func sessionCouldNotSendHeaders(stream: Int32, reason: String)
    /// nghttp2 asks for up to `buffer.count` bytes of DATA for `stream` (flow-control windows
    /// already applied). Copy them into `buffer`.
    func sessionReadData(stream: Int32, into buffer: UnsafeMutableRawBufferPointer) -> HTTP2DataSourceResult
    /// What `sessionReadData` would answer for up to `limit` bytes, without taking them (the
    /// no-copy path decides on the length first).
    func sessionPeekData(stream: Int32, limit: Int) -> HTTP2DataSourceResult
    /// Takes exactly `count` bytes of `stream`'s DATA, which a peek offered, as buffers
    /// appended to `pieces` (no copy: they go to the socket as they are). False if they are
    /// not there (the stream is gone): nghttp2 then resets the stream.
    func sessionTakeData(stream: Int32, count: Int, into pieces: inout [ByteBuffer]) -> Bool
}

enum HTTP2DataSourceResult {
    /// Nothing to send now; the session stops asking until `resumeData(stream:)`.
    case deferred
    /// `count` bytes were written; `end` says whether the stream's body ends with them.
    case data(count: Int, end: HTTP2BodyEnd?)
}

enum HTTP2BodyEnd {
    /// END_STREAM on the last DATA frame (a client half-closing).
    case endStream
    /// A trailing HEADERS frame with END_STREAM (a server's gRPC status).
    case trailers([(name: String, value: String)])
}

/// The HTTP/2 settings and defences of one session; the defaults are `WireLimits`'s.
struct HTTP2SessionSettings {
    var isServer: Bool
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise. A server refuses request streams above
    /// it itself, with RST_STREAM(REFUSED_STREAM) (see `HTTP2Session`, "Stream cap").
    var maxConcurrentStreams: Int
    /// Streams above the cap a peer may have open (refused, their RST_STREAM not yet sent)
    /// before nghttp2's own check ends the connection with GOAWAY(PROTOCOL_ERROR).
    var streamCapHeadroom: Int = WireLimits.defaults.streamCapHeadroom.value
    /// SETTINGS_INITIAL_WINDOW_SIZE: how many unconsumed bytes a peer may send per stream.
    var initialStreamWindowBytes: Int
    /// Our connection-level receive window (sum over all streams).
    var connectionWindowBytes: Int
    /// SETTINGS_MAX_FRAME_SIZE we accept; also the largest DATA frame we send (when the
    /// peer accepts it), which bounds nghttp2's frame buffer.
    var maxFrameBytes: Int
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise; also enforced per stream by the delegate.
    var maxHeaderListBytes: Int
    /// Outstanding PING/SETTINGS acks nghttp2 queues before it drops the connection
    /// (a peer flooding PINGs without reading the acks).
    var maxOutboundAcks: Int = WireLimits.defaults.maxOutboundAcks.value
    /// Token bucket for incoming RST_STREAM (rapid reset, CVE-2023-44487).
    var resetRateBurst = UInt64(WireLimits.defaults.resetRateBurst.value)
    var resetRatePerSecond = UInt64(WireLimits.defaults.resetRatePerSecond.value)
    /// CONTINUATION frames allowed after one HEADERS (CVE-2024-27316 style floods).
    var maxContinuations: Int = WireLimits.defaults.maxContinuations.value
    /// Entries in the received SETTINGS frame nghttp2 accepts.
    var maxSettingsEntries: Int = WireLimits.defaults.maxSettingsEntries.value
    /// DATA frames carrying at least this many bytes are sent without copying (nghttp2's
    /// NGHTTP2_DATA_FLAG_NO_COPY): the frame header is serialised and the payload goes to
    /// the socket as the application's own buffers. Smaller ones are copied into nghttp2's
    /// frame buffer, which costs less than an extra buffer per frame.
    var noCopyMinimumBytes: Int = 4096
}

/// The C-interop shell around one `nghttp2_session`. Owns the pointer; nothing outside this
/// file and its callbacks (`HTTP2Session+Callbacks.swift`) sees it. Confined to one event
/// loop (not Sendable). nghttp2 calls back through C function pointers that recover `self`
/// from `user_data`; they never capture.
///
/// Stream cap: once SETTINGS are acknowledged, nghttp2 treats a request stream above its
/// local SETTINGS_MAX_CONCURRENT_STREAMS as a connection error (GOAWAY PROTOCOL_ERROR); only
/// while they are unacknowledged does it refuse the stream. RFC 9113 §5.1.2 lets us refuse
/// instead, which is what gRPC clients expect (REFUSED_STREAM is safe to retry). So a server
/// session tells nghttp2 a ceiling of cap + headroom, rewrites that value in the SETTINGS
/// frame on its way out so the peer is told the cap itself, and answers each request stream
/// above the cap with RST_STREAM(REFUSED_STREAM) from the begin-headers callback, hiding the
/// stream's later callbacks from the delegate. A refused stream still counts against
/// nghttp2's ceiling until its RST_STREAM is written, and nothing is written while nghttp2
/// parses input; so `receive` feeds nghttp2 only as many new streams at a time as the
/// ceiling has room for (`HTTP2FrameScanner` finds where to cut) and leaves the rest to the
/// caller, to pass again once output was produced. nghttp2's check is never reached
/// (docs/wire.md, "Stream cap").
final class HTTP2Session {
    /// RST_STREAM / GOAWAY error code INTERNAL_ERROR (RFC 9113 §7).
    static let internalError = NGHTTP2_INTERNAL_ERROR.rawValue

    private var session: OpaquePointer?
    /// nghttp2 could not even queue the GOAWAY that ends the session (out of memory): no
    /// more I/O, and the caller closes the connection. (The session itself is freed in
    /// deinit; this may be set from inside an nghttp2 callback, where freeing it is not safe.)
    private var hasFailed = false
    weak var delegate: (any HTTP2SessionDelegate)?
    let isServer: Bool
    /// The advertised cap on request streams (server sessions).
    private let streamCap: Int
    /// The value nghttp2 enforces as our SETTINGS_MAX_CONCURRENT_STREAMS: request streams
    /// it holds open at once (accepted plus refused) above this end the connection.
    private let streamCeiling: Int
    /// Server sessions: where the next frame header starts in the input (see `receive`).
    private var inputScanner: HTTP2FrameScanner
    /// Request streams the delegate was told about and that are not closed yet.
    private var acceptedStreams: Set<Int32> = []
    /// Request streams refused above the cap, until nghttp2 closes them (RST_STREAM sent).
    private var refusedStreams: Set<Int32> = []
    /// The cap to write over nghttp2's ceiling in our first SETTINGS frame, until written.
    private var advertisedCapPatch: UInt32?
    let maxSendFrameBytes: Int
    let noCopyMinimumBytes: Int
    /// While `produceOutput` runs: frames serialised since the last no-copy DATA payload,
    /// the buffers already in order, their bytes, and the pass's limit (the no-copy
    /// callback pauses nghttp2 once the limit is reached).
    private var outputFrames = ByteBuffer()
    private var outputAllocator = ByteBufferAllocator()
    private var outputPieces: [ByteBuffer] = []
    private var outputBytes = 0
    private var outputLimit = 0

    init(settings: HTTP2SessionSettings) throws(HTTP2SessionError) {
        // Values outside what RFC 9113 allows are clamped rather than trusted (§6.5.2, §6.9.1).
        var settings = settings
        settings.initialStreamWindowBytes = min(max(settings.initialStreamWindowBytes, 1), Int(Int32.max))
        settings.connectionWindowBytes = min(max(settings.connectionWindowBytes, 65_535), Int(Int32.max))
        settings.maxFrameBytes = min(max(settings.maxFrameBytes, WireLimits.defaults.allowedFrameBytes.value.lowerBound), WireLimits.defaults.allowedFrameBytes.value.upperBound)
        settings.maxConcurrentStreams = min(max(settings.maxConcurrentStreams, 1), Int(UInt32.max))
        settings.maxHeaderListBytes = min(max(settings.maxHeaderListBytes, 1_024), Int(UInt32.max))
        settings.streamCapHeadroom = max(settings.streamCapHeadroom, 0)
        isServer = settings.isServer
        streamCap = settings.maxConcurrentStreams
        maxSendFrameBytes = settings.maxFrameBytes
        noCopyMinimumBytes = max(settings.noCopyMinimumBytes, 1)
        // What nghttp2 enforces: the cap plus headroom for a server (see "Stream cap" above).
        // The headroom is also how many refusals one pass of input may queue: at least 1.
        let streamCeiling =
            settings.isServer
            ? min(settings.maxConcurrentStreams + max(settings.streamCapHeadroom, 1), Int(UInt32.max))
            : settings.maxConcurrentStreams
        self.streamCeiling = streamCeiling
        inputScanner = HTTP2FrameScanner(skipsClientMagic: settings.isServer)
        if streamCeiling != settings.maxConcurrentStreams {
            advertisedCapPatch = UInt32(settings.maxConcurrentStreams)
        }

        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else { throw .outOfMemory }
        defer { nghttp2_session_callbacks_del(callbacks) }
        Self.install(callbacks)

        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0, let option else { throw .outOfMemory }
        defer { nghttp2_option_del(option) }
        // Window updates are sent by `consume` as the application reads: flow control is
        // the backpressure (docs/wire.md, "Receive side").
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_max_outbound_ack(option, settings.maxOutboundAcks)
        nghttp2_option_set_stream_reset_rate_limit(option, settings.resetRateBurst, settings.resetRatePerSecond)
        nghttp2_option_set_max_continuations(option, settings.maxContinuations)
        nghttp2_option_set_max_settings(option, settings.maxSettingsEntries)
        // We never send header blocks bigger than the peer could take; keep nghttp2's own cap.
        nghttp2_option_set_max_send_header_block_length(option, max(settings.maxHeaderListBytes, 16_384))
        nghttp2_option_set_max_deflate_dynamic_table_size(option, WireLimits.defaults.hpackEncoderTableBytes.value)

        let userData = Unmanaged.passUnretained(self).toOpaque()
        let rc =
            settings.isServer
            ? nghttp2_session_server_new2(&session, callbacks, userData, option)
            : nghttp2_session_client_new2(&session, callbacks, userData, option)
        guard rc == 0, let session else { throw .outOfMemory }

        var entries = [
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                value: UInt32(streamCeiling)),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                value: UInt32(settings.initialStreamWindowBytes)),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: UInt32(settings.maxFrameBytes)),
            nghttp2_settings_entry(
                settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                value: UInt32(settings.maxHeaderListBytes)),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
        ]
        guard nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count) == 0 else {
            throw .outOfMemory
        }
        guard
            nghttp2_session_set_local_window_size(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(settings.connectionWindowBytes)) == 0
        else { throw .outOfMemory }
    }

    deinit {
        if let session { nghttp2_session_del(session) }
    }

    // MARK: I/O

    /// Feeds received bytes to nghttp2, as many as it can take now: a server session stops
    /// before a HEADERS frame that could begin a request stream nghttp2 has no room for
    /// (refused streams wait for their RST_STREAM to be written; see "Stream cap"). Returns
    /// how many bytes were taken; the caller produces output (which writes the refusals)
    /// and passes the rest again, or holds it while the socket is not writable
    /// (`acceptsNewStreams` says when it may pass it again). An error is a connection error
    /// (bad preface, protocol violation, flood limit): the caller closes the connection
    /// after sending what is queued.
    func receive(_ bytes: ByteBuffer) -> (consumed: Int, error: HTTP2SessionError?) {
        guard let session, !hasFailed else { return (0, .closed) }
        return bytes.withUnsafeReadableBytes { raw -> (consumed: Int, error: HTTP2SessionError?) in
            var consumed = 0
            while consumed < raw.count, acceptsNewStreams, !hasFailed {
                let rest = UnsafeRawBufferPointer(rebasing: raw[consumed...])
                let length =
                    isServer
                    ? inputScanner.prefix(of: rest, completingAtMost: streamCeiling - openRequestStreams) : rest.count
                guard length > 0, let base = rest.baseAddress else { break }
                let rc = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), length)
                if rc < 0 { return (consumed, .nghttp2(Int32(truncatingIfNeeded: rc))) }
                // No callback pauses nghttp2, so it takes all it is given.
                assert(rc == length, "nghttp2 consumed \(rc) of \(length) bytes")
                consumed += length
            }
            return (consumed, nil)
        }
    }

    /// Request streams nghttp2 holds open: those the delegate was told about and those
    /// refused whose RST_STREAM is not written yet.
    private var openRequestStreams: Int { acceptedStreams.count + refusedStreams.count }

    /// A request stream begins (server, begin-headers callback): true if it is within the
    /// cap; otherwise RST_STREAM(REFUSED_STREAM) is queued and the delegate never hears of it.
    func admitRequestStream(_ stream: Int32) -> Bool {
        guard acceptedStreams.count < streamCap else {
            refusedStreams.insert(stream)
            resetStream(stream, errorCode: NGHTTP2_REFUSED_STREAM.rawValue)
            return false
        }
        acceptedStreams.insert(stream)
        return true
    }

    func isRefused(_ stream: Int32) -> Bool { refusedStreams.contains(stream) }

    /// A stream closed: false if it was a refused one (its RST_STREAM is written now).
    func forgetStream(_ stream: Int32) -> Bool {
        guard refusedStreams.remove(stream) == nil else { return false }
        acceptedStreams.remove(stream)
        return true
    }

    /// False while nghttp2 could not take one more request stream without ending the
    /// connection: input waits until output has written the pending refusals.
    var acceptsNewStreams: Bool { !isServer || openRequestStreams < streamCeiling }

    /// Serialises queued frames, appending the bytes to send to `pieces` in order, until
    /// nothing is queued or about `limit` bytes were produced (a no-copy DATA frame may pass
    /// it by one frame). Frames nghttp2 serialises are copied into buffers from `allocator`;
    /// large DATA payloads are the application's own buffers (`sessionTakeData`). Returns
    /// an error for a fatal session failure.
    func produceOutput(
        into pieces: inout [ByteBuffer], allocator: ByteBufferAllocator, limit: Int
    ) -> HTTP2SessionError? {
        guard let session, !hasFailed else { return .closed }
        precondition(outputPieces.isEmpty && outputBytes == 0, "produceOutput is not re-entered")
        outputAllocator = allocator
        outputFrames = allocator.buffer(capacity: 16 * 1024)
        outputLimit = limit
        defer {
            sealOutputFrames()
            pieces.append(contentsOf: outputPieces)
            outputPieces.removeAll(keepingCapacity: true)
            outputFrames = ByteBuffer()
            outputBytes = 0
        }
        while outputBytes < limit, !hasFailed {
            var chunk: UnsafePointer<UInt8>?
            let count = nghttp2_session_mem_send(session, &chunk)
            if count < 0 { return .nghttp2(Int32(truncatingIfNeeded: count)) }
            // 0 also after the no-copy callback paused the session at the limit.
            guard count > 0, let chunk else { break }
            outputFrames.writeBytes(UnsafeRawBufferPointer(start: chunk, count: count))
            outputBytes += count
        }
        return nil
    }

    /// Moves the serialised frames gathered so far into `outputPieces` (before a no-copy
    /// payload, and at the end of a pass).
    private func sealOutputFrames() {
        guard outputFrames.readableBytes > 0 else { return }
        if advertisedCapPatch != nil { patchAdvertisedCap(in: &outputFrames, from: outputFrames.readerIndex) }
        outputPieces.append(outputFrames)
        // A new buffer: writing on into one whose storage a piece shares would copy it.
        outputFrames = outputAllocator.buffer(capacity: 256)
    }

    /// nghttp2's send_data_callback for a NO_COPY DATA frame (layout: RFC 9113 §6.1): the
    /// 9-byte frame header nghttp2 serialised, the pad length byte if padded, the payload,
    /// the padding. nghttp2 never pads here (no padding callback is set), but the layout is
    /// honoured anyway.
    func sendDataFrame(stream: Int32, header: UnsafePointer<UInt8>, length: Int, padding: Int) -> Int32 {
        guard let delegate else { return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue }
        let headerLength = padding > 0 ? 10 : 9
        outputFrames.writeBytes(UnsafeRawBufferPointer(start: header, count: 9))
        if padding > 0 { outputFrames.writeInteger(UInt8(padding - 1)) }
        sealOutputFrames()
        let before = outputPieces.count
        guard delegate.sessionTakeData(stream: stream, count: length, into: &outputPieces) else {
            // Take the header back (the last piece ends with it); nghttp2 resets the stream.
            outputPieces[before - 1].moveWriterIndex(to: outputPieces[before - 1].writerIndex - headerLength)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
        }
        precondition(
            outputPieces[before...].reduce(0) { $0 + $1.readableBytes } == length,
            "the delegate hands over exactly the bytes it offered")
        if padding > 1 { outputFrames.writeRepeatingByte(0, count: padding - 1) }
        outputBytes += 9 + length + padding
        // Stops mem_send after this frame once the pass has its bytes; else nghttp2 would
        // go on serialising every DATA frame the windows allow in one call.
        return outputBytes >= outputLimit ? NGHTTP2_ERR_PAUSE.rawValue : 0
    }

    /// Writes the cap over nghttp2's ceiling in the first non-ACK SETTINGS frame among the
    /// bytes from `start` on. Frame layout (RFC 9113 §4.1, §6.5.1): length (3 bytes, big
    /// endian), type (1; SETTINGS = 0x4), flags (1; ACK = 0x1), stream id (4), then 6-byte
    /// entries: identifier (2; MAX_CONCURRENT_STREAMS = 0x3), value (4, big endian). A server
    /// writes no preface, so its output starts at a frame boundary and its first frame is
    /// the SETTINGS submitted in init.
    private func patchAdvertisedCap(in buffer: inout ByteBuffer, from start: Int) {
        guard let cap = advertisedCapPatch else { return }
        var frame = start
        while let length = buffer.getInteger(at: frame, as: UInt32.self).map({ Int($0 >> 8) }),
            let type = buffer.getInteger(at: frame + 3, as: UInt8.self),
            let flags = buffer.getInteger(at: frame + 4, as: UInt8.self),
            frame + 9 + length <= buffer.writerIndex
        {
            if type == 0x4 && flags & 0x1 == 0 {
                var entry = frame + 9
                while entry + 6 <= frame + 9 + length {
                    if buffer.getInteger(at: entry, as: UInt16.self) == 0x3 {
                        buffer.setInteger(cap, at: entry + 2)
                    }
                    entry += 6
                }
                advertisedCapPatch = nil
                return
            }
            frame += 9 + length
        }
    }

    /// False once both sides are done (after GOAWAY both ways, or a fatal error).
    var isAlive: Bool {
        guard let session, !hasFailed else { return false }
        return nghttp2_session_want_read(session) != 0 || nghttp2_session_want_write(session) != 0
    }

    var wantsWrite: Bool {
        guard let session else { return false }
        return nghttp2_session_want_write(session) != 0
    }

    // MARK: Submitting frames

    /// HEADERS for a response. With `hasBody`, DATA is pulled from the delegate afterwards;
    /// without it the HEADERS frame carries END_STREAM (a trailers-only response).
    func submitResponse(stream: Int32, headers: [(name: String, value: String)], hasBody: Bool) -> Bool {
        guard let session else { return false }
        return Self.withNameValues(headers) { nva, count in
            if hasBody {
                var provider = Self.dataProvider
                return nghttp2_submit_response(session, stream, nva, count, &provider) == 0
            }
            return nghttp2_submit_response(session, stream, nva, count, nil) == 0
        }
    }

    /// A request with a streamed body; returns the new stream's id, or nil if none is
    /// available (stream ids exhausted, session closing).
    func submitRequest(headers: [(name: String, value: String)]) -> Int32? {
        guard let session else { return nil }
        let id = Self.withNameValues(headers) { nva, count in
            var provider = Self.dataProvider
            return nghttp2_submit_request(session, nil, nva, count, &provider, nil)
        }
        return id > 0 ? id : nil
    }

    func resumeData(stream: Int32) {
        guard let session else { return }
        // Fails only for a stream that is gone or whose data is not deferred: nothing to resume.
        _ = nghttp2_session_resume_data(session, stream)
    }

    /// Queues RST_STREAM. nghttp2 refuses only when it cannot allocate; then the stream
    /// could be left without an answer, so the whole session ends instead (GOAWAY, and the
    /// caller closes the connection once it is written, which ends every stream).
    func resetStream(_ stream: Int32, errorCode: UInt32) {
        guard let session else { return }
        if nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, errorCode) != 0 {
            terminate(errorCode: Self.internalError)
        }
    }

    /// Tells nghttp2 the application has taken `bytes` of `stream`'s DATA; it sends
    /// WINDOW_UPDATEs (stream and connection) once enough has been consumed.
    func consume(stream: Int32, bytes: Int) {
        guard let session, bytes > 0 else { return }
        let rc = nghttp2_session_consume(session, stream, bytes)
        if rc != 0 {
            // The stream is already gone: its bytes still count against the connection window.
            _ = nghttp2_session_consume_connection(session, bytes)
        }
    }

    /// Fails only when nghttp2 cannot allocate; each caller has a timer that acts as if the
    /// PING went unanswered (keepalive closes the connection, shutdown sends the final GOAWAY).
    func ping(payload: UInt64) {
        guard let session else { return }
        var bytes = payload.bigEndian
        withUnsafeBytes(of: &bytes) { raw in
            _ = nghttp2_submit_ping(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), raw.baseAddress?.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// GOAWAY naming the last stream we processed: streams above it were never seen and
    /// the peer may retry them elsewhere.
    /// If it cannot be queued (nghttp2 out of memory) the session is terminated instead.
    func goaway(errorCode: UInt32) {
        guard let session else { return }
        let last = nghttp2_session_get_last_proc_stream_id(session)
        if nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, nil, 0) != 0 {
            terminate(errorCode: errorCode)
        }
    }

    /// GOAWAY naming stream 2^31-1: "stop opening streams", while those in flight still count.
    /// Fails only when nghttp2 cannot allocate or a GOAWAY went out already; the final GOAWAY
    /// follows on a timer either way.
    func shutdownNotice() {
        guard let session else { return }
        _ = nghttp2_submit_shutdown_notice(session)
    }

    /// Sends GOAWAY and makes the session want no more I/O once it is written. If nghttp2
    /// cannot even queue that, the session is done at once (`hasFailed`): `isAlive` turns
    /// false and the caller closes the connection, which ends every stream.
    func terminate(errorCode: UInt32) {
        guard let session else { return }
        if nghttp2_session_terminate_session(session, errorCode) != 0 { hasFailed = true }
    }

    /// The peer's SETTINGS_MAX_HEADER_LIST_SIZE (unlimited until its SETTINGS say otherwise).
    /// nghttp2 does not enforce it on what we send; the server sizes status messages by it.
    var peerMaxHeaderListBytes: Int {
        guard let session else { return 0 }
        return Int(nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE))
    }

    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2's default until its SETTINGS arrive).
    var peerMaxConcurrentStreams: Int {
        guard let session else { return 0 }
        return Int(nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS))
    }

    /// Bytes of DATA the peer still lets us send on `stream` (min of stream and connection windows).
    func sendWindow(stream: Int32) -> Int {
        guard let session else { return 0 }
        let streamWindow = Int(nghttp2_session_get_stream_remote_window_size(session, stream))
        return min(streamWindow, Int(nghttp2_session_get_remote_window_size(session)))
    }
}

enum HTTP2SessionError: Error, Equatable, CustomStringConvertible {
    case outOfMemory
    case closed
    case nghttp2(Int32)

    var description: String {
        switch self {
        case .outOfMemory: return "nghttp2 could not allocate"
        case .closed: return "session closed"
        case .nghttp2(let code): return String(cString: nghttp2_strerror(code)) + " (\(code))"
        }
    }
}
