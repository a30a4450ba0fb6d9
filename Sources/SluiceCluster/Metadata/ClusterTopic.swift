/// A topic as the cluster's metadata describes it: its settings (the value of
/// `/sluice/<cluster>/topics/<topic>`) and the state of each of its partitions (the values
/// of `/sluice/<cluster>/partitions/<topic>/<p>`, p from 0).
public struct ClusterTopic: Sendable, Hashable {
    public var name: String
    /// The id the controller gave the topic at its creation (`TopicRecord.id`); every
    /// broker's local copy carries it. Empty for a topic written before topics had ids.
    public var id: String
    /// The topic's settings as `CreateTopic` takes them (`retention.ms`, `min.insync.replicas`...):
    /// each broker builds its local `TopicConfig` from them.
    public var configs: [String: String]
    /// Index p is partition p. A partition whose state key is missing or unreadable is
    /// absent from the cluster's view until the controller writes it.
    public var partitions: [PartitionState]

    public init(name: String, id: String = "", configs: [String: String], partitions: [PartitionState]) {
        self.name = name
        self.id = id
        self.configs = configs
        self.partitions = partitions
    }
}
