import SluiceStorage
import Synchronization

/// A log clock the test moves by hand (rolling and retention by age, producer expiry), so
/// a test of time never waits for it.
public final class ManualClock: LogClock {
    private let now: Mutex<Int64>

    /// At `start` milliseconds since the Unix epoch.
    public init(_ start: Int64 = 1_700_000_000_000) { now = Mutex(start) }

    public func nowMilliseconds() -> Int64 { now.withLock { $0 } }

    public func advance(byMilliseconds milliseconds: Int64) { now.withLock { $0 += milliseconds } }
}
