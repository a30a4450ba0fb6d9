public import NIOCore

/// One call on a `GRPCClientConnection`, of any of the four kinds: send requests, finish
/// sending, read responses; the status arrives as the responses' end (or their error).
public final class GRPCClientCall: Sendable {
    let handle: StreamHandle

    init(handle: StreamHandle) {
        self.handle = handle
    }

    /// Queues one request message; suspends while the connection's send queue is full
    /// (the server's windows are closed). Throws the call's status if it already ended.
    public func send(_ message: ByteBuffer) async throws {
        try await handle.write(message)
    }

    /// Half-closes the call (END_STREAM): no more requests.
    public func finishSending() async throws {
        let handle = handle
        try await handle.loop.submit { () throws in
            try handle.connection.finishSending(handle.stream)
        }.get()
    }

    /// The responses; finishes on OK, throws `GRPCStatus` otherwise.
    public var responses: GRPCResponseStream { GRPCResponseStream(handle: handle) }

    /// Resets the stream (RST_STREAM CANCEL); the local side throws CANCELLED.
    public func cancel() {
        let handle = handle
        handle.loop.execute {
            handle.connection.cancelClientCall(handle.stream, status: GRPCStatus(.cancelled, "the call was cancelled"))
        }
    }

    /// The final status, once the call has ended.
    public func status() async -> GRPCStatus {
        await outcome().status
    }

    /// Trailing metadata (custom trailers), once the call has ended.
    public func trailingMetadata() async -> GRPCMetadata {
        await outcome().trailers
    }

    /// Custom metadata of the response headers (empty until they arrive).
    public func initialMetadata() async -> GRPCMetadata {
        let handle = handle
        return (try? await handle.loop.submit { handle.stream.responseMetadata }.get()) ?? [:]
    }

    private func outcome() async -> GRPCConnectionHandler.CallOutcome {
        let handle = handle
        let future = handle.loop.flatSubmit { () -> EventLoopFuture<GRPCConnectionHandler.CallOutcome> in
            guard let finished = handle.stream.finished else {
                return handle.loop.makeSucceededFuture(.init(status: .ok, trailers: [:]))
            }
            return finished.futureResult
        }
        do {
            return try await future.get()
        } catch {
            return .init(status: GRPCStatus(.unknown, "\(error)"), trailers: [:])
        }
    }
}
