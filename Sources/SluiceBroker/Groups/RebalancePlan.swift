/// The difference between who holds which partition and the assignor's target, as the
/// cooperative protocol acts on it (groups.proto):
/// - `keep`: held and targeted to the same member: it reads on without a pause;
/// - `revoke`: held by a member the target moves it away from: that member is asked to
///   give it up and holds it until it acknowledges (or its session ends);
/// - `add`: targeted to a member and held by nobody: granted at once;
/// - `waiting`: targeted to a member but still held by another: granted once released.
/// A partition is never in two members' holdings, so never read by two at once.
public struct RebalancePlan: Equatable, Sendable {
    public var keep: [String: Set<GroupPartition>] = [:]
    public var revoke: [String: Set<GroupPartition>] = [:]
    public var add: [String: Set<GroupPartition>] = [:]
    public var waiting: [String: Set<GroupPartition>] = [:]

    /// `held`: every member's partitions, pending revocations included; `target`: the
    /// assignor's result.
    public init(held: [String: Set<GroupPartition>], target: [String: Set<GroupPartition>]) {
        var holder: [GroupPartition: String] = [:]
        for (member, partitions) in held {
            for partition in partitions {
                precondition(holder[partition] == nil, "\(partition) is held by \(member) and \(holder[partition] ?? "")")
                holder[partition] = member
            }
        }
        for (member, partitions) in held {
            let goal = target[member] ?? []
            let kept = partitions.intersection(goal)
            let revoked = partitions.subtracting(goal)
            if !kept.isEmpty { keep[member] = kept }
            if !revoked.isEmpty { revoke[member] = revoked }
        }
        for (member, partitions) in target {
            for partition in partitions {
                switch holder[partition] {
                case nil: add[member, default: []].insert(partition)
                case member?: break
                case _?: waiting[member, default: []].insert(partition)
                }
            }
        }
    }

    /// How many partitions change hands.
    public var moves: Int { revoke.values.reduce(0) { $0 + $1.count } }
}
