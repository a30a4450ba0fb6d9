/// Balanced like round-robin (member counts differ by at most one when every member
/// reads every topic), moving as few partitions as possible from their current owners.
///
/// With P partitions and N members every member may hold P/N, and P%N of them one more.
/// 1. Each member keeps up to P/N of the partitions it holds (lowest first).
/// 2. Members holding more keep one extra each, in member-id order, while extra places
///    are left.
/// 3. Every partition still without an owner goes to the subscribed member holding the
///    fewest (ties: lowest member id) that still has room; if none has room (members
///    subscribe to different topics), to the subscribed member holding the fewest.
/// A partition moves only when its owner left, unsubscribed, or held more than its share.
public struct StickyAssignor: Assignor {
    public init() {}

    public func assign(_ input: AssignmentInput) -> [String: Set<GroupPartition>] {
        var result = Dictionary(uniqueKeysWithValues: input.members.map { ($0.id, Set<GroupPartition>()) })
        guard !input.members.isEmpty else { return result }
        let share = input.partitions.count / input.members.count
        var extraPlaces = input.partitions.count % input.members.count
        let existing = Set(input.partitions)
        var assigned = Set<GroupPartition>()

        var kept: [String: [GroupPartition]] = [:]
        for member in input.members {
            let holding = (input.current[member.id] ?? [])
                .filter { existing.contains($0) && member.topics.contains($0.topic) && !assigned.contains($0) }
                .sorted()
            kept[member.id] = holding
            let keep = holding.prefix(share)
            result[member.id, default: []].formUnion(keep)
            assigned.formUnion(keep)
        }
        for member in input.members where extraPlaces > 0 {
            guard let holding = kept[member.id], holding.count > share else { continue }
            result[member.id, default: []].insert(holding[share])
            assigned.insert(holding[share])
            extraPlaces -= 1
        }
        for partition in input.partitions where !assigned.contains(partition) {
            let readers = input.members.filter { $0.topics.contains(partition.topic) }
            guard !readers.isEmpty else { continue }
            func load(_ member: AssignmentInput.Member) -> Int { result[member.id]?.count ?? 0 }
            let roomy = readers.filter { load($0) < share || (load($0) == share && extraPlaces > 0) }
            let candidates = roomy.isEmpty ? readers : roomy
            guard let chosen = candidates.min(by: { (load($0), $0.id) < (load($1), $1.id) }) else { continue }
            if !roomy.isEmpty && load(chosen) == share { extraPlaces -= 1 }
            result[chosen.id, default: []].insert(partition)
            assigned.insert(partition)
        }
        return result
    }
}
