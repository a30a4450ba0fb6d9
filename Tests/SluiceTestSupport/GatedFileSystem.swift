import SluiceStorage

/// A `SimulatedFileSystem` whose file syncs can be held at a gate: while the gate is
/// closed every fdatasync blocks (on the log's sync thread) until it opens. Lets a test
/// observe what the broker does while a sync is in flight, without timing guesses.
/// Give the broker `fileSystem`; steer the gate here.
public final class GatedFileSystem: Sendable {
    public let inner: SimulatedFileSystem
    /// The file system to run the broker on: `inner`, with every file sync passing the gate.
    public let fileSystem: SyncHookFileSystem
    /// The gate itself: wait on it for syncs to arrive.
    public let syncs: SyncTurnstile

    public init(_ inner: SimulatedFileSystem = SimulatedFileSystem()) {
        let syncs = SyncTurnstile()
        self.inner = inner
        self.syncs = syncs
        fileSystem = SyncHookFileSystem(wrapping: inner) { syncs.pass() }
    }

    public func closeGate() { syncs.hold() }

    public func openGate() { syncs.release() }

    /// Syncs blocked at the gate right now.
    public var blockedSyncs: Int { syncs.held }
}
