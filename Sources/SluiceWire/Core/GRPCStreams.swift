public import NIOCore

/// The request messages of a call, as a handler sees them. Single consumer.
///
/// Finishes when the client half-closes; throws `GRPCStatus` (CANCELLED, DEADLINE_EXCEEDED,
/// RESOURCE_EXHAUSTED for an oversized message, ...) if the stream dies first. Reading is
/// what opens the client's HTTP/2 window again: a handler that stops reading stops the client.
public typealias GRPCRequestStream = GRPCMessageStream

/// The response messages of a client call. Single consumer.
///
/// Finishes when the server ends the call with OK; throws `GRPCStatus` if it ends otherwise
/// (after delivering the messages that arrived before the status). Reading is what opens the
/// server's HTTP/2 window again.
public typealias GRPCResponseStream = GRPCMessageStream

/// The messages one side of a call receives, read from the call's stream: the same reader
/// for a handler's requests and a client's responses, since both are a stream's inbound
/// messages, bounded by its inbound buffer and paid for with HTTP/2 window as they are read.
public struct GRPCMessageStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let handle: StreamHandle

    public struct AsyncIterator: AsyncIteratorProtocol {
        let handle: StreamHandle
        public mutating func next() async throws -> ByteBuffer? { try await handle.read() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: handle) }

    /// Exactly one message (unary and server-streaming requests).
    func single() async throws -> ByteBuffer {
        try await handle.readSingle()
    }
}

/// Sends response messages of a call.
public struct GRPCResponseWriter: Sendable {
    let handle: StreamHandle

    /// Queues one message. Suspends while the connection's bounded send queue is full (the
    /// peer's windows are closed or its socket is slow): this is the backpressure. Throws
    /// the call's status if the call already ended (client reset, deadline).
    public func write(_ message: ByteBuffer) async throws {
        try await handle.write(message)
    }

    /// Metadata sent with the response headers; effective only before the first `write`.
    public func setInitialMetadata(_ metadata: GRPCMetadata) {
        let handle = handle
        handle.loop.execute { handle.stream.initialMetadata = metadata }
    }

    /// Metadata sent with the trailers, next to `grpc-status`.
    public func setTrailingMetadata(_ metadata: GRPCMetadata) {
        let handle = handle
        handle.loop.execute { handle.stream.trailingMetadata = metadata }
    }
}

