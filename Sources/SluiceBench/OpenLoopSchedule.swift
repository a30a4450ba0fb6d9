/// When each message of a fixed-rate (open-loop) run is due.
///
/// Message k of a sender is due at `start + k * interval`, whatever happened to earlier
/// messages. A sender that fell behind (the broker stalled, the producer's buffer was full)
/// sends the overdue messages at once, and each one's latency is counted from its due
/// time, not from when it was finally sent: the stall shows in the recorded latencies
/// instead of silently lowering the offered rate (coordinated omission).
public struct OpenLoopSchedule: Sendable, Equatable {
    /// Nanoseconds on the run's clock (`BenchClock`).
    public let startNanoseconds: Int64
    public let intervalNanoseconds: Double

    /// `ratePerSecond` messages per second from `startNanoseconds`.
    public init(startNanoseconds: Int64, ratePerSecond: Double) {
        precondition(ratePerSecond > 0 && ratePerSecond.isFinite, "a schedule needs a positive rate")
        self.startNanoseconds = startNanoseconds
        intervalNanoseconds = 1e9 / ratePerSecond
    }

    /// When message `index` (from 0) is due.
    public func dueTime(of index: Int) -> Int64 {
        precondition(index >= 0, "message indices start at 0")
        return startNanoseconds + Int64((Double(index) * intervalNanoseconds).rounded())
    }

    /// How many messages are due at `now` (indices 0..<result): a sender that has sent
    /// fewer sends the difference at once.
    public func dueCount(at now: Int64) -> Int {
        guard now >= startNanoseconds else { return 0 }
        return Int(Double(now - startNanoseconds) / intervalNanoseconds) + 1
    }

    /// The latency of message `index` answered at `answeredAt`: measured from its due time.
    public func latency(of index: Int, answeredAt: Int64) -> Int64 {
        answeredAt - dueTime(of: index)
    }
}

/// The run's clock: nanoseconds since the run started, on one monotonic clock shared by
/// the producers and subscribers of one `sluice bench` process (the end-to-end payload
/// carries these values, so sender and receiver must be the same process).
public struct BenchClock: Sendable {
    public let origin: ContinuousClock.Instant

    public init(origin: ContinuousClock.Instant = .now) {
        self.origin = origin
    }

    public var now: Int64 { nanoseconds(at: .now) }

    public func nanoseconds(at instant: ContinuousClock.Instant) -> Int64 {
        let elapsed = (instant - origin).components
        return elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000
    }

    public func instant(at nanoseconds: Int64) -> ContinuousClock.Instant {
        origin + .nanoseconds(nanoseconds)
    }
}
