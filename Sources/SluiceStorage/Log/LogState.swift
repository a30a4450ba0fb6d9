import Synchronization

/// Everything a `PartitionLog` guards with its lock.
struct LogState {
    /// Oldest first; never empty; the last one is the active segment.
    var segments: [Segment]
    var logStartOffset: Int64
    var recoveryPoint: Int64
    var durableEndOffset: Int64
    /// Epoch of the last batch appended; appends may not go below it.
    var lastLeaderEpoch: Int32
    /// Set by the first failed write or sync; returned by every later append.
    var fenceError: LogError?
    var isClosed = false
    /// The clean-shutdown marker is still on disk: nothing has changed the log's files
    /// since the clean close that wrote it, so a crash now is still a clean state and
    /// closing again has nothing to sync. The first change removes it (`leaveCleanState`).
    var cleanMarkerPresent = false
    /// Bumped by each truncation, so a sync that raced one does not claim the
    /// rewritten offsets durable.
    var truncations: UInt64 = 0
    var waiters: [DurabilityWaiter] = []
    /// Sealed segments with files open, least recently used first.
    var openSealed: [Segment] = []
    var flusher: Task<Void, Never>?
    var intervalFlusher: Task<Void, Never>?

    var active: Segment { segments[segments.count - 1] }
    var logEndOffset: Int64 { active.nextOffset }

    /// Index of the segment whose offsets include `offset` (the last with base <= offset).
    func segmentIndex(containing offset: Int64) -> Int {
        var low = 0
        var high = segments.count
        while low < high {
            let middle = (low + high) / 2
            if segments[middle].baseOffset <= offset { low = middle + 1 } else { high = middle }
        }
        return max(0, low - 1)
    }

    /// Resumes every waiter whose offset is now durable.
    mutating func resumeDurableWaiters() {
        guard !waiters.isEmpty else { return }
        let durable = durableEndOffset
        waiters.removeAll { waiter in
            guard waiter.offset < durable else { return false }
            waiter.continuation.resume(returning: .success(()))
            return true
        }
    }

    /// Fails the waiters `matching` with `error`.
    mutating func failWaiters(_ error: LogError, where matching: (DurabilityWaiter) -> Bool = { _ in true }) {
        waiters.removeAll { waiter in
            guard matching(waiter) else { return false }
            waiter.continuation.resume(returning: .failure(error))
            return true
        }
    }
}

struct DurabilityWaiter {
    let offset: Int64
    let continuation: CheckedContinuation<Result<Void, LogError>, Never>
}
