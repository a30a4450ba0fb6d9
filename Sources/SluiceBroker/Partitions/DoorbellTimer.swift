/// Rings a stream's doorbell once at a deadline, so a stream that waits on its doorbell
/// (a Subscribe stream holding batches for `max_wait_ms`) also wakes when time is up,
/// without polling. (A Produce responder's deadline cancels its wait: `WaitDeadline`.) One deadline at a time: arming another
/// cancels the earlier one; the stream cancels it when it ends.
struct DoorbellTimer {
    private var armed: (deadline: ContinuousClock.Instant, task: Task<Void, Never>)?

    mutating func ring(_ doorbell: AsyncStream<Void>.Continuation, at deadline: ContinuousClock.Instant) {
        guard armed?.deadline != deadline else { return }
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
