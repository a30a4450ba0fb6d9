import DequeModule
import Logging
import NIOCore

/// A stream's reads and writes from handler tasks and callers (through `StreamHandle`): the
/// state machine says whether a read has something and whether a write may go; the
/// connection-wide send budget says when it goes (blocked writers wait in `blockedWriters`,
/// admitted by `flush`, watched by the stall timer).
extension GRPCConnectionHandler {
    func read(from stream: GRPCStreamContext) -> EventLoopFuture<ByteBuffer?> {
        switch stream.machine.nextRead() {
        case .message(let message, let consume):
            session.consume(stream: stream.id, bytes: consume)
            if consume > 0 { scheduleFlush() }
            return eventLoop.makeSucceededFuture(message)
        case .end:
            return eventLoop.makeSucceededFuture(nil)
        case .failed(let status):
            return eventLoop.makeFailedFuture(status)
        case .pending:
            guard stream.readWaiter == nil else {
                return eventLoop.makeFailedFuture(GRPCStatus(.internalError, "concurrent reads of one stream"))
            }
            let promise = eventLoop.makePromise(of: ByteBuffer?.self)
            stream.readWaiter = promise
            return promise.futureResult
        }
    }

    /// Completes a waiting reader if a message or the end is available.
    func deliverToReader(_ stream: GRPCStreamContext) {
        guard let waiter = stream.readWaiter else { return }
        switch stream.machine.nextRead() {
        case .message(let message, let consume):
            stream.readWaiter = nil
            session.consume(stream: stream.id, bytes: consume)
            waiter.succeed(message)
        case .end:
            stream.readWaiter = nil
            waiter.succeed(nil)
        case .failed(let status):
            stream.readWaiter = nil
            waiter.fail(status)
        case .pending:
            break
        }
    }

    /// Queues `message` (unframed) on `stream`, or parks the writer while the budget is used up.
    func write(_ message: ByteBuffer, to stream: GRPCStreamContext) -> EventLoopFuture<Void> {
        // A parked writer implies an open stream (ending fails it), so this check may come first.
        guard stream.pendingWrite == nil else {
            return eventLoop.makeFailedFuture(GRPCStatus(.internalError, "concurrent writes to one stream"))
        }
        var result = eventLoop.makeSucceededVoidFuture()
        for action in stream.machine.writeRequested() {
            switch action {
            case .refuse(let status): result = eventLoop.makeFailedFuture(status)
            case .sendMessage: result = send(message, on: stream)
            default: perform(action, on: stream)
            }
        }
        return result
    }

    private func send(_ message: ByteBuffer, on stream: GRPCStreamContext) -> EventLoopFuture<Void> {
        if budget.hasRoom {
            enqueue(message, on: stream)
            flush()
            return eventLoop.makeSucceededFuture(())
        }
        let promise = eventLoop.makePromise(of: Void.self)
        stream.pendingWrite = (message, promise)
        blockedWriters.append(stream)
        armStallTimer()
        limits.onWriterBlocked?()
        return promise.futureResult
    }

    /// The 5-byte prefix and the message go in as two buffers: the message is never copied
    /// to be framed (and large DATA frames take it by reference, `HTTP2Session`).
    func enqueue(_ message: ByteBuffer, on stream: GRPCStreamContext) {
        let prefix = GRPCMessageFrame.prefix(for: message, allocator: context?.channel.allocator ?? ByteBufferAllocator())
        stream.outbound.append(prefix)
        stream.outbound.append(message)
        budget.add(prefix.readableBytes + message.readableBytes)
        session.resumeData(stream: stream.id)
    }

    func admitBlockedWriters() -> Bool {
        var admitted = false
        while budget.hasRoom, let stream = blockedWriters.popFirst() {
            guard let pending = stream.pendingWrite else { continue }
            stream.pendingWrite = nil
            enqueue(pending.message, on: stream)
            pending.promise.succeed(())
            admitted = true
        }
        if blockedWriters.isEmpty {
            stallTimer?.cancel()
            stallTimer = nil
        }
        return admitted
    }

    /// The send-stall timer runs only while writers are blocked; it restarts whenever bytes
    /// leave the send queue, so it measures time without any progress.
    func armStallTimer() {
        guard stallTimer == nil else { return }
        sendProgress = false
        stallTimer = eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(limits.sendStallTimeout)) {
            self.stallTimer = nil
            guard !self.blockedWriters.isEmpty else { return }
            if self.sendProgress {
                self.armStallTimer()
            } else {
                self.logger.warning("closing connection: peer stopped reading (send stall timeout)")
                self.close()
            }
        }
    }

    /// A task waiting on the stream was cancelled.
    func taskCancelled(_ stream: GRPCStreamContext) {
        perform(stream.machine.cancelled(), on: stream)
        flush()
    }
}
