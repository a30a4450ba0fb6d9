import Dispatch
import SluiceStorage
import Synchronization

/// A `SimulatedFileSystem` whose file syncs can be held at a gate: while the gate is
/// closed every fdatasync blocks (on the log's sync thread) until it opens. Lets a test
/// observe what the broker does while a sync is in flight, without timing guesses.
/// Give the broker `fileSystem`; steer the gate here.
public final class GatedFileSystem: Sendable {
    public let inner: SimulatedFileSystem
    /// The file system to run the broker on: `inner`, with every file sync passing the gate.
    public let fileSystem: SyncHookFileSystem
    private let gate: Gate

    public init(_ inner: SimulatedFileSystem = SimulatedFileSystem()) {
        let gate = Gate()
        self.inner = inner
        self.gate = gate
        fileSystem = SyncHookFileSystem(wrapping: inner) { gate.pass() }
    }

    public func closeGate() { gate.state.withLock { $0.closed = true } }

    public func openGate() {
        let waiting = gate.state.withLock { state -> Int in
            state.closed = false
            defer { state.waiting = 0 }
            return state.waiting
        }
        for _ in 0..<waiting { gate.released.signal() }
    }

    /// Syncs blocked at the gate right now.
    public var blockedSyncs: Int { gate.state.withLock { $0.waiting } }

    private final class Gate: @unchecked Sendable {
        let state = Mutex<(closed: Bool, waiting: Int)>((false, 0))
        let released = DispatchSemaphore(value: 0)

        func pass() {
            let mustWait = state.withLock { state -> Bool in
                guard state.closed else { return false }
                state.waiting += 1
                return true
            }
            if mustWait { released.wait() }
        }
    }
}
