import Synchronization

/// Counts and latencies shared by a run's producers and subscribers, read by the progress
/// line and the final report. One lock; each message takes it once or twice, far below
/// what the client itself costs per message.
final class BenchTally: Sendable {
    struct State {
        var sent = 0
        var acked = 0
        var failed = 0
        var consumed = 0
        /// Records on the topic from another run (or not written by the bench at all).
        var foreign = 0
        var measuredAcked = 0
        var measuredConsumed = 0
        var consumedBytes = 0
        var measuredConsumedBytes = 0
        var lastAckAt: Int64 = 0
        var lastConsumeAt: Int64 = 0
        var ackLatency = LatencyRecorder()
        var endToEndLatency = LatencyRecorder()
        var errors: [String] = []
    }

    /// What the progress line shows: counts to take rates from, and the latencies so far.
    struct Snapshot {
        var acked: Int
        var consumed: Int
        var consumedBytes: Int
        var ackP99: UInt64?
        var endToEndP99: UInt64?
    }

    static let keptErrors = 5
    let state = Mutex(State())

    func sent() {
        state.withLock { $0.sent += 1 }
    }

    func acked(at now: Int64, latencyNanoseconds: Int64, measured: Bool) {
        state.withLock { state in
            state.acked += 1
            state.lastAckAt = max(state.lastAckAt, now)
            if measured {
                state.measuredAcked += 1
                state.ackLatency.record(nanoseconds: latencyNanoseconds)
            }
        }
    }

    func consumed(at now: Int64, bytes: Int, latencyNanoseconds: Int64?, measured: Bool) {
        state.withLock { state in
            state.consumed += 1
            state.consumedBytes += bytes
            state.lastConsumeAt = max(state.lastConsumeAt, now)
            if measured {
                state.measuredConsumed += 1
                state.measuredConsumedBytes += bytes
                if let latencyNanoseconds { state.endToEndLatency.record(nanoseconds: latencyNanoseconds) }
            }
        }
    }

    func foreignRecord() {
        state.withLock { $0.foreign += 1 }
    }

    func failed(_ error: String) {
        state.withLock { state in
            state.failed += 1
            if state.errors.count < Self.keptErrors, !state.errors.contains(error) { state.errors.append(error) }
        }
    }

    func note(_ error: String) {
        state.withLock { state in
            if state.errors.count < Self.keptErrors, !state.errors.contains(error) { state.errors.append(error) }
        }
    }

    var consumedCount: Int { state.withLock { $0.consumed } }

    func snapshot() -> Snapshot {
        state.withLock { state in
            Snapshot(
                acked: state.acked, consumed: state.consumed, consumedBytes: state.consumedBytes,
                ackP99: state.ackLatency.percentile(99),
                endToEndP99: state.endToEndLatency.percentile(99))
        }
    }

    func final() -> State { state.withLock { $0 } }
}
