/// All partitions of all topics, sorted by topic and number, dealt to the members in
/// member-id order, skipping members not subscribed to a partition's topic.
public struct RoundRobinAssignor: Assignor {
    public init() {}

    public func assign(_ input: AssignmentInput) -> [String: Set<GroupPartition>] {
        var result = Dictionary(uniqueKeysWithValues: input.members.map { ($0.id, Set<GroupPartition>()) })
        guard !input.members.isEmpty else { return result }
        var turn = 0
        for partition in input.partitions {
            for step in 0..<input.members.count {
                let member = input.members[(turn + step) % input.members.count]
                guard member.topics.contains(partition.topic) else { continue }
                result[member.id, default: []].insert(partition)
                turn = (turn + step + 1) % input.members.count
                break
            }
        }
        return result
    }
}
