import Logging
import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceCluster
import SluiceWire

/// The topic admin RPCs of a broker in a cluster. Topics are the cluster's: CreateTopic,
/// DeleteTopic, AlterTopicConfig and CreatePartitions go to the controller (this broker's
/// own while it is the elected one, else forwarded once over gRPC to the one the metadata
/// names), ListTopics and DescribeTopic answer from the newest snapshot (DescribeTopic's positions
/// from each partition's leader). Brokers create,
/// change and remove their local copies when the change reaches their metadata
/// (`LocalTopicFollower`), not here.
struct ClusterTopicAdmin: Sendable {
    /// Set on a forwarded request, naming the broker that forwarded it. A broker that
    /// receives one and is not the controller answers UNAVAILABLE rather than forward
    /// again, so a request never circles between brokers that disagree on the controller.
    static let forwardedByHeader = "sluice-forwarded-by"

    let broker: Broker
    let cluster: ClusterContext
    let brokerID: UInt32
    let logger: Logger

    func createTopic(_ request: CreateTopicRequest, _ call: ServerCallContext) async throws -> CreateTopicResponse {
        // 0 asks for the cluster's default, as the controller will place it (the smaller of
        // 3 and the live brokers): checked here against the factor the topic will get.
        let factor = max(1, ReplicaPlacement(brokers: Array(cluster.metadata.snapshot.brokers.values))
            .replicationFactor(requested: request.replicationFactor))
        let configs = try checkShape(request.name, partitions: request.partitions, replicationFactor: factor, configs: request.configs)
        if request.validateOnly {
            if cluster.metadata.snapshot.topics[request.name] != nil {
                throw GRPCStatus(.alreadyExists, "topic \(GRPCStatus.quoting(request.name)) already exists")
            }
            let placed = ClusterTopic(name: request.name, configs: request.configs, partitions: [])
            return CreateTopicResponse(topic: TopicDescription(placed, partitionCount: request.partitions, replicationFactor: factor))
        }
        if let controller = cluster.localController() {
            let topic = try await controller.createTopic(
                name: request.name, partitions: request.partitions, replicationFactor: factor,
                configs: configs)
            return CreateTopicResponse(topic: TopicDescription(topic, snapshot: nil))
        }
        return try await forward("CreateTopic", request, call)
    }

    func deleteTopic(_ request: DeleteTopicRequest, _ call: ServerCallContext) async throws -> DeleteTopicResponse {
        if InternalTopics.isInternal(request.name) {
            throw GRPCStatus(.invalidArgument, "topic \(GRPCStatus.quoting(request.name)) is internal and cannot be deleted")
        }
        if let controller = cluster.localController() {
            try await controller.deleteTopic(name: request.name)
            return DeleteTopicResponse()
        }
        return try await forward("DeleteTopic", request, call)
    }

    func alterTopicConfig(_ request: AlterTopicConfigRequest, _ call: ServerCallContext) async throws -> AlterTopicConfigResponse {
        try InternalTopics.refuseChange(request.name, "altered")
        let set = try broker.registry.normalizedChange(set: request.set, reset: request.reset)
        if let topic = cluster.metadata.snapshot.topics[request.name] {
            var merged = topic.configs
            for key in request.reset { merged[key] = nil }
            merged.merge(set) { _, new in new }
            try Self.checkInsyncReplicas(merged, of: topic)
        }
        if let controller = cluster.localController() {
            let topic = try await controller.alterTopicConfig(name: request.name, set: set, reset: request.reset)
            return AlterTopicConfigResponse(topic: TopicDescription(topic, snapshot: nil))
        }
        return try await forward("AlterTopicConfig", request, call)
    }

    func createPartitions(_ request: CreatePartitionsRequest, _ call: ServerCallContext) async throws -> CreatePartitionsResponse {
        try InternalTopics.refuseChange(request.name, "grown")
        _ = try checkShape(request.name, partitions: request.totalCount, configs: [:])
        if let controller = cluster.localController() {
            let topic = try await controller.createPartitions(name: request.name, totalCount: request.totalCount)
            return CreatePartitionsResponse(topic: TopicDescription(topic, snapshot: nil))
        }
        return try await forward("CreatePartitions", request, call)
    }

    /// Checks a topic's name, partition count and settings as a single node does, so a bad
    /// request is refused the same way on every broker, before any controller is asked;
    /// whether the topic exists, and whether enough brokers are live for the replication
    /// factor, are the controller's call (so the check is that of a cluster's local copy,
    /// `localPartitions` given). Returns the settings in canonical text, as the controller
    /// stores them.
    private func checkShape(
        _ name: String, partitions: UInt32, replicationFactor: UInt32 = 0, configs: [String: String]
    ) throws(BrokerError) -> [String: String] {
        do throws(BrokerError) {
            return try broker.registry.createTopic(
                named: name, partitions: partitions, replicationFactor: replicationFactor, configs: configs, validateOnly: true,
                localPartitions: []
            ).configOverrides
        } catch {
            guard error.code == .topicAlreadyExists else { throw error }
            return try broker.registry.normalizedChange(set: configs, reset: [])
        }
    }

    /// The check a single node makes between a topic's settings and its shape: writes with
    /// acks=all need `min.insync.replicas` replicas, so more than the topic has is refused.
    /// (Against the topic as this broker's metadata has it.)
    private static func checkInsyncReplicas(_ configs: [String: String], of topic: ClusterTopic) throws(BrokerError) {
        let needed = configs[TopicSetting.minInsyncReplicas.rawValue].flatMap(Int.init) ?? 1
        let replicas = topic.partitions.first?.replicas.count ?? 1
        guard needed <= replicas else {
            throw BrokerError(
                .invalidConfig,
                "min.insync.replicas \(needed) is larger than the replication factor \(replicas); writes with acks=all could never succeed")
        }
    }

    func listTopics() -> ListTopicsResponse {
        let snapshot = cluster.metadata.snapshot
        return ListTopicsResponse(topics: snapshot.topics.keys.sorted().compactMap { name in
            snapshot.topics[name].map { TopicDescription($0, snapshot: nil) }
        })
    }

    /// Settings and placement come from the snapshot; each partition's positions (log
    /// start, log end, high watermark, size) from its leader, the one broker whose log of it
    /// is the partition's. A follower's copy is not (issue 15 replicates data; until then it
    /// is empty), so this broker's own logs count only where it leads, and the other
    /// leaders are asked once each, with the forwarded header so that they answer from their
    /// own logs without asking further. A leader that cannot answer leaves its partitions'
    /// positions at 0 with `offline_reason` saying why.
    func describeTopic(_ request: DescribeTopicRequest, _ call: ServerCallContext) async throws -> DescribeTopicResponse {
        let snapshot = cluster.metadata.snapshot
        guard let topic = snapshot.topics[request.name] else { throw BrokerError.topicNotFound(request.name) }
        var description = TopicDescription(topic, snapshot: snapshot)
        let asked = call.metadata[Self.forwardedByHeader] != nil
        var elsewhere: [UInt32: [Int]] = [:]
        for index in description.partitions.indices where !description.partitions[index].offline {
            let leader = description.partitions[index].leader
            if leader != brokerID, !asked { elsewhere[leader, default: []].append(index) }
        }
        if let local = try? broker.registry.topic(named: topic.name) {
            for details in broker.registry.partitions(of: local)
            where local.holdsLog(of: details.partition) && Int(details.partition) < description.partitions.count
                && description.partitions[Int(details.partition)].leader == brokerID {
                description.partitions[Int(details.partition)].copyPositions(from: details.offsets)
            }
        }
        for (leader, indices) in elsewhere {
            guard let info = snapshot.brokers[leader] else { continue }
            do {
                let answer: DescribeTopicResponse = try await send("DescribeTopic", request, to: info)
                for index in indices where index < answer.topic?.partitions.count ?? 0 {
                    guard let theirs = answer.topic?.partitions[index] else { continue }
                    description.partitions[index].copyPositions(from: theirs)
                }
            } catch {
                for index in indices {
                    description.partitions[index].offlineReason = "positions unknown: the leader, \(info), did not answer: \(error)"
                }
            }
        }
        return DescribeTopicResponse(topic: description)
    }

    /// Sends the request to the controller the metadata names and returns its answer
    /// (or its status) unchanged.
    private func forward<Request: ProtobufMessage, Response: ProtobufMessage>(
        _ method: String, _ request: Request, _ call: ServerCallContext
    ) async throws -> Response {
        let snapshot = cluster.metadata.snapshot
        let controller = snapshot.controller.flatMap { snapshot.brokers[$0] }
        if let forwarder = call.metadata[Self.forwardedByHeader] {
            throw GRPCStatus(.unavailable, "broker \(brokerID) is not the controller (the request was forwarded by broker \(GRPCStatus.quoting(forwarder))); " + Self.naming(controller))
        }
        guard let controller, controller.id != brokerID else {
            throw GRPCStatus(.unavailable, "broker \(brokerID) cannot reach the controller: " + Self.naming(controller))
        }
        return try await send(method, request, to: controller)
    }

    /// One unary call to another broker, marked as forwarded by this one.
    private func send<Request: ProtobufMessage, Response: ProtobufMessage>(
        _ method: String, _ request: Request, to target: BrokerInfo
    ) async throws -> Response {
        guard let endpoint = EtcdEndpoint(Substring(target.address)) else {
            throw GRPCStatus(.unavailable, "the address of \(target) is not HOST:PORT")
        }
        let connection: GRPCClientConnection
        do {
            connection = try await GRPCClientConnection.connect(
                GRPCClientConfiguration(host: endpoint.host, port: endpoint.port), logger: logger)
        } catch {
            throw GRPCStatus(.unavailable, "cannot reach \(target): \(error)")
        }
        let answer: ByteBuffer
        do {
            answer = try await connection.unary(
                path: "/\(BrokerService.serviceName)/\(method)", request: request.protobufBytes(),
                metadata: [Self.forwardedByHeader: "\(brokerID)"], timeout: cluster.forwardTimeout)
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        return try Response(protobuf: answer)
    }

    private static func naming(_ controller: BrokerInfo?) -> String {
        controller.map { "the controller is \($0); retry there" } ?? "no controller is elected; retry shortly"
    }
}

extension TopicDescription {
    /// A cluster topic as admin calls show it: every setting (defaults included), the
    /// replication factor of its first partition, and per partition its leader and
    /// replicas. Without a snapshot a leader is shown whether or not it is live.
    init(_ topic: ClusterTopic, snapshot: ClusterSnapshot?) {
        self.init(
            name: topic.name, topicId: topic.id, partitionCount: UInt32(topic.partitions.count),
            replicationFactor: UInt32(topic.partitions.first?.replicas.count ?? 0), configs: TopicSetting.effective(topic.configs),
            partitions: topic.partitions.enumerated().map { index, state in
                let leader = snapshot == nil ? state.leader : snapshot?.leader(of: topic.name, UInt32(index))?.broker.id
                return PartitionDescription(
                    partition: UInt32(index), leader: leader ?? 0, replicas: state.replicas, inSyncReplicas: state.isr,
                    leaderEpoch: Int32(clamping: state.leaderEpoch), offline: leader == nil,
                    offlineReason: leader == nil ? "no live leader" : "")
            })
    }

    /// A topic to be created (`validate_only`): its settings and counts, no placement yet.
    init(_ topic: ClusterTopic, partitionCount: UInt32, replicationFactor: UInt32) {
        self.init(
            name: topic.name, topicId: "", partitionCount: partitionCount, replicationFactor: max(replicationFactor, 1),
            configs: TopicSetting.effective(topic.configs), partitions: [])
    }
}

extension PartitionDescription {
    mutating func copyPositions(from leader: PartitionDescription) {
        logStartOffset = leader.logStartOffset
        logEndOffset = leader.logEndOffset
        highWatermark = leader.highWatermark
        sizeBytes = leader.sizeBytes
    }

    mutating func copyPositions(from offsets: PartitionOffsets) {
        logStartOffset = offsets.logStartOffset
        logEndOffset = offsets.logEndOffset
        highWatermark = offsets.highWatermark
        sizeBytes = offsets.sizeBytes
    }
}
