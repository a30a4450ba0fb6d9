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

    /// Queues one message; suspends while the connection's send budget is used up.
    func write(_ message: ByteBuffer) async throws {
        let framed = GRPCMessageFrame.encode(message)
        let future = loop.flatSubmit { self.connection.write(framed, to: self.stream) }
        try await withTaskCancellationHandler {
            try await future.get()
        } onCancel: {
            self.loop.execute { self.connection.taskCancelled(self.stream) }
        }
    }
}
