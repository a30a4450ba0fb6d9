import Logging
import SluiceAPI
public import SluiceBroker
import SluiceCluster
public import SluiceWire

/// `sluice.v1.Broker` on a `Broker`: Produce and Subscribe streams, the topic admin
/// RPCs and Metadata. Requests are decoded by `ProtobufRoute` (bad protobuf ends the call
/// with INVALID_ARGUMENT), and a broker or controller error a handler throws becomes its
/// status there (`BrokerError+GRPCStatus.swift`, `ControllerError+GRPCStatus.swift`).
/// Replicate serves a follower broker's fetch stream (`Broker.replicate`).
///
/// In a cluster the admin RPCs are the cluster's (`ClusterTopicAdmin`) and Metadata
/// answers from its snapshot; Produce and Subscribe serve only the partitions this broker
/// leads (the `Broker`'s `leadership`).
public struct BrokerService: Sendable {
    public static let serviceName = "sluice.v1.Broker"
    private let broker: Broker
    private let produceLimits: ProduceLimits
    private let subscribeLimits: SubscribeLimits
    private let identity: BrokerIdentity
    private let clusterAdmin: ClusterTopicAdmin?

    public init(broker: Broker, produceLimits: ProduceLimits = ProduceLimits(), subscribeLimits: SubscribeLimits = SubscribeLimits()) {
        self.init(broker: broker, produceLimits: produceLimits, subscribeLimits: subscribeLimits,
                  identity: BrokerIdentity(id: broker.registry.configuration.brokerID), cluster: nil, logger: Logger(label: "sluice.broker"))
    }

    init(
        broker: Broker, produceLimits: ProduceLimits, subscribeLimits: SubscribeLimits, identity: BrokerIdentity,
        cluster: ClusterContext?, logger: Logger
    ) {
        self.broker = broker
        self.produceLimits = produceLimits
        self.subscribeLimits = subscribeLimits
        self.identity = identity
        clusterAdmin = cluster.map { ClusterTopicAdmin(broker: broker, cluster: $0, brokerID: identity.id, logger: logger) }
    }

    public var methods: [GRPCMethod] {
        let prefix = "/\(Self.serviceName)/"
        return streamMethods(prefix) + [metadataMethod(prefix)] + (clusterAdmin.map { Self.adminMethods(prefix, $0) } ?? adminMethods(prefix))
    }

    private func streamMethods(_ prefix: String) -> [GRPCMethod] {
        let broker = self.broker
        let produceLimits = self.produceLimits
        let subscribeLimits = self.subscribeLimits
        return [
            ProtobufRoute.bidirectional(prefix + "Produce") {
                (requests: ProtobufRoute.RequestStream<ProduceRequest>, writer: ProtobufRoute.ResponseWriter<ProduceResponse>, _) in
                try await broker.produce(requests, limits: produceLimits) { try await writer.write($0) }
            },
            ProtobufRoute.serverStreaming(prefix + "Subscribe") {
                (request: SubscribeRequest, writer: ProtobufRoute.ResponseWriter<SubscribeResponse>, _) in
                try await broker.subscribe(request, limits: subscribeLimits) { try await writer.write($0) }
            },
            ProtobufRoute.unary(prefix + "InitProducerId") { (request: InitProducerIdRequest, _) in
                let identity = try broker.initProducerID(name: request.producerName)
                return InitProducerIdResponse(producerId: identity.id, producerEpoch: Int32(identity.epoch))
            },
            ProtobufRoute.bidirectional(prefix + "Replicate") {
                (requests: ProtobufRoute.RequestStream<ReplicateRequest>, writer: ProtobufRoute.ResponseWriter<ReplicateResponse>, _) in
                try await broker.replicate(requests, limits: broker.replicationSettings.limits) { try await writer.write($0) }
            },
        ]
    }

    private func metadataMethod(_ prefix: String) -> GRPCMethod {
        let (registry, identity, metadata) = (broker.registry, identity, clusterAdmin?.cluster.metadata)
        return ProtobufRoute.unary(prefix + "Metadata") { (request: MetadataRequest, _) in
            guard let metadata else {
                return MetadataAnswer.singleNode(request, registry: registry, brokerID: identity.id, address: identity.address)
            }
            return MetadataAnswer.cluster(request, snapshot: metadata.snapshot, brokerID: identity.id)
        }
    }

    /// A single node's admin RPCs: the broker's own topics.
    private func adminMethods(_ prefix: String) -> [GRPCMethod] {
        let broker = self.broker
        let registry = broker.registry
        return [
            ProtobufRoute.unary(prefix + "CreateTopic") { (request: CreateTopicRequest, _) in
                let topic = try broker.createTopic(
                    named: request.name, partitions: request.partitions, replicationFactor: request.replicationFactor,
                    configs: request.configs, validateOnly: request.validateOnly)
                return CreateTopicResponse(topic: TopicDescription(topic, partitions: registry.partitions(of: topic)))
            },
            ProtobufRoute.unary(prefix + "DeleteTopic") { (request: DeleteTopicRequest, _) in
                try await broker.deleteTopic(named: request.name)
                return DeleteTopicResponse()
            },
            ProtobufRoute.unary(prefix + "ListTopics") { (_: ListTopicsRequest, _) in
                ListTopicsResponse(topics: registry.topics().filter { !InternalTopics.isInternal($0.name) }.map {
                    TopicDescription($0, partitions: [])
                })
            },
            ProtobufRoute.unary(prefix + "DescribeTopic") { (request: DescribeTopicRequest, _) in
                let details = try registry.describeTopic(named: request.name)
                return DescribeTopicResponse(topic: TopicDescription(details.metadata, partitions: details.partitions))
            },
            ProtobufRoute.unary(prefix + "AlterTopicConfig") { (request: AlterTopicConfigRequest, _) in
                let topic = try broker.alterTopicConfig(named: request.name, set: request.set, reset: request.reset)
                return AlterTopicConfigResponse(topic: TopicDescription(topic, partitions: registry.partitions(of: topic)))
            },
            ProtobufRoute.unary(prefix + "CreatePartitions") { (request: CreatePartitionsRequest, _) in
                let topic = try broker.createPartitions(named: request.name, totalCount: request.totalCount)
                return CreatePartitionsResponse(topic: TopicDescription(topic, partitions: registry.partitions(of: topic)))
            },
        ]
    }

    /// A cluster broker's admin RPCs: the cluster's topics.
    private static func adminMethods(_ prefix: String, _ admin: ClusterTopicAdmin) -> [GRPCMethod] {
        [
            ProtobufRoute.unary(prefix + "CreateTopic") { (request: CreateTopicRequest, call) in
                try await admin.createTopic(request, call)
            },
            ProtobufRoute.unary(prefix + "DeleteTopic") { (request: DeleteTopicRequest, call) in
                try await admin.deleteTopic(request, call)
            },
            ProtobufRoute.unary(prefix + "ListTopics") { (_: ListTopicsRequest, _) in admin.listTopics() },
            ProtobufRoute.unary(prefix + "DescribeTopic") { (request: DescribeTopicRequest, call) in try await admin.describeTopic(request, call) },
            ProtobufRoute.unary(prefix + "AlterTopicConfig") { (request: AlterTopicConfigRequest, call) in
                try await admin.alterTopicConfig(request, call)
            },
            ProtobufRoute.unary(prefix + "CreatePartitions") { (request: CreatePartitionsRequest, call) in
                try await admin.createPartitions(request, call)
            },
        ]
    }
}

extension TopicDescription {
    init(_ topic: TopicMetadata, partitions: [PartitionDetails]) {
        self.init(
            name: topic.name, topicId: topic.topicID, partitionCount: topic.partitionCount,
            replicationFactor: topic.replicationFactor, configs: topic.effectiveConfigs,
            partitions: partitions.map(PartitionDescription.init))
    }
}

extension PartitionDescription {
    init(_ partition: PartitionDetails) {
        self.init(
            partition: partition.partition, leader: partition.leader, replicas: partition.replicas,
            inSyncReplicas: partition.inSyncReplicas, logStartOffset: partition.offsets.logStartOffset,
            logEndOffset: partition.offsets.logEndOffset, highWatermark: partition.offsets.highWatermark,
            sizeBytes: partition.offsets.sizeBytes, leaderEpoch: partition.offsets.leaderEpoch,
            offline: partition.offsets.offlineReason != nil, offlineReason: partition.offsets.offlineReason ?? "")
    }
}
