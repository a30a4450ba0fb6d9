public import SluiceCluster

/// What a broker in a cluster is given besides its data directory: the cluster's
/// metadata as it learns it, and the controller while it is the elected one.
/// `BrokerServer.Configuration.cluster`; nil for a single node.
public struct ClusterContext: Sendable {
    /// The newest view of the cluster, fed by a watch of etcd (in tests, by the test).
    public var metadata: ClusterMetadataCache
    /// This broker's controller while it is the elected one, nil otherwise. CreateTopic,
    /// DeleteTopic, AlterTopicConfig and CreatePartitions go to it; on another broker
    /// they are forwarded to the controller the metadata names.
    public var localController: @Sendable () -> (any TopicController)?
    /// The bound on one forwarded admin request (connect and answer).
    public var forwardTimeout: Duration = .seconds(30)

    public init(metadata: ClusterMetadataCache, localController: @escaping @Sendable () -> (any TopicController)?) {
        self.metadata = metadata
        self.localController = localController
    }
}
