import SluiceAPI
public import SluiceBroker
public import SluiceWire

/// `sluice.v1.Broker` on a `Broker`: Produce and Subscribe streams and the topic admin
/// RPCs. Requests are decoded by `ProtobufRoute` (bad protobuf ends the call with
/// INVALID_ARGUMENT), and a broker error a handler throws becomes its status there
/// (`BrokerError+GRPCStatus.swift`).
/// Replicate answers UNIMPLEMENTED until replication exists.
public struct BrokerService: Sendable {
    public static let serviceName = "sluice.v1.Broker"
    private let broker: Broker
    private let produceLimits: ProduceLimits
    private let subscribeLimits: SubscribeLimits

    public init(broker: Broker, produceLimits: ProduceLimits = ProduceLimits(), subscribeLimits: SubscribeLimits = SubscribeLimits()) {
        self.broker = broker
        self.produceLimits = produceLimits
        self.subscribeLimits = subscribeLimits
    }

    public var methods: [GRPCMethod] {
        let broker = self.broker
        let registry = broker.registry
        let produceLimits = self.produceLimits
        let subscribeLimits = self.subscribeLimits
        let prefix = "/\(Self.serviceName)/"
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
            .bidirectional(prefix + "Replicate") { _, _, _ in
                throw GRPCStatus(.unimplemented, "replication is not built yet")
            },
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
