import Logging
import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceService
import SluiceTestSupport
import SluiceWire
import Synchronization
import Testing

/// Cluster metadata a test writes by hand: brokers by id and address, the controller, and
/// each topic's partition states (index p is partition p), settings and id.
func clusterSnapshot(
    revision: Int64, brokers: [UInt32: String], controller: UInt32? = nil, topics: [String: [PartitionState]] = [:],
    configs: [String: [String: String]] = [:], ids: [String: String] = [:]
) -> ClusterSnapshot {
    ClusterSnapshot(
        clusterName: "test", revision: revision,
        brokers: Dictionary(uniqueKeysWithValues: brokers.map { ($0.key, BrokerInfo(id: $0.key, address: $0.value)) }),
        controller: controller,
        topics: Dictionary(uniqueKeysWithValues: topics.map { name, partitions in
            (name, ClusterTopic(name: name, id: ids[name] ?? "", configs: configs[name] ?? [:], partitions: partitions))
        }))
}

/// The placeholder a cache holds before its first read of etcd.
let emptyClusterSnapshot = clusterSnapshot(revision: 0, brokers: [:])

extension InProcessBroker {
    /// A broker of a cluster whose metadata is `metadata` (which the test feeds), with
    /// `controller` as its controller while it is the elected one.
    static func inCluster(
        id: UInt32, metadata: ClusterMetadataCache, controller: (any TopicController)? = nil,
        directory: TemporaryDirectory = TemporaryDirectory()
    ) async throws -> InProcessBroker {
        try await start(directory: directory) { configuration in
            configuration.brokerID = id
            configuration.cluster = ClusterContext(metadata: metadata, localController: { controller })
        }
    }

    var address: String { "127.0.0.1:\(port)" }

    func metadata(_ topics: [String] = []) async throws -> MetadataResponse {
        try await unary("/sluice.v1.Broker/Metadata", MetadataRequest(topics: topics))
    }
}

/// A controller that records what it was asked and answers from a table.
final class RecordingController: TopicController {
    private let calls = Mutex<[String]>([])
    /// Names `createTopic` refuses as existing.
    let existing: Set<String>

    init(existing: Set<String> = []) { self.existing = existing }

    var received: [String] { calls.withLock { $0 } }

    func createTopic(name: String, partitions: UInt32, replicationFactor: UInt32, configs: [String: String]) async throws(ControllerError) -> ClusterTopic {
        calls.withLock { $0.append("create \(name) \(partitions)x\(replicationFactor)") }
        guard !existing.contains(name) else { throw .topicExists(name) }
        let states = (0..<partitions).map { _ in PartitionState(newOn: Array(1...replicationFactor)) }
        return ClusterTopic(name: name, configs: configs, partitions: states)
    }

    func deleteTopic(name: String) async throws(ControllerError) {
        calls.withLock { $0.append("delete \(name)") }
        guard existing.contains(name) else { throw .unknownTopic(name) }
    }

    func alterTopicConfig(name: String, set: [String: String], reset: [String]) async throws(ControllerError) -> ClusterTopic {
        calls.withLock { $0.append("alter \(name) set \(set.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }) reset \(reset)") }
        guard existing.contains(name) else { throw .unknownTopic(name) }
        return ClusterTopic(name: name, configs: set, partitions: [PartitionState(newOn: [1])])
    }

    func createPartitions(name: String, totalCount: UInt32) async throws(ControllerError) -> ClusterTopic {
        calls.withLock { $0.append("grow \(name) to \(totalCount)") }
        guard existing.contains(name) else { throw .unknownTopic(name) }
        return ClusterTopic(name: name, configs: [:], partitions: (0..<totalCount).map { _ in PartitionState(newOn: [1]) })
    }
}
