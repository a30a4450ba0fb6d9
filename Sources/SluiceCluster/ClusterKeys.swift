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
}
