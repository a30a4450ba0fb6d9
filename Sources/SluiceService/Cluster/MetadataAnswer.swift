import SluiceAPI
import SluiceBroker
import SluiceCluster

/// The answer to `Metadata`: which brokers exist and who leads each partition.
///
/// A single node answers for itself: one broker (its `--broker-id`, the address it
/// listens on), each local topic with every partition led by it at epoch 0, replicas =
/// in-sync replicas = [itself], and itself as the controller (`has_controller` true): a
/// single node makes every admin change itself, which is what a controller is, so a
/// client needs no special case for "no cluster". `cluster` is empty and
/// `metadata_revision` 0.
///
/// In a cluster the answer is the newest `ClusterSnapshot`. A partition's `has_leader`
/// is true only when its leader is a live broker (one a client can reach).
enum MetadataAnswer {
    static func singleNode(_ request: MetadataRequest, registry: TopicRegistry, brokerID: UInt32, address: String) -> MetadataResponse {
        let topics = registry.topics().filter { !InternalTopics.isInternal($0.name) }
        let entries = describe(request.topics, known: Dictionary(uniqueKeysWithValues: topics.map { ($0.name, $0) })) { topic in
            (0..<topic.partitionCount).map { index in
                MetadataPartition(
                    partition: index, leaderId: brokerID, hasLeader: true, leaderEpoch: 0, replicas: [brokerID],
                    inSyncReplicas: [brokerID])
            }
        }
        return MetadataResponse(
            brokers: [MetadataBroker(id: brokerID, address: address)], topics: entries, controllerId: brokerID,
            hasController: true, cluster: "", metadataRevision: 0, answeredBy: brokerID)
    }

    static func cluster(_ request: MetadataRequest, snapshot: ClusterSnapshot, brokerID: UInt32) -> MetadataResponse {
        let entries = describe(request.topics, known: snapshot.topics) { topic in
            topic.partitions.enumerated().map { index, state in
                let live = snapshot.leader(of: topic.name, UInt32(index)) != nil
                return MetadataPartition(
                    partition: UInt32(index), leaderId: live ? state.leader ?? 0 : 0, hasLeader: live,
                    leaderEpoch: state.leaderEpoch, replicas: state.replicas, inSyncReplicas: state.isr)
            }
        }
        let brokers = snapshot.brokers.values.sorted { $0.id < $1.id }.map {
            MetadataBroker(id: $0.id, address: $0.address, rack: $0.rack ?? "")
        }
        return MetadataResponse(
            brokers: brokers, topics: entries, controllerId: snapshot.controller ?? 0, hasController: snapshot.controller != nil,
            cluster: snapshot.clusterName, metadataRevision: snapshot.revision, answeredBy: brokerID)
    }

    /// The entries a request asks for: every known topic by name when it names none, else
    /// each named one in the order asked, UNKNOWN_TOPIC for one not known (its message
    /// quotes at most the start of a long name).
    private static func describe<Topic>(
        _ requested: [String], known: [String: Topic], partitions: (Topic) -> [MetadataPartition]
    ) -> [MetadataTopic] {
        let names = requested.isEmpty ? known.keys.sorted() : requested
        return names.map { name in
            guard let topic = known[name] else {
                return MetadataTopic(name: name, error: .unknownTopic, errorMessage: BrokerError.topicNotFound(name).message)
            }
            return MetadataTopic(name: name, partitions: partitions(topic))
        }
    }
}
