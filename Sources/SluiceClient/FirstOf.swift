import Synchronization

/// The result of `operation`, or `timeoutError` once `bound` has passed, or
/// `CancellationError` as soon as the calling task is cancelled, whichever comes first; the
/// caller never waits past `bound` (nil: no bound, only cancellation).
///
/// Unlike a task group, which waits for every child before returning, this leaves an
/// operation that ignores cancellation (a connect parked on a socket, an `await` of another
/// task's value) running in the background after the timeout; it is cancelled, and its late
/// result is dropped. Only for operations whose late completion is harmless.
func firstOf<Value: Sendable>(
    within bound: Duration?, timeoutError: @autoclosure @Sendable () -> any Error,
    _ operation: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    let waiter = FirstOfWaiter<Value>()
    let error = timeoutError()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            // Set before either task starts, so neither can finish with no one to resume.
            waiter.set(continuation)
            let work = Task<Void, Never> { [counted = ClientTasks.begin()] in
                defer { counted.end() }
                let result: Result<Value, any Error>
                do { result = .success(try await operation()) } catch { result = .failure(error) }
                // First: the timer has nothing left to bound, and must not sleep on for it.
                waiter.finished()?.resume(with: result)
            }
            waiter.started(work)
            // Cancelled before the continuation was set: the handler found nothing to resume.
            if Task.isCancelled, let cancelled = waiter.take() {
                work.cancel()
                cancelled.resume(throwing: CancellationError())
                return
            }
            guard let bound else { return }
            waiter.timing(Task { [counted = ClientTasks.begin()] in
                defer { counted.end() }
                // A timer, not synchronisation: the bound is the caller's deadline.
                try? await Task.sleep(for: bound)
                guard let expired = waiter.take() else { return }
                work.cancel()
                expired.resume(throwing: error)
            })
        }
    } onCancel: {
        waiter.cancel()
    }
}

/// The one continuation `firstOf` resumes, taken by whichever of its tasks is first.
private final class FirstOfWaiter<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
        var workEnded = false
    }

    private let slot = Mutex(State())

    func set(_ continuation: CheckedContinuation<Value, any Error>) { slot.withLock { $0.continuation = continuation } }
    func started(_ work: Task<Void, Never>) { slot.withLock { $0.work = work } }
    func take() -> CheckedContinuation<Value, any Error>? { slot.withLock { $0.continuation.take() } }

    /// The timer of a bounded wait; cancelled at once if the operation already ended.
    func timing(_ timer: Task<Void, Never>) {
        let ended = slot.withLock { state -> Bool in
            state.timer = timer
            return state.workEnded
        }
        if ended { timer.cancel() }
    }

    /// The operation ended: its timer (if any) is cancelled, and the continuation, if no one
    /// took it yet, is the operation's to resume.
    func finished() -> CheckedContinuation<Value, any Error>? {
        let (continuation, timer) = slot.withLock { state in
            state.workEnded = true
            return (state.continuation.take(), state.timer)
        }
        timer?.cancel()
        return continuation
    }

    /// The caller's task was cancelled: it stops waiting now, and the operation is cancelled.
    func cancel() {
        let (continuation, work) = slot.withLock { ($0.continuation.take(), $0.work) }
        work?.cancel()
        continuation?.resume(throwing: CancellationError())
    }
}
