import NIOCore
import SluiceAPI
import SluiceWire

/// Writes a partition's ISR on behalf of its leader: reads `/sluice/<c>/partitions/<t>/<p>`,
/// checks that it still names `leader` at `leaderEpoch`, and puts the same state with the
/// new ISR in a Txn comparing the key's `mod_revision` with the one read (so a concurrent
/// change by the controller, a failover or another ISR change, wins and this writes
/// nothing). The ISR must hold the leader and be a subset of the replicas.
///
/// This is the one write to a partition key that is not the controller's: it is not fenced
/// by the controller's election revision but by the key itself, since the leader epoch in
/// the value changes only with a controller write, and any controller write changes the
/// key's `mod_revision`.
public struct PartitionISRWriter: Sendable {
    public let kv: EtcdKVClient
    public let keys: ClusterKeys

    public init(kv: EtcdKVClient, keys: ClusterKeys) {
        self.kv = kv
        self.keys = keys
    }

    /// A writer on a cluster member's etcd client (`ClusterMembership.client`).
    public init(client: EtcdClient, keys: ClusterKeys) {
        self.init(kv: client.kv, keys: keys)
    }

    /// True when written; false when the partition's state moved on (another leader or
    /// epoch, or a concurrent write): the caller waits for the metadata to show it.
    ///
    /// Also true, without a write, when the key already holds `isr` under that leader and
    /// epoch: the answer to a Txn whose reply was lost to a transport failure, which is
    /// the only failure tried again (`isrWriteAttempts` times, read and Txn both); etcd's
    /// refusals and a closed client throw `.etcd` at once.
    public func changeISR(
        topic: String, partition: UInt32, leader: UInt32, leaderEpoch: UInt32, isr: [UInt32]
    ) async throws(ControllerError) -> Bool {
        precondition(isr.contains(leader), "an ISR holds its leader: \(leader) not in \(isr)")
        precondition(Set(isr).count == isr.count, "an ISR names each replica once: \(isr)")
        return try await retryingTransportFailures(
            "the ISR write of \(topic)/\(partition)", attempts: ClusterLimits.defaults.isrWriteAttempts.value
        ) {
            switch try await plan(topic: topic, partition: partition, leader: leader, leaderEpoch: leaderEpoch, isr: isr) {
            case .stale: false
            case .alreadyWritten: true
            case .write(let next, let asRead): try await commit(next, topic: topic, partition: partition, asRead: asRead)
            }
        }
    }

    /// What the partition key, read now, says about writing `isr`.
    enum Plan: Sendable, Equatable {
        /// Gone, unreadable, led by another broker or at another epoch, or on replicas
        /// that do not hold `isr` (a topic deleted and created again).
        case stale
        case alreadyWritten
        /// `state` replaces the value read at revision `asRead`.
        case write(PartitionState, asRead: Int64)
    }

    /// Reads the key and decides (the first half of `changeISR`). Throws `GRPCStatus`.
    func plan(topic: String, partition: UInt32, leader: UInt32, leaderEpoch: UInt32, isr: [UInt32]) async throws -> Plan {
        let read = try await kv.range(key: keys.partition(topic, partition))
        guard let current = read.kvs.first, let state = PartitionState(decoding: current.value),
              state.leader == leader, state.leaderEpoch == leaderEpoch, Set(isr).isSubset(of: state.replicas)
        else { return .stale }
        if state.isr == isr { return .alreadyWritten }
        var next = state
        next.isr = isr
        return .write(next, asRead: current.modRevision)
    }

    /// Puts `state` if the key is still at revision `asRead` (the second half of
    /// `changeISR`): false when it changed since. Throws `GRPCStatus`.
    func commit(_ state: PartitionState, topic: String, partition: UInt32, asRead: Int64) async throws -> Bool {
        let key = keys.partition(topic, partition)
        return try await kv.txn(compare: [.modRevision(key, .equal, asRead)], success: [.put(key, state.encoded())]).succeeded
    }
}
