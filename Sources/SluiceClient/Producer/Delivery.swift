import Synchronization

/// The answer for one record, handed out by `Producer.enqueue` before it is known.
public final class Delivery: Sendable {
    private enum State {
        /// Waiting tasks, by a number each, so a cancelled one can be taken out alone.
        case pending([Int: CheckedContinuation<RecordMetadata, any Error>], nextWaiter: Int)
        case done(Result<RecordMetadata, ProducerError>)
    }

    private let state = Mutex<State>(.pending([:], nextWaiter: 0))

    init() {}

    /// Waits for the broker's answer: where the record landed, or why it did not. A
    /// cancelled task stops waiting at once with `CancellationError`; the record itself is
    /// not withdrawn (it may already be on its way), and its answer still arrives for any
    /// other waiter.
    public func result() async throws -> RecordMetadata {
        let waiter: Int? = state.withLock { state in
            guard case .pending(let waiters, let next) = state else { return nil }
            state = .pending(waiters, nextWaiter: next + 1)
            return next
        }
        guard let waiter else { return try answered() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let resumeNow: Result<RecordMetadata, any Error>? = state.withLock { state in
                    switch state {
                    case .pending(var waiters, let next):
                        // Cancelled before it could wait: the handler below found nothing to resume.
                        if Task.isCancelled { return .failure(CancellationError()) }
                        waiters[waiter] = continuation
                        state = .pending(waiters, nextWaiter: next)
                        return nil
                    case .done(let result):
                        return result.mapError { $0 }
                    }
                }
                if let resumeNow { continuation.resume(with: resumeNow) }
            }
        } onCancel: {
            let cancelled: CheckedContinuation<RecordMetadata, any Error>? = state.withLock { state in
                guard case .pending(var waiters, let next) = state else { return nil }
                let continuation = waiters.removeValue(forKey: waiter)
                state = .pending(waiters, nextWaiter: next)
                return continuation
            }
            cancelled?.resume(throwing: CancellationError())
        }
    }

    private func answered() throws -> RecordMetadata {
        let result: Result<RecordMetadata, ProducerError>? = state.withLock { state in
            if case .done(let result) = state { result } else { nil }
        }
        guard let result else { preconditionFailure("a delivery that stopped waiting has an answer") }
        return try result.get()
    }

    /// Whether the answer is in.
    public var isComplete: Bool {
        state.withLock { if case .done = $0 { true } else { false } }
    }

    /// The first answer wins; later ones are ignored (an answer can race a timeout).
    func complete(_ result: Result<RecordMetadata, ProducerError>) {
        let waiters: [CheckedContinuation<RecordMetadata, any Error>] = state.withLock { state in
            guard case .pending(let waiters, _) = state else { return [] }
            state = .done(result)
            return Array(waiters.values)
        }
        for waiter in waiters { waiter.resume(with: result) }
    }
}
