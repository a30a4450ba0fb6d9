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
        try await serially { () async throws(ControllerError) -> [PartitionMove] in
            var moved: [PartitionMove] = []
            for _ in 0..<ClusterLimits.defaults.controllerAttempts.value {
                let keyspace = try await self.readForWriting()
                let live = Set(keyspace.brokers.keys)
                var pending: [(move: PartitionMove, modRevision: Int64)] = []
                for (name, record) in keyspace.topics.sorted(by: { $0.key < $1.key }) {
                    for (partition, state) in (keyspace.completeTopic(name) ?? []).enumerated() {
                        let after = state.value.following(live: live, uncleanElection: record.value.allowsUncleanElection)
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
            throw .etcd("partition states kept changing while the controller followed the live brokers")
        }
    }
}
