public import SluiceStorage
import Synchronization

/// Cancels a stream's current `WatermarkWait` once its deadline passes (a Produce
/// responder waiting for a batch's durability within `timeout_ms`), with at most one
/// sleeping task per stream that is not re-armed per wait: a wait whose deadline is at
/// or after the armed one leaves the sleeper alone, and the sleeper, on waking, expires
/// the current wait if it is due or sleeps again until it is. Answers are waited for in
/// request order with one timeout per request, so deadlines mostly grow, and a stream
/// under load starts a sleeper about once per timeout instead of once per batch (each
/// cancelled sleeper was one more task to wake on a busy pool).
public final class WaitDeadline: Sendable {
    private struct State {
        var current: (wait: WatermarkWait, deadline: ContinuousClock.Instant)?
        var sleeper: (deadline: ContinuousClock.Instant, task: Task<Void, Never>)?
        var stopped = false
    }

    private let state = Mutex(State())

    public init() {}

    /// `wait` is now the one in progress; it is cancelled if still pending at `deadline`.
    public func watch(_ wait: WatermarkWait, until deadline: ContinuousClock.Instant) {
        state.withLock { s in
            guard !s.stopped else { return }
            s.current = (wait, deadline)
            if let sleeper = s.sleeper, sleeper.deadline <= deadline { return }
            s.sleeper?.task.cancel()
            s.sleeper = (deadline, sleep(until: deadline))
        }
    }

    /// The stream ended: no more expiries.
    public func stop() {
        let sleeper = state.withLock { s -> Task<Void, Never>? in
            s.stopped = true
            s.current = nil
            defer { s.sleeper = nil }
            return s.sleeper?.task
        }
        sleeper?.cancel()
    }

    private func sleep(until deadline: ContinuousClock.Instant) -> Task<Void, Never> {
        Task { [weak self] in
            do {
                try await Task.sleep(until: deadline, clock: .continuous)
            } catch {
                return  // replaced by an earlier deadline, or stopped
            }
            self?.woke()
        }
    }

    private func woke() {
        let now = ContinuousClock.now
        let due = state.withLock { s -> WatermarkWait? in
            s.sleeper = nil
            guard !s.stopped, let current = s.current else { return nil }
            if current.deadline <= now {
                s.current = nil
                return current.wait
            }
            if current.wait.resolved == nil { s.sleeper = (current.deadline, sleep(until: current.deadline)) }
            return nil
        }
        due?.cancel()
    }
}
