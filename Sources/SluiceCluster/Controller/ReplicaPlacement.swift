/// Where a new topic's partitions go: `replicationFactor` distinct live brokers per
/// partition, the first of them the partition's leader. Deterministic (a pure function of
/// its inputs, brokers in id order), so the rules below are unit-tested without etcd:
///
/// - **Racks.** Brokers are grouped by rack (a broker without `--rack` is a rack of its
///   own). A partition's replicas are on distinct racks while unused racks remain; only a
///   replication factor above the rack count puts two replicas on one rack.
/// - **Leaders.** Each partition's leader is the live broker leading the fewest partitions
///   so far, counting the cluster's existing leaderships (`currentLeaders`) and this
///   topic's; ties go round-robin in rack-interleaved order. Leaders of a new topic
///   therefore differ by at most one between brokers (and even out the cluster's).
/// - **Followers.** After the leader, in rack-interleaved order starting after it, skipping
///   brokers on a rack already used while an unused rack has a live broker.
/// - **Replication factor 0** means the default: the smaller of 3 and the live broker
///   count (1 on a single broker).
public struct ReplicaPlacement: Sendable {
    public static let defaultReplicationFactor: UInt32 = 3

    /// The live brokers the replicas go on.
    public var brokers: [BrokerInfo]
    /// Partitions each broker leads already, for spreading leaders across the cluster.
    public var currentLeaders: [UInt32: Int]

    public init(brokers: [BrokerInfo], currentLeaders: [UInt32: Int] = [:]) {
        self.brokers = brokers
        self.currentLeaders = currentLeaders
    }

    /// The replication factor a request for `requested` gets.
    public func replicationFactor(requested: UInt32) -> UInt32 {
        requested == 0 ? min(Self.defaultReplicationFactor, UInt32(brokers.count)) : requested
    }

    /// The replicas of each partition, partition 0 first, leader first. Throws
    /// `ControllerError.notEnoughBrokers` when fewer brokers are live than the factor asks.
    public func place(partitions: UInt32, replicationFactor requested: UInt32) throws(ControllerError) -> [[UInt32]] {
        let factor = replicationFactor(requested: requested)
        guard factor > 0, Int(factor) <= brokers.count else {
            throw .notEnoughBrokers(needed: max(factor, 1), live: UInt32(brokers.count))
        }
        let order = rackInterleaved()
        let rackOf = Dictionary(uniqueKeysWithValues: order.map { ($0.id, Self.rack(of: $0)) })
        let rackCount = Set(rackOf.values).count
        var leads = Dictionary(uniqueKeysWithValues: order.map { ($0.id, currentLeaders[$0.id] ?? 0) })
        var placements: [[UInt32]] = []
        placements.reserveCapacity(Int(partitions))
        for partition in 0..<Int(partitions) {
            // Fewest leaderships first; among equals the first from a start that rotates with
            // the partition (`min(by:)` keeps the first of equal elements).
            let start = partition % order.count
            let leaderIndex = (0..<order.count).map { (start + $0) % order.count }
                .min { leads[order[$0].id, default: 0] < leads[order[$1].id, default: 0] } ?? start
            var replicas = [order[leaderIndex].id]
            var racksUsed: Set<String> = [rackOf[order[leaderIndex].id]!]
            let followers = (1..<order.count + 1).map { order[(leaderIndex + $0) % order.count].id }.filter { $0 != replicas[0] }
            var skipped: [UInt32] = []
            for id in followers where replicas.count < Int(factor) {
                if racksUsed.count < rackCount, racksUsed.contains(rackOf[id]!) {
                    skipped.append(id)
                    continue
                }
                replicas.append(id)
                racksUsed.insert(rackOf[id]!)
            }
            // Every rack holds a replica: the rest go to the skipped brokers, in order.
            replicas += skipped.prefix(Int(factor) - replicas.count)
            assert(replicas.count == Int(factor) && Set(replicas).count == replicas.count, "placement broke its rules")
            leads[replicas[0], default: 0] += 1
            placements.append(replicas)
        }
        return placements
    }

    /// Brokers ordered rack by rack in turn (racks by name, brokers by id within a rack), so
    /// that neighbours in the order are on different racks as far as the racks allow.
    func rackInterleaved() -> [BrokerInfo] {
        let byRack = Dictionary(grouping: brokers, by: Self.rack(of:)).mapValues { $0.sorted { $0.id < $1.id } }
        let racks = byRack.keys.sorted()
        var order: [BrokerInfo] = []
        for round in 0..<(byRack.values.map(\.count).max() ?? 0) {
            for rack in racks where round < byRack[rack]!.count { order.append(byRack[rack]![round]) }
        }
        return order
    }

    /// A broker without a rack is a failure domain of its own. The NUL byte cannot be in a
    /// `--rack` name, so the two kinds never collide.
    static func rack(of broker: BrokerInfo) -> String {
        broker.rack ?? "\u{0}broker \(broker.id)"
    }
}

extension ClusterKeyspace {
    /// Replicas for `partitions` new partitions on this view's live brokers, leaders spread
    /// against the partitions each broker leads already (in topics that exist by the
    /// readers' rule).
    func placement(partitions: UInt32, replicationFactor: UInt32) throws(ControllerError) -> [[UInt32]] {
        var leads: [UInt32: Int] = [:]
        for topic in topics.keys {
            for state in completeTopic(topic) ?? [] { if let leader = state.value.leader { leads[leader, default: 0] += 1 } }
        }
        return try ReplicaPlacement(brokers: brokers.values.map(\.value), currentLeaders: leads)
            .place(partitions: partitions, replicationFactor: replicationFactor)
    }
}
