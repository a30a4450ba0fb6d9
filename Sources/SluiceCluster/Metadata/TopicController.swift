/// What the service layer asks of the cluster's controller when a client creates, changes
/// or deletes a topic on a broker in a cluster. The elected controller implements it; a
/// broker that is not the controller forwards the request to the one that is (its
/// address is in the `ClusterSnapshot`).
public protocol TopicController: Sendable {
    /// Places `partitions` partitions of `replicationFactor` replicas each on live brokers
    /// (rack-aware where racks are given, leaders spread evenly) and writes the topic and
    /// every partition state in fenced Txns. Returns the topic as written.
    func createTopic(name: String, partitions: UInt32, replicationFactor: UInt32, configs: [String: String]) async throws(ControllerError) -> ClusterTopic

    /// Deletes the topic's key and every partition key in one fenced Txn.
    func deleteTopic(name: String) async throws(ControllerError)

    /// Sets the settings in `set` and removes those in `reset` (back to their defaults)
    /// in the topic key, in one fenced Txn. The values are checked and normalized by the
    /// caller. Returns the topic as written.
    func alterTopicConfig(name: String, set: [String: String], reset: [String]) async throws(ControllerError) -> ClusterTopic

    /// Grows the topic to `totalCount` partitions (never shrinks it), placing the new
    /// ones like a new topic's, in fenced Txns that readers see all of or none of.
    /// Returns the topic as written.
    func createPartitions(name: String, totalCount: UInt32) async throws(ControllerError) -> ClusterTopic
}

/// Why the controller refused or could not finish a change. Each maps to one gRPC status
/// in the service layer.
public enum ControllerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// ALREADY_EXISTS.
    case topicExists(String)
    /// NOT_FOUND.
    case unknownTopic(String)
    /// INVALID_ARGUMENT: fewer live brokers than the replication factor asks for.
    case notEnoughBrokers(needed: UInt32, live: UInt32)
    /// INVALID_ARGUMENT: CreatePartitions asked for no more partitions than the topic has.
    case partitionCountNotLarger(topic: String, current: UInt32, requested: UInt32)
    /// UNAVAILABLE: this broker is not (or no longer) the controller; `current` is the one
    /// the etcd key names, nil during an election. Retriable there.
    case notController(current: BrokerInfo?)
    /// UNAVAILABLE: a fenced write found the controller key recreated by a successor: this
    /// controller lost its lease (a pause, a cut) and must not act again.
    case fenced(electionRevision: Int64)
    /// UNAVAILABLE: etcd did not answer in time or refused for a reason of its own.
    case etcd(String)

    public var description: String {
        switch self {
        case .topicExists(let name): "topic \"\(name)\" already exists"
        case .unknownTopic(let name): "topic \"\(name)\" does not exist"
        case .notEnoughBrokers(let needed, let live): "replication factor \(needed) needs \(needed) live brokers; \(live) are live"
        case .partitionCountNotLarger(let topic, let current, let requested):
            "topic \"\(topic)\" has \(current) partition(s); the new total \(requested) must be larger (partitions are never removed)"
        case .notController(let current): "not the controller; the controller is \(current.map { "\($0)" } ?? "being elected")"
        case .fenced(let revision): "this controller (elected at revision \(revision)) lost its lease; a successor controls the cluster"
        case .etcd(let detail): "etcd: \(detail)"
        }
    }
}
