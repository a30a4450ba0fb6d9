import DequeModule
import NIOCore

/// The receive half of one stream: decodes DATA bytes into messages and decides when those
/// bytes may be handed back to the peer as HTTP/2 window (`nghttp2_session_consume`).
///
/// Backpressure rule: received bytes are returned to the peer at once while fewer than
/// `limitBytes` of decoded messages wait for the application; past that they stay
/// unconsumed, so the peer's stream window runs down to zero and it stops sending. Reading
/// a message (`take`) releases the held bytes again.
///
/// Memory per stream is bounded by `limitBytes` + one DATA frame (a chunk is consumed whole
/// when it arrives below the limit) + the stream's receive window (unconsumed bytes) + one
/// partial message (at most `maxPayloadBytes`, enforced by the decoder). A plain struct: no I/O.
struct InboundMessageBuffer {
    let limitBytes: Int
    private var decoder: GRPCMessageDecoder
    private var messages: Deque<ByteBuffer> = []
    /// Wire bytes (prefix + payload) of the messages in `messages`.
    private(set) var bufferedMessageBytes = 0
    /// DATA bytes received and not yet returned to the peer.
    private(set) var unconsumedBytes = 0
    /// The peer sent END_STREAM.
    private(set) var receivedEnd = false

    init(limitBytes: Int, maxMessageBytes: Int) {
        precondition(limitBytes > 0)
        self.limitBytes = limitBytes
        self.decoder = GRPCMessageDecoder(maxPayloadBytes: maxMessageBytes)
    }

    var hasMessages: Bool { !messages.isEmpty }

    /// Bytes of a message still being received (held by the decoder).
    var partialMessageBytes: Int { decoder.bufferedBytes }

    /// Takes received DATA bytes. Returns how many bytes to consume now.
    mutating func receive(_ bytes: UnsafeRawBufferPointer) throws(GRPCFramingError) -> Int {
        unconsumedBytes += bytes.count
        decoder.append(bytes)
        while let message = try decoder.next() {
            messages.append(message)
            bufferedMessageBytes += GRPCMessageFrame.prefixBytes + message.readableBytes
        }
        return releasable()
    }

    /// The peer ended its half of the stream. Throws if it ended inside a message.
    mutating func receiveEnd() throws(GRPCFramingError) {
        receivedEnd = true
        try decoder.checkEnd()
    }

    /// The oldest unread message and how many bytes to consume now that it was read.
    mutating func take() -> (message: ByteBuffer, consume: Int)? {
        guard let message = messages.popFirst() else { return nil }
        bufferedMessageBytes -= GRPCMessageFrame.prefixBytes + message.readableBytes
        precondition(bufferedMessageBytes >= 0)
        return (message, releasable())
    }

    /// Everything still unconsumed, for when the stream is closed (the connection window
    /// must get these bytes back). Decoded messages stay readable unless `dropMessages`.
    mutating func releaseAll(dropMessages: Bool = false) -> Int {
        if dropMessages {
            messages.removeAll()
            bufferedMessageBytes = 0
        }
        defer { unconsumedBytes = 0 }
        return unconsumedBytes
    }

    private mutating func releasable() -> Int {
        guard bufferedMessageBytes < limitBytes else { return 0 }
        defer { unconsumedBytes = 0 }
        return unconsumedBytes
    }
}
