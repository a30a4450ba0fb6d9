public import SluiceAPI

/// Who leads a partition, as a broker in a cluster knows it. The broker layer knows
/// nothing of etcd: SluiceService gives a `Broker` one of these built on the cluster's
/// metadata, and a single node gives none (it leads every partition it has).
///
/// Produce asks once per batch and Subscribe once per round, so an answer must be cheap
/// (one lock-protected read of the newest metadata, no I/O).
public protocol PartitionLeadership: Sendable {
    /// Whether this broker leads partition `partition` of `topic` now.
    func verdict(topic: String, partition: UInt32) -> LeadershipVerdict

    /// The partition's replicas, leader, leader epoch and in-sync replicas as the newest
    /// metadata has them; nil where it does not know the partition. As cheap as `verdict`.
    func replicaSet(topic: String, partition: UInt32) -> ReplicaSet?

    /// This broker's id in the cluster.
    var localBrokerID: UInt32 { get }

    /// Rings `bell` whenever leadership may have changed (a new view of the cluster), until
    /// `stopRinging(id:)`: a Subscribe stream then checks its partitions again.
    func ringOnChange(id: UInt64, _ bell: AsyncStream<Void>.Continuation)
    func stopRinging(id: UInt64)
}

public enum LeadershipVerdict: Sendable, Equatable {
    /// This broker leads the partition at `epoch` (the partition's leader epoch in the
    /// metadata that answered): serve it; a batch appended now carries that epoch.
    case leads(epoch: UInt32)
    /// Another broker leads it, or none does (`nil`: no live leader, an election is under
    /// way): where a NOT_LEADER answer points. Nothing is appended or served here.
    case elsewhere(LeaderHint?)
    /// The cluster's metadata does not know the partition: the broker's own lookup
    /// answers (unknown topic or partition), as on a single node.
    case unknown
}

/// A partition's replicas as the cluster's metadata has them (the broker layer's copy of
/// SluiceCluster's `PartitionState`, which it does not import).
public struct ReplicaSet: Sendable, Equatable {
    /// Broker ids, the preferred leader first.
    public var replicas: [UInt32]
    /// The leading broker; nil while the partition has none.
    public var leader: UInt32?
    public var leaderEpoch: UInt32
    /// The in-sync replicas (the leader among them), as last written to the metadata.
    public var isr: [UInt32]

    public init(replicas: [UInt32], leader: UInt32?, leaderEpoch: UInt32, isr: [UInt32]) {
        self.replicas = replicas
        self.leader = leader
        self.leaderEpoch = leaderEpoch
        self.isr = isr
    }
}

extension LeaderHint {
    /// How a Subscribe refusal names the leader.
    var sentence: String { "broker \(brokerId) at \(address) (leader epoch \(leaderEpoch))" }
}

extension BrokerError {
    /// This broker does not lead the partition. The message starts
    /// `not leader for <topic>/<partition>:` so that a client can tell it from other
    /// UNAVAILABLE statuses and refresh its metadata.
    public static func notLeader(topic: String, partition: UInt32, leader: LeaderHint?) -> BrokerError {
        BrokerError(
            .notLeader,
            "not leader for \(topic)/\(partition): " + (leader.map { "the leader is \($0.sentence)" } ?? "no leader; an election is under way"))
    }
}
