public import NIOCore

/// Where a cluster's metadata lives in etcd: every key under `/sluice/<cluster>/`. The
/// layout, each key's value and who writes it, are in docs/architecture.md ("Cluster
/// metadata in etcd"); this type is the one place that spells the keys.
public struct ClusterKeys: Sendable, Hashable {
    public let clusterName: String

    public init(clusterName: String) {
        precondition(EtcdClusterAddress.isValidClusterName(clusterName), "invalid cluster name \(clusterName)")
        self.clusterName = clusterName
    }

    /// `/sluice/<cluster>/`: everything of the cluster, and nothing of another cluster.
    public var root: String { "/sluice/\(clusterName)/" }

    /// `/sluice/<cluster>/brokers/`: one key per live broker.
    public var brokersPrefix: ByteBuffer { ByteBuffer(string: root + "brokers/") }

    /// `/sluice/<cluster>/brokers/<id>`, the id in decimal without leading zeros; its value
    /// is the broker's `BrokerInfo` as JSON, attached to the broker's lease.
    public func broker(_ id: UInt32) -> ByteBuffer {
        ByteBuffer(string: root + "brokers/\(id)")
    }

    /// The broker id a key under `brokersPrefix` names; nil for any other key (one that is
    /// not in the canonical decimal form included, so one id has exactly one key).
    public func brokerID(of key: ByteBuffer) -> UInt32? {
        let prefix = brokersPrefix
        guard key.readableBytes > prefix.readableBytes,
              key.readableBytesView.starts(with: prefix.readableBytesView) else { return nil }
        let digits = String(decoding: key.readableBytesView.dropFirst(prefix.readableBytes), as: UTF8.self)
        guard let id = UInt32(digits), String(id) == digits else { return nil }
        return id
    }

    /// `/sluice/<cluster>/controller`: the elected controller's `BrokerInfo`, attached to its
    /// lease. Its `create_revision` is the controller's election revision, compared by every
    /// write the controller makes (the fence).
    public var controller: ByteBuffer { ByteBuffer(string: root + "controller") }

    /// `/sluice/<cluster>/topics/`: one key per topic.
    public var topicsPrefix: ByteBuffer { ByteBuffer(string: root + "topics/") }

    /// `/sluice/<cluster>/topics/<topic>`: the topic's settings (written by the controller).
    public func topic(_ name: String) -> ByteBuffer { ByteBuffer(string: root + "topics/" + name) }

    /// `/sluice/<cluster>/partitions/`: one key per partition of every topic.
    public var partitionsPrefix: ByteBuffer { ByteBuffer(string: root + "partitions/") }

    /// `/sluice/<cluster>/partitions/<topic>/`: the partitions of one topic.
    public func partitionsPrefix(of topic: String) -> ByteBuffer { ByteBuffer(string: root + "partitions/" + topic + "/") }

    /// `/sluice/<cluster>/partitions/<topic>/<p>`, p in decimal without leading zeros: the
    /// partition's `PartitionState` (written by the controller).
    public func partition(_ topic: String, _ partition: UInt32) -> ByteBuffer {
        ByteBuffer(string: root + "partitions/" + topic + "/\(partition)")
    }

    /// The topic and partition a key under `partitionsPrefix` names; nil for any other key.
    /// Topic names never hold `/` (TopicName's rules), so the last `/` splits the two.
    public func partitionKey(of key: ByteBuffer) -> (topic: String, partition: UInt32)? {
        let prefix = partitionsPrefix
        guard key.readableBytes > prefix.readableBytes,
              key.readableBytesView.starts(with: prefix.readableBytesView) else { return nil }
        let rest = String(decoding: key.readableBytesView.dropFirst(prefix.readableBytes), as: UTF8.self)
        guard let slash = rest.lastIndex(of: "/") else { return nil }
        let topic = String(rest[..<slash]), digits = String(rest[rest.index(after: slash)...])
        guard !topic.isEmpty, !topic.contains("/"), let partition = UInt32(digits), String(partition) == digits else { return nil }
        return (topic, partition)
    }
}
