import DequeModule
import NIOCore

/// The send half of one stream: framed messages waiting for nghttp2 to pull them as DATA
/// (when the peer's windows allow), then how the body ends. A plain struct: no I/O.
///
/// Bounded by `SendBudget`: a writer may only append while the connection's queued bytes are
/// under the budget, so this queue holds at most the budget plus one message.
struct OutboundMessageQueue {
    private var chunks: Deque<ByteBuffer> = []
    private(set) var queuedBytes = 0
    /// Set once the application finished its half; sent after the last queued byte.
    private(set) var end: HTTP2BodyEnd?

    var isFinished: Bool { end != nil }

    mutating func append(_ framed: ByteBuffer) {
        precondition(end == nil, "no messages after the end of the body")
        queuedBytes += framed.readableBytes
        chunks.append(framed)
    }

    mutating func finish(_ end: HTTP2BodyEnd) {
        precondition(self.end == nil)
        self.end = end
    }

    /// Drops everything queued (the stream died); returns the bytes dropped.
    mutating func discard() -> Int {
        chunks.removeAll()
        defer { queuedBytes = 0 }
        return queuedBytes
    }

    /// What the next DATA frame would carry, without dequeuing: up to `limit` bytes, and the
    /// end of the body if those are the last. For the no-copy path, where nghttp2 asks for the
    /// length first and takes the bytes (`take`) only when it writes the frame.
    func peek(limit: Int) -> HTTP2DataSourceResult {
        let count = min(queuedBytes, limit)
        if count == queuedBytes, let end { return .data(count: count, end: end) }
        return count == 0 ? .deferred : .data(count: count, end: nil)
    }

    /// Dequeues exactly `count` bytes as slices of the queued buffers (no copy), appending
    /// them to `pieces`.
    mutating func take(_ count: Int, into pieces: inout [ByteBuffer]) {
        precondition(count <= queuedBytes, "nghttp2 takes no more than peek offered")
        var remaining = count
        while remaining > 0, var chunk = chunks.popFirst() {
            if chunk.readableBytes <= remaining {
                remaining -= chunk.readableBytes
                pieces.append(chunk)
            } else if let head = chunk.readSlice(length: remaining) {
                pieces.append(head)
                chunks.prepend(chunk)
                remaining = 0
            }
        }
        queuedBytes -= count
    }

    /// Copies up to `buffer.count` queued bytes into `buffer` (nghttp2's frame buffer).
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> HTTP2DataSourceResult {
        var written = 0
        while written < buffer.count, var chunk = chunks.popFirst() {
            let count = min(chunk.readableBytes, buffer.count - written)
            chunk.withUnsafeReadableBytes { source in
                UnsafeMutableRawBufferPointer(rebasing: buffer[written..<(written + count)])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<count]))
            }
            chunk.moveReaderIndex(forwardBy: count)
            written += count
            if chunk.readableBytes > 0 { chunks.prepend(chunk) }
        }
        queuedBytes -= written
        precondition(queuedBytes >= 0)
        if chunks.isEmpty, let end { return .data(count: written, end: end) }
        return written == 0 ? .deferred : .data(count: written, end: nil)
    }
}

/// The connection's bound on bytes written by the application but not yet taken by nghttp2
/// (because the peer's windows are closed or the socket is slow). Writers wait while it is
/// exhausted; that wait is the send-side backpressure. A plain struct: no I/O.
struct SendBudget {
    let limitBytes: Int
    private(set) var queuedBytes = 0

    init(limitBytes: Int) {
        self.limitBytes = max(limitBytes, 1)  // 1 byte: one message queued at a time
    }

    /// A writer may append (possibly overshooting by its one message) only below the limit.
    var hasRoom: Bool { queuedBytes < limitBytes }

    mutating func add(_ bytes: Int) { queuedBytes += bytes }

    mutating func remove(_ bytes: Int) {
        queuedBytes -= bytes
        precondition(queuedBytes >= 0)
    }
}
