import Dispatch
import Synchronization

/// Where a fake file system's syncs can be held: `pass()` runs on the thread doing the
/// fdatasync (the log's sync thread, never the Swift concurrency pool) and blocks there
/// while the turnstile holds syncs; the test decides how many to hold, waits until they
/// arrive (a hook, no polling) and lets them go.
public final class SyncTurnstile: Sendable {
    private struct State {
        /// How many of the next syncs to hold; `Int.max` holds every one.
        var toHold = 0
        var held = 0
        var arrivals: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())
    private let released = DispatchSemaphore(value: 0)

    public init() {}

    /// Holds the next `count` syncs (every sync, when not given) until `release()`.
    public func hold(_ count: Int = .max) {
        state.withLock { $0.toHold = count }
    }

    /// Lets every held sync go and holds no more.
    public func release() {
        let waiting = state.withLock { state -> Int in
            state.toHold = 0
            defer { state.held = 0 }
            return state.held
        }
        for _ in 0..<waiting { released.signal() }
    }

    /// Syncs held right now.
    public var held: Int { state.withLock { $0.held } }

    /// Returns once `count` syncs are held at the same time.
    public func waitUntilHeld(_ count: Int = 1) async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                guard state.held < count else { return true }
                state.arrivals.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Called by the file system before each sync: blocks while syncs are held.
    public func pass() {
        let (mustWait, arrived) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
            guard state.toHold > 0 else { return (false, []) }
            if state.toHold != .max { state.toHold -= 1 }
            state.held += 1
            let held = state.held
            let arrived = state.arrivals.filter { $0.count <= held }.map(\.continuation)
            state.arrivals.removeAll { $0.count <= held }
            return (true, arrived)
        }
        for continuation in arrived { continuation.resume() }
        if mustWait { released.wait() }
    }
}
