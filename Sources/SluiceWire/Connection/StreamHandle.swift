import NIOCore

/// How code outside the event loop (handler tasks, callers) reaches one stream: every
/// operation hops onto the connection's event loop, where the stream state lives.
/// `@unchecked Sendable` because the references inside are only dereferenced on `loop`.
struct StreamHandle: @unchecked Sendable {
    let loop: any EventLoop
    let connection: GRPCConnectionHandler
    let stream: GRPCStreamContext

    /// The next message; nil once the peer ended its half cleanly. Throws the call's status
    /// if the stream died first (CANCELLED, DEADLINE_EXCEEDED, the peer's status, ...).
    func read() async throws -> ByteBuffer? {
        // FIFO on the loop: the read is registered before any cancellation below runs.
        let future = loop.flatSubmit { self.connection.read(from: self.stream) }
        return try await withTaskCancellationHandler {
            try await future.get()
        } onCancel: {
            self.loop.execute { self.connection.taskCancelled(self.stream) }
        }
    }

    /// Exactly one message followed by the end of the stream, in one hop (unary and
    /// server-streaming requests): the two reads chain as futures on the loop.
    func readSingle() async throws -> ByteBuffer {
        let future = loop.flatSubmit {
            self.connection.read(from: self.stream).flatMap { first -> EventLoopFuture<ByteBuffer> in
                guard let first else {
                    return self.loop.makeFailedFuture(GRPCStatus(.internalError, "the request has no message"))
                }
                return self.connection.read(from: self.stream).flatMapThrowing { second in
                    guard second == nil else {
                        throw GRPCStatus(.internalError, "the request has more than one message")
                    }
                    return first
                }
            }
        }
        return try await withTaskCancellationHandler {
            try await future.get()
        } onCancel: {
            self.loop.execute { self.connection.taskCancelled(self.stream) }
        }
    }

    /// Queues one message; suspends while the connection's send budget is used up.
    func write(_ message: ByteBuffer) async throws {
        let future = loop.flatSubmit { self.connection.write(message, to: self.stream) }
        try await withTaskCancellationHandler {
            try await future.get()
        } onCancel: {
            self.loop.execute { self.connection.taskCancelled(self.stream) }
        }
    }
}
