import SluiceAPI
import SluiceBroker
import SluiceWire

/// `sluice.v1.Broker`: the topic admin RPCs on the `TopicRegistry`. Produce and Subscribe
/// need the storage engine and answer UNIMPLEMENTED until it is wired in; Replicate
/// answers UNIMPLEMENTED until replication exists.
public struct BrokerService: Sendable {
    public static let serviceName = "sluice.v1.Broker"
    private let registry: TopicRegistry

    public init(registry: TopicRegistry) {
        self.registry = registry
    }

    public var methods: [GRPCMethod] {
        let registry = self.registry
        let prefix = "/\(Self.serviceName)/"
        return [
            .bidirectional(prefix + "Produce") { _, _, _ in
                throw GRPCStatus(.unimplemented, "Produce is not available yet: this broker has no storage engine")
            },
            // The request is decoded first so that bad protobuf is INVALID_ARGUMENT here too.
            ProtobufRoute.serverStreaming(prefix + "Subscribe") { (_: SubscribeRequest, _: ProtobufRoute.ResponseWriter<SubscribeResponse>, _) in
                throw GRPCStatus(.unimplemented, "Subscribe is not available yet: this broker has no storage engine")
            },
            .bidirectional(prefix + "Replicate") { _, _, _ in
                throw GRPCStatus(.unimplemented, "replication is not built yet")
            },
            ProtobufRoute.unary(prefix + "CreateTopic") { (request: CreateTopicRequest, _) in
                let topic = try mappingBrokerErrors { () throws(BrokerError) in
                    try registry.createTopic(
                        named: request.name, partitions: request.partitions, replicationFactor: request.replicationFactor,
                        configs: request.configs, validateOnly: request.validateOnly)
                }
                return CreateTopicResponse(topic: TopicDescription(topic, partitions: registry.partitions(of: topic)))
            },
            ProtobufRoute.unary(prefix + "DeleteTopic") { (request: DeleteTopicRequest, _) in
                _ = try mappingBrokerErrors { () throws(BrokerError) in try registry.deleteTopic(named: request.name) }
                return DeleteTopicResponse()
            },
            ProtobufRoute.unary(prefix + "ListTopics") { (_: ListTopicsRequest, _) in
                ListTopicsResponse(topics: registry.topics().map { TopicDescription($0, partitions: []) })
            },
            ProtobufRoute.unary(prefix + "DescribeTopic") { (request: DescribeTopicRequest, _) in
                let details = try mappingBrokerErrors { () throws(BrokerError) in try registry.describeTopic(named: request.name) }
                return DescribeTopicResponse(topic: TopicDescription(details.metadata, partitions: details.partitions))
            },
            ProtobufRoute.unary(prefix + "AlterTopicConfig") { (request: AlterTopicConfigRequest, _) in
                let topic = try mappingBrokerErrors { () throws(BrokerError) in
                    try registry.alterTopicConfig(named: request.name, set: request.set, reset: request.reset)
                }
                return AlterTopicConfigResponse(topic: TopicDescription(topic, partitions: registry.partitions(of: topic)))
            },
            ProtobufRoute.unary(prefix + "CreatePartitions") { (request: CreatePartitionsRequest, _) in
                let topic = try mappingBrokerErrors { () throws(BrokerError) in
                    try registry.createPartitions(named: request.name, totalCount: request.totalCount)
                }
                return CreatePartitionsResponse(topic: TopicDescription(topic, partitions: registry.partitions(of: topic)))
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
            sizeBytes: partition.offsets.sizeBytes, leaderEpoch: partition.offsets.leaderEpoch)
    }
}
