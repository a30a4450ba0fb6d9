import Synchronization

/// The answer for one record, handed out by `Producer.enqueue` before it is known.
public final class Delivery: Sendable {
    private enum State {
        case pending([CheckedContinuation<RecordMetadata, any Error>])
        case done(Result<RecordMetadata, ProducerError>)
    }

    private let state = Mutex<State>(.pending([]))

    init() {}

    /// Waits for the broker's answer: where the record landed, or why it did not.
    public func result() async throws -> RecordMetadata {
        try await withCheckedThrowingContinuation { continuation in
            let done: Result<RecordMetadata, ProducerError>? = state.withLock { state in
                switch state {
                case .pending(var waiters):
                    waiters.append(continuation)
                    state = .pending(waiters)
                    return nil
                case .done(let result):
                    return result
                }
            }
            if let done { continuation.resume(with: done) }
        }
    }

    /// Whether the answer is in.
    public var isComplete: Bool {
        state.withLock { if case .done = $0 { true } else { false } }
    }

    /// The first answer wins; later ones are ignored (an answer can race a timeout).
    func complete(_ result: Result<RecordMetadata, ProducerError>) {
        let waiters: [CheckedContinuation<RecordMetadata, any Error>] = state.withLock { state in
            guard case .pending(let waiters) = state else { return [] }
            state = .done(result)
            return waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }
}
