import NIOCore
import SluiceAPI
import Synchronization

/// The broker-wide bound on produce data held between arrival and answer
/// (`sluice serve --max-inflight-bytes`).
///
/// Every Produce stream charges a request's `records` bytes here after reading it and
/// before appending, and gives them back when the request is answered (after the
/// append, and after the fdatasync that `acks` waits for). When the budget is spent, a
/// stream's reader waits here instead of reading its next request; SluiceWire then stops
/// returning HTTP/2 window for that stream, so producers stop sending: a surge turns into
/// flow-control backpressure, not a growing queue and not an error.
///
/// Waiters are served first come, first served, so a large batch is not starved by small
/// ones. A single request larger than the whole budget can never be admitted; it is
/// answered THROTTLED (the serve command refuses a budget below the largest message, so
/// this needs a configuration made by hand).
public final class ProduceMemoryBudget: Sendable {
    public struct Snapshot: Sendable, Equatable {
        /// Bytes charged now.
        public var usedBytes = 0
        /// The most ever charged at once (never above the limit).
        public var peakBytes = 0
        /// Times a reader had to wait for room: how often backpressure engaged.
        public var waits = 0
    }

    private struct Waiter {
        var id: UInt64
        var bytes: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var snapshot = Snapshot()
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0

        mutating func charge(_ bytes: Int) {
            snapshot.usedBytes += bytes
            snapshot.peakBytes = max(snapshot.peakBytes, snapshot.usedBytes)
        }

        /// Admits waiters in order while the first one fits, resuming them (resuming a
        /// continuation under the lock is allowed: it only schedules the task).
        mutating func admit(limit: Int) {
            while let first = waiters.first, snapshot.usedBytes + first.bytes <= limit {
                waiters.removeFirst()
                charge(first.bytes)
                first.continuation.resume()
            }
        }
    }

    public let limitBytes: Int
    private let state = Mutex(State())

    public init(limitBytes: Int) {
        precondition(limitBytes > 0, "a memory budget holds at least one byte")
        self.limitBytes = limitBytes
    }

    public var snapshot: Snapshot { state.withLock { $0.snapshot } }

    /// Charges `bytes`, waiting (FIFO) until they fit. Throws CancellationError if the
    /// task is cancelled while waiting; nothing stays charged then.
    func acquire(_ bytes: Int) async throws {
        precondition(bytes >= 0 && bytes <= limitBytes, "a charge fits the budget")
        let id = state.withLock { s -> UInt64? in
            if s.waiters.isEmpty && s.snapshot.usedBytes + bytes <= limitBytes {
                s.charge(bytes)
                return nil
            }
            s.nextID += 1
            s.snapshot.waits += 1
            return s.nextID
        }
        guard let id else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    s.waiters.append(Waiter(id: id, bytes: bytes, continuation: continuation))
                    s.admit(limit: limitBytes)
                    return false
                }
                if resumeNow { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let cancelled = state.withLock { s -> Waiter? in
                guard let index = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                let waiter = s.waiters.remove(at: index)
                // Those behind it may fit now.
                s.admit(limit: limitBytes)
                return waiter
            }
            cancelled?.continuation.resume(throwing: CancellationError())
        }
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        state.withLock { s in
            precondition(s.snapshot.usedBytes >= bytes, "released more than was charged")
            s.snapshot.usedBytes -= bytes
            s.admit(limit: limitBytes)
        }
    }
}

/// One Produce stream's charges against the budget, so that whatever the stream still
/// holds when it ends (an error, a reset, answers never sent) goes back at once.
final class ProduceMemoryLease: Sendable {
    private let budget: ProduceMemoryBudget?
    private let held = Mutex(0)

    init(_ budget: ProduceMemoryBudget?) { self.budget = budget }

    /// The bytes charged for `request` (its batch's records), after waiting for room; nil
    /// when it can never fit (larger than the whole budget): answer it THROTTLED.
    func acquire(for request: ProduceRequest) async throws -> Int? {
        let bytes = request.batch?.records.readableBytes ?? 0
        guard let budget else { return 0 }
        guard bytes <= budget.limitBytes else { return nil }
        try await budget.acquire(bytes)
        held.withLock { $0 += bytes }
        return bytes
    }

    func release(_ bytes: Int) {
        guard let budget, bytes > 0 else { return }
        held.withLock { $0 -= bytes }
        budget.release(bytes)
    }

    func releaseAll() {
        let bytes = held.withLock { value -> Int in
            defer { value = 0 }
            return value
        }
        budget?.release(bytes)
    }
}

extension Broker {
    /// The answer for a request bigger than the whole memory budget.
    func throttled(_ request: ProduceRequest, limit: Int) -> PendingAnswer {
        counters.batchRefused()
        var response = ProduceResponse(
            correlationId: request.correlationId, topic: request.topic, partition: request.partition,
            baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1)
        response.refuse(.throttled(batchBytes: request.batch?.records.readableBytes ?? 0, budgetBytes: limit))
        return PendingAnswer(response: response)
    }
}
