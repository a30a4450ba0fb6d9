public import SluiceAPI

/// What a client knows of the cluster: which broker leads each partition, at which leader
/// epoch, and the metadata revision that view was read at. Kept apart from the network so
/// its rules are tested on their own (`ClusterMetadataTests`):
/// - an answer with a lower `metadata_revision` than the one held is stale (brokers' views
///   differ for a moment) and ignored as a whole;
/// - a partition never moves back to an older leader epoch, whoever says so: a NOT_LEADER
///   hint may have taught a newer epoch than the answer of the same revision;
/// - a single node (an answer with no `cluster` name) or a broker that answers Metadata
///   UNIMPLEMENTED (older than the RPC) leads every partition itself, at the address the
///   client reached it at.
public struct ClusterMetadata: Sendable, Equatable {
    public struct Leader: Sendable, Equatable {
        /// `host:port` clients reach the leader at.
        public var address: String
        public var epoch: UInt32
    }

    /// The revision of the answer adopted last; nil before any.
    public private(set) var revision: Int64?
    public private(set) var leaders: [TopicPartition: Leader] = [:]
    /// Partitions of a topic with no leader now (an election is under way).
    public private(set) var leaderless: Set<TopicPartition> = []
    /// `host:port` of every live broker of the last answer.
    public private(set) var brokers: [UInt32: String] = [:]
    /// Set when the broker answered Metadata UNIMPLEMENTED: it leads everything.
    public private(set) var singleNode: String?

    public init() {}

    /// Adopts `response` unless it is older than what is held; true when adopted.
    @discardableResult
    public mutating func adopt(_ response: MetadataResponse) -> Bool {
        if let revision, response.metadataRevision < revision { return false }
        revision = response.metadataRevision
        singleNode = nil
        brokers = Dictionary(response.brokers.map { ($0.id, $0.address) }, uniquingKeysWith: { first, _ in first })
        for topic in response.topics where topic.error == .none {
            for partition in topic.partitions {
                let place = TopicPartition(topic: topic.name, partition: Int(partition.partition))
                guard partition.hasLeader, let address = brokers[partition.leaderId] else {
                    if leaders[place] == nil { leaderless.insert(place) }
                    continue
                }
                _ = adopt(Leader(address: address, epoch: partition.leaderEpoch), at: place)
            }
        }
        return true
    }

    /// Adopts a NOT_LEADER answer's hint when its epoch is newer than the one held (or none
    /// is held); true when the partition's leader changed.
    @discardableResult
    public mutating func adopt(_ hint: LeaderHint, at place: TopicPartition) -> Bool {
        guard !hint.address.isEmpty else { return false }
        return adopt(Leader(address: hint.address, epoch: hint.leaderEpoch), at: place, strictlyNewer: true)
    }

    /// The broker answered Metadata UNIMPLEMENTED: `address` leads every partition.
    public mutating func adoptSingleNode(_ address: String) {
        guard revision == nil || singleNode != nil else { return }
        singleNode = address
    }

    public func leader(of place: TopicPartition) -> String? {
        singleNode ?? leaders[place]?.address
    }

    /// The partitions of `topic` the last answers named, in order.
    public func partitions(of topic: String) -> [Int] {
        Set(leaders.keys.filter { $0.topic == topic }.map(\.partition))
            .union(leaderless.filter { $0.topic == topic }.map(\.partition)).sorted()
    }

    /// Every broker that leads a partition of `places`.
    public func leaderAddresses(of places: some Sequence<TopicPartition>) -> Set<String> {
        Set(places.compactMap(leader(of:)))
    }

    private mutating func adopt(_ leader: Leader, at place: TopicPartition, strictlyNewer: Bool = false) -> Bool {
        if let held = leaders[place], strictlyNewer ? leader.epoch <= held.epoch : leader.epoch < held.epoch { return false }
        let changed = leaders[place] != leader
        leaders[place] = leader
        leaderless.remove(place)
        return changed
    }
}
