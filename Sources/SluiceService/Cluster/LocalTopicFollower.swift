import Logging
import SluiceBroker
import SluiceCluster

/// Keeps a broker's local topics in step with the cluster's metadata: for every topic
/// with a partition this broker is a replica of, a local topic of the same name, partition
/// count and settings (`ClusterTopic.configs`); a local topic the metadata no longer has
/// is deleted with its logs. Internal topics (`__consumer_offsets`) are the broker's own
/// and left alone.
///
/// Each snapshot is applied whole, from what the data directory holds, so applying one
/// twice changes nothing and a restarted broker converges on the first snapshot it reads.
/// A snapshot at revision 0 is the cache's placeholder before the first read of etcd (no
/// etcd revision is 0) and is never acted on: acting on it would delete every topic.
///
/// The local copy holds a log for each of the topic's partitions, also those this broker
/// is no replica of (they stay empty: only a partition's leader appends, and replication
/// is not built yet).
struct LocalTopicFollower: Sendable {
    let broker: Broker
    let brokerID: UInt32
    let logger: Logger

    /// Applies every snapshot of `metadata` until the task is cancelled.
    func follow(_ metadata: ClusterMetadataCache) async {
        for await snapshot in metadata.snapshots() {
            await apply(snapshot)
        }
    }

    func apply(_ snapshot: ClusterSnapshot) async {
        guard snapshot.revision > 0 else { return }
        let registry = broker.registry
        for topic in snapshot.topics.values.sorted(by: { $0.name < $1.name }) where holdsReplica(of: topic) {
            do throws(BrokerError) {
                try adopt(topic, local: try? registry.topic(named: topic.name))
            } catch {
                logger.error("cannot create the local copy of a cluster topic", metadata: [
                    "topic": "\(topic.name)", "revision": "\(snapshot.revision)", "error": "\(error)"])
            }
        }
        for local in registry.topics() where !InternalTopics.isInternal(local.name) && snapshot.topics[local.name] == nil {
            logger.info("deleting the local copy of a topic the cluster no longer has", metadata: [
                "topic": "\(local.name)", "revision": "\(snapshot.revision)"])
            do throws(BrokerError) {
                try await broker.deleteTopic(named: local.name)
            } catch {
                // A topic deleted meanwhile is what this pass wanted.
                guard error.code != .topicNotFound else { continue }
                logger.error("cannot delete the local copy of a topic", metadata: ["topic": "\(local.name)", "error": "\(error)"])
            }
        }
    }

    private func holdsReplica(of topic: ClusterTopic) -> Bool {
        topic.partitions.contains { $0.replicas.contains(brokerID) }
    }

    /// Creates or grows the local copy of `topic`. Its settings are taken at creation: a
    /// cluster topic's settings do not change (AlterTopicConfig is not available in a cluster).
    private func adopt(_ topic: ClusterTopic, local: TopicMetadata?) throws(BrokerError) {
        let count = UInt32(topic.partitions.count)
        guard let local else {
            _ = try broker.createTopic(named: topic.name, partitions: count, configs: topic.configs)
            return
        }
        if local.partitionCount < count {
            _ = try broker.createPartitions(named: topic.name, totalCount: count)
        }
    }
}
