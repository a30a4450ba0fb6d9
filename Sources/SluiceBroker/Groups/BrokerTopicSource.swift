import SluiceStorage

/// The broker's topics as the group coordinator sees them: partition counts from the
/// registry, offsets from the open logs.
struct BrokerTopicSource: GroupTopicSource {
    let registry: TopicRegistry
    let partitions: PartitionManager

    func partitionCount(ofTopic topic: String) -> UInt32? {
        try? registry.topic(named: topic).partitionCount
    }

    func offsets(of partition: GroupPartition) -> GroupPartitionOffsets? {
        guard let open = self.partition(partition) else { return nil }
        return GroupPartitionOffsets(
            logStartOffset: open.log.logStartOffset, logEndOffset: open.log.logEndOffset, highWatermark: open.highWatermark)
    }

    func offset(of partition: GroupPartition, atOrAfterTimestamp timestampMs: Int64) -> Int64? {
        guard let open = self.partition(partition) else { return nil }
        return try? open.log.offset(forTimestamp: timestampMs)
    }

    func offlineReason(of partition: GroupPartition) -> String? {
        guard let topic = try? registry.topic(named: partition.topic),
              case .offline(let reason)? = partitions.slot(topicID: topic.topicID, partition: partition.partition)
        else { return nil }
        return reason
    }

    private func partition(_ partition: GroupPartition) -> Partition? {
        guard let topic = try? registry.topic(named: partition.topic),
              case .online(let open)? = partitions.slot(topicID: topic.topicID, partition: partition.partition)
        else { return nil }
        return open
    }
}
