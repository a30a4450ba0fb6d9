public import SluiceAPI

/// The health of a cluster's partitions as one broker's metadata shows them: what
/// `sluice cluster status` prints and what an operator watches during a rolling restart
/// (no partition offline, none under-replicated, before the next broker goes down).
public struct ClusterStatus: Sendable, Equatable {
    /// One partition and what is wrong with it, if anything.
    public struct Partition: Sendable, Equatable {
        public var topic: String
        public var partition: UInt32
        public var leader: UInt32?
        public var leaderEpoch: UInt32
        public var replicas: [UInt32]
        public var inSyncReplicas: [UInt32]
        public var health: Health
    }

    /// Worst first: an offline partition takes no writes and serves no reads; one below
    /// its `min.insync.replicas` refuses `acks=all` writes; an under-replicated one works
    /// but is one failure closer to either.
    public enum Health: Int, Sendable, Comparable, CustomStringConvertible {
        case offline
        case belowMinInSync
        case underReplicated
        case healthy

        public static func < (lhs: Health, rhs: Health) -> Bool { lhs.rawValue < rhs.rawValue }

        public var description: String {
            switch self {
            case .offline: "offline"
            case .belowMinInSync: "below-min-isr"
            case .underReplicated: "under-replicated"
            case .healthy: "ok"
            }
        }
    }

    public var brokers: [MetadataBroker]
    public var controller: UInt32?
    public var cluster: String
    public var revision: Int64
    public var answeredBy: UInt32
    /// Sorted by topic, then partition.
    public var partitions: [Partition]

    /// Classifies every partition of `metadata`; `minInSync` gives a topic's
    /// `min.insync.replicas` (1 where absent).
    public init(_ metadata: MetadataResponse, minInSync: [String: Int] = [:]) {
        brokers = metadata.brokers.sorted { $0.id < $1.id }
        controller = metadata.hasController ? metadata.controllerId : nil
        cluster = metadata.cluster
        revision = metadata.metadataRevision
        answeredBy = metadata.answeredBy
        partitions = metadata.topics.filter { $0.error == .none }.sorted { $0.name < $1.name }.flatMap { topic in
            topic.partitions.sorted { $0.partition < $1.partition }.map { partition in
                let leader = partition.hasLeader ? partition.leaderId : nil
                return Partition(
                    topic: topic.name, partition: partition.partition, leader: leader, leaderEpoch: partition.leaderEpoch,
                    replicas: partition.replicas, inSyncReplicas: partition.inSyncReplicas,
                    health: Self.health(
                        leader: leader, replicas: partition.replicas.count, inSync: partition.inSyncReplicas.count,
                        minInSync: minInSync[topic.name] ?? 1))
            }
        }
    }

    static func health(leader: UInt32?, replicas: Int, inSync: Int, minInSync: Int) -> Health {
        if leader == nil { return .offline }
        if inSync < minInSync { return .belowMinInSync }
        if inSync < replicas { return .underReplicated }
        return .healthy
    }

    /// How many partitions are in each state.
    public func count(_ health: Health) -> Int { partitions.count { $0.health == health } }

    /// Every partition is led and has all its replicas in sync.
    public var isHealthy: Bool { partitions.allSatisfy { $0.health == .healthy } }
}
