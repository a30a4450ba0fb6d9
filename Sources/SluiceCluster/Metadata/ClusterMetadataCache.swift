import Synchronization

/// The newest `ClusterSnapshot` a broker has, shared by everything in the broker that asks
/// "who leads this partition?" (produce, subscribe, the Metadata RPC) and fed by whatever
/// keeps it current (in a running broker, a watch of the cluster's keys from the revision
/// of an initial read; in tests, the test).
///
/// Invariant, asserted: revisions never go back. An update with an older revision than
/// the current one is a bug in the feeder (a watch resumed from the wrong revision), so it
/// stops loudly rather than let the broker act on stale leadership.
public final class ClusterMetadataCache: Sendable {
    private struct State {
        var snapshot: ClusterSnapshot
        var observers: [UInt64: AsyncStream<ClusterSnapshot>.Continuation] = [:]
        var nextObserver: UInt64 = 0
    }

    private let state: Mutex<State>

    public init(_ initial: ClusterSnapshot) {
        state = Mutex(State(snapshot: initial))
    }

    /// The newest snapshot.
    public var snapshot: ClusterSnapshot { state.withLock { $0.snapshot } }

    /// Replaces the snapshot with a newer one and tells every observer. Equal revisions are
    /// allowed (a re-read after a compacted watch finds nothing new).
    public func update(_ newer: ClusterSnapshot) {
        let observers = state.withLock { state -> [AsyncStream<ClusterSnapshot>.Continuation] in
            precondition(newer.revision >= state.snapshot.revision,
                         "cluster metadata went back from revision \(state.snapshot.revision) to \(newer.revision)")
            state.snapshot = newer
            return Array(state.observers.values)
        }
        for observer in observers { observer.yield(newer) }
    }

    /// Every snapshot from now on; a reader that falls behind gets only the newest (a
    /// reader needs the current view, not each step to it). The stream
    /// starts with the current snapshot and ends when the task reading it is cancelled.
    public func snapshots() -> AsyncStream<ClusterSnapshot> {
        let (stream, continuation) = AsyncStream.makeStream(of: ClusterSnapshot.self, bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state -> UInt64 in
            let id = state.nextObserver
            state.nextObserver += 1
            state.observers[id] = continuation
            continuation.yield(state.snapshot)
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.observers.removeValue(forKey: id) }
        }
        return stream
    }
}
