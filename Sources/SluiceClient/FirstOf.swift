import Synchronization

/// The result of `operation`, or `timeoutError` once `bound` has passed, whichever comes
/// first; the caller never waits past `bound`.
///
/// Unlike a task group, which waits for every child before returning, this leaves an
/// operation that ignores cancellation (a connect parked on a socket, an `await` of another
/// task's value) running in the background after the timeout; it is cancelled, and its late
/// result is dropped. Only for operations whose late completion is harmless.
func firstOf<Value: Sendable>(
    within bound: Duration, timeoutError: @autoclosure @Sendable () -> any Error,
    _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    let waiter = FirstOfWaiter<Value>()
    let error = timeoutError()
    return try await withCheckedThrowingContinuation { continuation in
        // Set before either task starts, so neither can finish with no one to resume.
        waiter.set(continuation)
        let work = Task<Void, Never> {
            let result: Result<Value, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            waiter.take()?.resume(with: result)
        }
        Task {
            // A timer, not synchronisation: the bound is the caller's deadline.
            try? await Task.sleep(for: bound)
            guard let expired = waiter.take() else { return }
            work.cancel()
            expired.resume(throwing: error)
        }
    }
}

/// The one continuation `firstOf` resumes, taken by whichever of its two tasks is first.
private final class FirstOfWaiter<Value: Sendable>: Sendable {
    private let slot = Mutex<CheckedContinuation<Value, any Error>?>(nil)

    func set(_ continuation: CheckedContinuation<Value, any Error>) { slot.withLock { $0 = continuation } }
    func take() -> CheckedContinuation<Value, any Error>? { slot.withLock { $0.take() } }
}
