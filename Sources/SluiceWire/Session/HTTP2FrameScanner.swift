/// Walks the frame headers of a server's received bytes, ahead of nghttp2, to find where
/// the input must be cut so that one `nghttp2_session_mem_recv` call cannot begin more
/// request streams than nghttp2's stream ceiling still has room for (see `HTTP2Session`,
/// "Stream cap": refused streams count against that ceiling until their RST_STREAM is
/// written, which can only happen between two calls).
///
/// Input layout (RFC 9113 §3.4, §4.1): a server's input starts with the 24-byte client
/// magic `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`; then frames, each a 9-byte header (length: 3
/// bytes, big endian; type: 1, HEADERS = 0x1; flags: 1; stream id: 4) and `length` bytes
/// of payload. nghttp2 begins a stream no earlier than the byte that completes a HEADERS
/// frame's header, so a cut just before that byte holds the stream back. Every HEADERS
/// frame is counted, trailers included: counting too many only cuts earlier.
///
/// The scanner only reads lengths and types, it validates nothing: bytes nghttp2 rejects end
/// the connection whatever the scanner made of them.
struct HTTP2FrameScanner {
    private static let clientMagicBytes = 24
    private static let frameHeaderBytes = 9
    private static let headersType: UInt8 = 0x1

    private var magicBytesLeft: Int
    private var payloadBytesLeft = 0
    /// The bytes of a frame header seen so far (a header can be split across reads).
    private var header: [UInt8] = []

    init(skipsClientMagic: Bool) {
        magicBytesLeft = skipsClientMagic ? Self.clientMagicBytes : 0
        header.reserveCapacity(Self.frameHeaderBytes)
    }

    /// The length of the longest prefix of `bytes` that completes at most `maxHeaders`
    /// HEADERS frame headers; the scanner moves past exactly that prefix (the caller feeds
    /// it to nghttp2 and later passes the rest again).
    mutating func prefix(of bytes: UnsafeRawBufferPointer, completingAtMost maxHeaders: Int) -> Int {
        var index = 0
        var headers = 0
        while index < bytes.count {
            if magicBytesLeft > 0 {
                let skipped = min(magicBytesLeft, bytes.count - index)
                magicBytesLeft -= skipped
                index += skipped
            } else if payloadBytesLeft > 0 {
                let skipped = min(payloadBytesLeft, bytes.count - index)
                payloadBytesLeft -= skipped
                index += skipped
            } else {
                if header.count == Self.frameHeaderBytes - 1 && header[3] == Self.headersType {
                    guard headers < maxHeaders else { break }
                    headers += 1
                }
                header.append(bytes[index])
                index += 1
                if header.count == Self.frameHeaderBytes {
                    payloadBytesLeft = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
                    header.removeAll(keepingCapacity: true)
                }
            }
        }
        return index
    }
}
