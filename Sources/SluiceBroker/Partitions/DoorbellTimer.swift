/// Rings a stream's doorbell at a deadline, so a stream that waits on its doorbell
/// (a Subscribe stream holding batches for `max_wait_ms`, a Replicate stream holding a
/// follower's request) also wakes when time is up, without polling. (A Produce
/// responder's deadline cancels its wait: `WaitDeadline`.) The stream cancels it when it
/// ends.
///
/// A ring may come early: every caller looks at the clock when woken and arms again for
/// a deadline still ahead. So a deadline at or after the one armed (and still ahead)
/// keeps the sleeping task, which rings at its own deadline; only an earlier deadline
/// replaces it. A held Replicate request has a new deadline per request: re-arming each
/// time started a task and a timer per request.
struct DoorbellTimer {
    private var armed: (deadline: ContinuousClock.Instant, task: Task<Void, Never>)?

    mutating func ring(_ doorbell: AsyncStream<Void>.Continuation, at deadline: ContinuousClock.Instant) {
        if let armed, armed.deadline <= deadline, armed.deadline > .now { return }
        armed?.task.cancel()
        armed = (deadline, Task {
            do {
                try await Task.sleep(until: deadline, clock: .continuous)
                doorbell.yield()
            } catch {}
        })
    }

    func cancel() { armed?.task.cancel() }
}
