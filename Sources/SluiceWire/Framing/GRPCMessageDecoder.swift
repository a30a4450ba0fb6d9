import NIOCore

/// Splits the bytes of one HTTP/2 stream into gRPC messages (layout in `GRPCMessageFrame`).
///
/// Feed bytes as they arrive with `append`, then call `next()` until it returns nil. The
/// decoder keeps at most one partial message; its size is checked against
/// `maxPayloadBytes` as soon as the 5-byte prefix is complete, so a lying prefix
/// (e.g. 0xFFFFFFFF) fails before a single payload byte is stored. A plain struct: no I/O.
struct GRPCMessageDecoder {
    /// How far ahead of the received bytes a partial message's buffer is sized (`next`).
    static let eagerReserveBytes = WireLimits.defaults.eagerReserveBytes.value
    let maxPayloadBytes: Int
    private var buffer: ByteBuffer
    /// Set once a framing error was reported; every later call reports it again.
    private var failure: GRPCFramingError?

    init(maxPayloadBytes: Int, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.maxPayloadBytes = max(maxPayloadBytes, 0)
        self.buffer = allocator.buffer(capacity: 0)
    }

    /// Bytes received but not yet returned as messages.
    var bufferedBytes: Int { buffer.readableBytes }

    /// The receive buffer's capacity (tests: what a partial message holds).
    var reservedBytes: Int { buffer.capacity }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil else { return }
        buffer.writeBytes(bytes)
    }

    mutating func append(_ bytes: ByteBuffer) {
        guard failure == nil else { return }
        buffer.writeImmutableBuffer(bytes)
    }

    /// The next complete message payload, or nil if more bytes are needed.
    mutating func next() throws(GRPCFramingError) -> ByteBuffer? {
        if let failure { throw failure }
        guard let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let length = buffer.getInteger(at: buffer.readerIndex + 1, endianness: .big, as: UInt32.self)
        else { return nil }
        switch flag {
        case 0: break
        case 1: return try fail(.compressedWithoutEncoding)
        default: return try fail(.invalidFlag(flag))
        }
        guard length <= maxPayloadBytes else {
            return try fail(.messageTooLarge(length: length, limit: maxPayloadBytes))
        }
        let framedLength = GRPCMessageFrame.prefixBytes + Int(length)
        guard buffer.readableBytes >= framedLength else {
            // Room for the whole message at once, so a large message is neither copied again
            // each time the buffer doubles nor copied on write because earlier messages'
            // slices share the storage it starts in; only the partial message moves. At most
            // `eagerReserveBytes` ahead of what arrived: the size is the peer's word, and a
            // prefix alone must not make us hold megabytes (beyond it the buffer grows as
            // bytes come, as before).
            if buffer.readerIndex > 0 || buffer.capacity < min(framedLength, Self.eagerReserveBytes) {
                let capacity = min(framedLength, buffer.readableBytes + Self.eagerReserveBytes)
                var room = ByteBufferAllocator().buffer(capacity: capacity)
                room.writeImmutableBuffer(buffer)
                buffer = room
            }
            return nil
        }
        buffer.moveReaderIndex(forwardBy: GRPCMessageFrame.prefixBytes)
        // A slice shares storage with the receive buffer; no copy per message.
        guard let message = buffer.readSlice(length: Int(length)) else { return nil }
        if buffer.readableBytes == 0 {
            // Start the next message at the buffer's beginning instead of growing it forever.
            buffer.clear()
        }
        return message
    }

    /// Call when the peer ended the stream: leftover bytes are a truncated message.
    func checkEnd() throws(GRPCFramingError) {
        if let failure { throw failure }
        if buffer.readableBytes > 0 { throw .truncated(bufferedBytes: buffer.readableBytes) }
    }

    private mutating func fail(_ error: GRPCFramingError) throws(GRPCFramingError) -> ByteBuffer? {
        failure = error
        buffer.clear()
        throw error
    }
}
