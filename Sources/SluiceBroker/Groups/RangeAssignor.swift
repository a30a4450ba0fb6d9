/// Per topic, contiguous ranges of its partitions to the members subscribed to it, in
/// member-id order; the first `count % members` members get one more. Kafka's "range":
/// members reading several topics get the same partition numbers of each (handy for
/// joins over co-partitioned topics), at the price of imbalance across topics.
public struct RangeAssignor: Assignor {
    public init() {}

    public func assign(_ input: AssignmentInput) -> [String: Set<GroupPartition>] {
        var result = Dictionary(uniqueKeysWithValues: input.members.map { ($0.id, Set<GroupPartition>()) })
        var byTopic: [String: [GroupPartition]] = [:]
        for partition in input.partitions { byTopic[partition.topic, default: []].append(partition) }
        for (topic, partitions) in byTopic {
            let readers = input.members.filter { $0.topics.contains(topic) }
            guard !readers.isEmpty else { continue }
            let share = partitions.count / readers.count
            let extra = partitions.count % readers.count
            var next = 0
            for (position, reader) in readers.enumerated() {
                let count = share + (position < extra ? 1 : 0)
                result[reader.id, default: []].formUnion(partitions[next..<(next + count)])
                next += count
            }
        }
        return result
    }
}
