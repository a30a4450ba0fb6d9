import NIOCore
import SluiceAPI

/// One partition whose state the controller changed to follow the live brokers.
public struct PartitionMove: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: UInt32
    public var before: PartitionState
    public var after: PartitionState

    public var description: String {
        let leader = after.leader.map { "broker \($0)" } ?? "no leader"
        return "\(topic)/\(partition) to \(leader) at epoch \(after.leaderEpoch), isr \(after.isr)"
    }
}

extension PartitionState {
    /// The state once only `live` brokers count (Kafka's rule: only a replica known to hold
    /// every acknowledged record may lead).
    ///
    /// - The ISR becomes ISR ∩ live, in ISR order; a live replica outside it is not put
    ///   back (only its leader knows when it caught up, and writes that with
    ///   `PartitionISRWriter`).
    /// - A live leader stays. A leader that left, or none, is replaced by the first live
    ///   member of the ISR.
    /// - When no ISR member is live, the ISR is kept as it was (never empty: its members
    ///   are the ones that may lead again, the first of them to come back) and the
    ///   partition has no leader, unless `uncleanElection` (the topic's
    ///   `unclean.leader.election.enable`): then the first live replica leads, alone in
    ///   the ISR, and what only the old ISR held is lost.
    /// - The leader epoch goes up by one on every change of leader, to none included.
    public func following(live: Set<UInt32>, uncleanElection: Bool = false) -> PartitionState {
        let liveISR = isr.filter(live.contains)
        if let leader, live.contains(leader) {
            return changed(leader: leader, isr: liveISR)
        }
        if let first = liveISR.first {
            return changed(leader: first, isr: liveISR)
        }
        if uncleanElection, let first = replicas.first(where: live.contains) {
            return changed(leader: first, isr: [first])
        }
        return changed(leader: nil, isr: isr)
    }

    /// The state with leadership back on the preferred replica (the first of `replicas`,
    /// where placement spread leaders evenly), as Kafka's preferred-leader election: only
    /// when it is live and in the ISR (so it holds every acknowledged record) and the
    /// current leader is live (a partition without one is `following(live:)`'s work).
    /// The epoch goes up by one; the ISR stays as it is.
    public func preferringFirstReplica(live: Set<UInt32>) -> PartitionState {
        guard let preferred = replicas.first, let leader, leader != preferred, live.contains(leader),
              live.contains(preferred), isr.contains(preferred)
        else { return self }
        return changed(leader: preferred, isr: isr)
    }

    /// This state led by `leader` with `isr`, the epoch bumped if the leader changed.
    private func changed(leader next: UInt32?, isr nextISR: [UInt32]) -> PartitionState {
        let state = PartitionState(
            replicas: replicas, leader: next, leaderEpoch: next == leader ? leaderEpoch : leaderEpoch + 1, isr: nextISR)
        assert(state.isWellFormed, "a failover keeps a partition state well formed: \(state)")
        return state
    }
}

extension Controller {
    /// Brings every partition of every topic in line with the live brokers as etcd has
    /// them now (`PartitionState.following(live:uncleanElection:)`, unclean as the topic's
    /// settings say): after a broker left or joined, and
    /// when a controller is elected (a failover may have been missed while none ran). Each
    /// changed partition is written with `mod_revision(key) ==` the revision read, in Txns
    /// of `partitionKeysPerTxn`; a concurrent change makes it read again. Returns what moved.
    public func reconcile() async throws(ControllerError) -> [PartitionMove] {
        try await rewritePartitions("followed the live brokers") { state, record, live in
            state.following(live: live, uncleanElection: record.allowsUncleanElection)
        }
    }

    /// Moves the leadership of every partition whose preferred replica (the first) is
    /// live, in sync and not leading back to it (`PartitionState.preferringFirstReplica`):
    /// after failovers and restarts leadership piles up on the brokers that stayed, and
    /// this spreads it as placement meant. Written like `reconcile`; returns what moved.
    public func electPreferredLeaders() async throws(ControllerError) -> [PartitionMove] {
        try await rewritePartitions("elected the preferred leaders") { state, _, live in
            state.preferringFirstReplica(live: live)
        }
    }

    /// Rewrites every partition `rule` changes, given the topic's record and the live
    /// brokers as etcd has them now, each with `mod_revision(key) ==` the revision read, in
    /// Txns of `partitionKeysPerTxn`; a concurrent change makes it read again.
    private func rewritePartitions(
        _ what: String, _ rule: @escaping @Sendable (PartitionState, TopicRecord, Set<UInt32>) -> PartitionState
    ) async throws(ControllerError) -> [PartitionMove] {
        try await serially { () async throws(ControllerError) -> [PartitionMove] in
            var moved: [PartitionMove] = []
            for _ in 0..<ClusterLimits.defaults.controllerAttempts.value {
                let keyspace = try await self.readForWriting()
                let live = Set(keyspace.brokers.keys)
                var pending: [(move: PartitionMove, modRevision: Int64)] = []
                for (name, record) in keyspace.topics.sorted(by: { $0.key < $1.key }) {
                    for (partition, state) in (keyspace.completeTopic(name) ?? []).enumerated() {
                        let after = rule(state.value, record.value, live)
                        guard after != state.value else { continue }
                        let move = PartitionMove(topic: name, partition: UInt32(partition), before: state.value, after: after)
                        pending.append((move, state.modRevision))
                    }
                }
                var clean = true
                let perTxn = ClusterLimits.defaults.partitionKeysPerTxn.value
                for start in stride(from: 0, to: pending.count, by: perTxn) {
                    let batch = pending[start..<min(start + perTxn, pending.count)]
                    let partitionKeys = batch.map { self.keys.partition($0.move.topic, $0.move.partition) }
                    let written = try await self.fencedTxn(
                        zip(partitionKeys, batch).map { .modRevision($0, .equal, $1.modRevision) },
                        zip(partitionKeys, batch).map { .put($0, $1.move.after.encoded()) })
                    guard written else {
                        clean = false
                        break
                    }
                    moved += batch.map(\.move)
                }
                if clean { return moved }
            }
            throw .etcd("partition states kept changing while the controller \(what)")
        }
    }
}
