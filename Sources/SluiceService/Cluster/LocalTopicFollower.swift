import Logging
import SluiceBroker
import SluiceCluster

/// Keeps a broker's local topics in step with the cluster's metadata: for every topic
/// with a partition this broker is a replica of, a local topic of the same name, partition
/// count and settings (`ClusterTopic.configs`), holding logs for those partitions and
/// following AlterTopicConfig and CreatePartitions in place; a local topic the metadata
/// no longer has is deleted with its logs. Internal topics (`__consumer_offsets`) are the
/// broker's own and left alone.
///
/// Each snapshot is applied whole, from what the data directory holds, so applying one
/// twice changes nothing and a restarted broker converges on the first snapshot it reads.
/// A snapshot at revision 0 is the cache's placeholder before the first read of etcd (no
/// etcd revision is 0) and is never acted on: acting on it would delete every topic.
///
/// The local copy has the topic's partition count but logs only for the partitions this
/// broker is a replica of (`TopicMetadata.localPartitions`, kept in `topics.json`), and the
/// cluster topic's id as its own: a local copy whose id differs is an earlier topic of
/// the same name (deleted and created again while this broker was not looking), so it is
/// deleted with its data and replaced.
struct LocalTopicFollower: Sendable {
    let broker: Broker
    let brokerID: UInt32
    let logger: Logger

    /// Applies every snapshot of `metadata` until the task is cancelled, then hands it
    /// to `then` (the replica fetchers, which need the logs this created).
    func follow(_ metadata: ClusterMetadataCache, then: (ClusterSnapshot) -> Void = { _ in }) async {
        for await snapshot in metadata.snapshots() {
            await apply(snapshot)
            then(snapshot)
        }
    }

    func apply(_ snapshot: ClusterSnapshot) async {
        guard snapshot.revision > 0 else { return }
        let registry = broker.registry
        for topic in snapshot.topics.values.sorted(by: { $0.name < $1.name }) where holdsReplica(of: topic) {
            do throws(BrokerError) {
                var local = try? registry.topic(named: topic.name)
                if let stale = local, !topic.id.isEmpty, stale.topicID != topic.id {
                    // The topic was deleted and created again between two snapshots this
                    // broker saw: the local copy (and its data) is the old topic's.
                    logger.info("replacing the local copy of a topic deleted and created again", metadata: [
                        "topic": "\(topic.name)", "old id": "\(stale.topicID)", "id": "\(topic.id)", "revision": "\(snapshot.revision)"])
                    try await deleteLocalCopy(named: topic.name)
                    local = nil
                }
                try adopt(topic, local: local)
            } catch {
                logger.error("cannot create the local copy of a cluster topic", metadata: [
                    "topic": "\(topic.name)", "revision": "\(snapshot.revision)", "error": "\(error)"])
            }
        }
        for local in registry.topics() where !InternalTopics.isInternal(local.name) && snapshot.topics[local.name] == nil {
            logger.info("deleting the local copy of a topic the cluster no longer has", metadata: [
                "topic": "\(local.name)", "revision": "\(snapshot.revision)"])
            do throws(BrokerError) {
                try await deleteLocalCopy(named: local.name)
            } catch {
                logger.error("cannot delete the local copy of a topic", metadata: ["topic": "\(local.name)", "error": "\(error)"])
            }
        }
    }

    /// Deletes the local topic `name` with its logs; one deleted meanwhile is what was wanted.
    private func deleteLocalCopy(named name: String) async throws(BrokerError) {
        do throws(BrokerError) {
            try await broker.deleteTopic(named: name)
        } catch {
            guard error.code == .topicNotFound else { throw error }
        }
    }

    private func holdsReplica(of topic: ClusterTopic) -> Bool {
        !replicaPartitions(of: topic).isEmpty
    }

    /// The partitions of `topic` this broker is a replica of.
    private func replicaPartitions(of topic: ClusterTopic) -> Set<UInt32> {
        Set(topic.partitions.indices.filter { topic.partitions[$0].replicas.contains(brokerID) }.map(UInt32.init))
    }

    /// Creates the local copy of `topic`, with a log for each partition this broker is a
    /// replica of, or brings an existing copy up to date: settings changed in place (in
    /// canonical text, so an unchanged topic changes nothing), new partitions added with
    /// logs for those this broker is a replica of (`Broker.createPartitions` rings the
    /// topic's Subscribe streams, as on a single node). The controller moves leaders, not
    /// replicas, so a copy whose held partitions differ otherwise is reported, not changed.
    private func adopt(_ topic: ClusterTopic, local: TopicMetadata?) throws(BrokerError) {
        let count = UInt32(topic.partitions.count)
        let replicas = replicaPartitions(of: topic)
        guard let local else {
            _ = try broker.createTopic(
                named: topic.name, partitions: count, replicationFactor: UInt32(topic.partitions.first?.replicas.count ?? 1),
                configs: topic.configs, localPartitions: replicas, topicID: topic.id.isEmpty ? nil : topic.id)
            return
        }
        let configs = try broker.registry.normalizedChange(set: topic.configs, reset: [])
        if configs != local.configOverrides {
            let reset = local.configOverrides.keys.filter { configs[$0] == nil }
            _ = try broker.alterTopicConfig(named: topic.name, set: configs, reset: Array(reset))
        }
        let held = local.localPartitions ?? []
        if local.partitionCount < count, held.isSubset(of: replicas) {
            _ = try broker.createPartitions(named: topic.name, totalCount: count, localPartitions: replicas)
        } else if local.partitionCount != count || held != replicas {
            logger.warning("the local copy of a cluster topic differs from its placement; it is left as it is", metadata: [
                "topic": "\(topic.name)", "local partitions": "\(held.sorted())",
                "replica of": "\(replicas.sorted())", "partition count": "\(count)"])
        }
    }
}
