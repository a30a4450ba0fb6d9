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
    /// The state once only `live` brokers count. In this issue a replica is in sync while
    /// it is live (no data is replicated yet: the next issue narrows the ISR to replicas
    /// that caught up): the ISR is the live replicas, in replica order. A live leader
    /// stays; a leader that left is replaced by the first live replica of the ISR it was
    /// in, or by none; a partition with no leader gets the first live replica. The leader
    /// epoch goes up by one on every change of leader, to none included.
    public func following(live: Set<UInt32>) -> PartitionState {
        let nextISR = replicas.filter(live.contains)
        let nextLeader: UInt32? = if let leader, nextISR.contains(leader) {
            leader
        } else {
            // Preferably one that was in sync with the old leader; everyone live counts as in
            // sync in this issue, so that is the ISR's first live member.
            isr.first(where: nextISR.contains) ?? nextISR.first
        }
        let epoch = nextLeader == leader ? leaderEpoch : leaderEpoch + 1
        return PartitionState(replicas: replicas, leader: nextLeader, leaderEpoch: epoch, isr: nextISR)
    }
}

extension Controller {
    /// Brings every partition of every topic in line with the live brokers as etcd has
    /// them now (`PartitionState.following(live:)`): after a broker left or joined, and
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
                for name in keyspace.topics.keys.sorted() {
                    for (partition, state) in (keyspace.completeTopic(name) ?? []).enumerated() {
                        let after = state.value.following(live: live)
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
