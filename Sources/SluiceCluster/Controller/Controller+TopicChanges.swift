import Logging
import SluiceAPI

/// Changes to a topic that exists: its settings and its partition count. Each is fenced
/// like every controller write, and compares the topic key's `mod_revision` as read, so
/// two changes of one topic (or a change racing a deletion) never both apply to the same
/// version of it.
extension Controller {
    /// See `TopicController`. The service layer has checked the names and values (as a
    /// single node does) and normalized the values; this applies them to the topic key as
    /// read, in one Txn.
    public func alterTopicConfig(
        name: String, set: [String: String], reset: [String]
    ) async throws(ControllerError) -> ClusterTopic {
        try await changing("the key of topic \"\(name)\" kept changing while its settings were being changed") {
            () async throws(ControllerError) -> ClusterTopic? in
            let keyspace = try await self.readForWriting()
            guard let read = keyspace.topics[name], let states = keyspace.completeTopic(name) else { throw .unknownTopic(name) }
            var record = read.value
            for key in reset { record.configs.removeValue(forKey: key) }
            record.configs.merge(set) { _, new in new }
            let topicKey = self.keys.topic(name)
            guard try await self.fencedTxn([.modRevision(topicKey, .equal, read.modRevision)], [.put(topicKey, record.encoded())])
            else { return nil }
            self.logger.notice("changed the settings of topic \(name)", metadata: ["set": "\(set)", "reset": "\(reset)"])
            return ClusterTopic(name: name, id: record.id ?? "", configs: record.configs, partitions: states.map(\.value))
        }
    }

    /// See `TopicController`. The new partitions get the replication factor of partition
    /// 0 and are placed like a new topic's (leaders spread against what each broker leads
    /// already). Written in the chunked scheme of `createTopic`: the partition keys first,
    /// the topic key's new count last, so readers see the topic at its old count until
    /// every new partition key is there.
    public func createPartitions(name: String, totalCount: UInt32) async throws(ControllerError) -> ClusterTopic {
        try await changing("the keys of topic \"\(name)\" kept changing while it was being grown") {
            () async throws(ControllerError) -> ClusterTopic? in
            let keyspace = try await self.readForWriting()
            guard let read = keyspace.topics[name], let states = keyspace.completeTopic(name) else { throw .unknownTopic(name) }
            let count = read.value.partitions
            guard totalCount > count else { throw .partitionCountNotLarger(topic: name, current: count, requested: totalCount) }
            let topicKey = self.keys.topic(name)
            let asRead = EtcdCompare.modRevision(topicKey, .equal, read.modRevision)
            // Partition keys past the count are leftovers of a growth that did not finish.
            let leftovers = (keyspace.partitions[name] ?? [:]).keys.filter { $0 >= count }.sorted()
            let perTxn = ClusterLimits.defaults.partitionKeysPerTxn.value
            for start in stride(from: 0, to: leftovers.count, by: perTxn) {
                let chunk = leftovers[start..<min(start + perTxn, leftovers.count)]
                guard try await self.fencedTxn([asRead], chunk.map { .delete(self.keys.partition(name, $0)) }) else { return nil }
            }
            let factor = UInt32(states.first?.value.replicas.count ?? 1)
            let placement = try keyspace.placement(partitions: totalCount - count, replicationFactor: factor)
            let added = placement.map(PartitionState.init(newOn:))
            var record = read.value
            record.partitions = totalCount
            guard try await self.writePartitions(added, from: count, of: name, record: record, topicAsRead: asRead) else { return nil }
            self.logger.notice("grew topic \(name)", metadata: ["partitions": "\(totalCount)", "new replicas": "\(placement)"])
            return ClusterTopic(name: name, id: record.id ?? "", configs: record.configs, partitions: states.map(\.value) + added)
        }
    }
}
