/// Everything a broker knows of the cluster's metadata at one etcd revision: the live
/// brokers, the controller, every topic and the state of every partition. Immutable; a
/// newer revision is a new snapshot (`ClusterMetadataCache`).
public struct ClusterSnapshot: Sendable, Hashable {
    /// The cluster's name (`--cluster .../NAME`).
    public var clusterName: String
    /// The etcd revision this view is current at. Snapshots of one cluster are ordered by it.
    public var revision: Int64
    /// Live brokers by id (their registrations).
    public var brokers: [UInt32: BrokerInfo]
    /// The elected controller's broker id; nil between a controller's loss and the next election.
    public var controller: UInt32?
    /// Topics by name.
    public var topics: [String: ClusterTopic]

    public init(clusterName: String, revision: Int64, brokers: [UInt32: BrokerInfo], controller: UInt32?, topics: [String: ClusterTopic]) {
        self.clusterName = clusterName
        self.revision = revision
        self.brokers = brokers
        self.controller = controller
        self.topics = topics
    }

    /// The state of one partition; nil for an unknown topic or partition.
    public func partition(_ topic: String, _ partition: UInt32) -> PartitionState? {
        guard let partitions = topics[topic]?.partitions, Int(partition) < partitions.count else { return nil }
        return partitions[Int(partition)]
    }

    /// The leader of a partition and where to reach it; nil when the partition is unknown,
    /// has no leader, or its leader is not a live broker.
    public func leader(of topic: String, _ partition: UInt32) -> (broker: BrokerInfo, epoch: UInt32)? {
        guard let state = self.partition(topic, partition), let id = state.leader, let info = brokers[id] else { return nil }
        return (info, state.leaderEpoch)
    }

    /// The partitions `broker` leads while another of their in-sync replicas is live, as
    /// "topic/partition", sorted: what a controlled shutdown waits to see led elsewhere
    /// once the broker has left (the controller moves each to a live ISR member). A
    /// partition with no other live in-sync replica cannot move and is not listed.
    public func partitionsToHandOver(from broker: UInt32) -> [String] {
        var names: [String] = []
        for (name, topic) in topics {
            for (index, state) in topic.partitions.enumerated() where state.leader == broker {
                if state.isr.contains(where: { $0 != broker && brokers[$0] != nil }) { names.append("\(name)/\(index)") }
            }
        }
        return names.sorted()
    }
}
