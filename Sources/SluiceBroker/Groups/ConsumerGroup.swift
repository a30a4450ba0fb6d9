import SluiceAPI

/// One member of a group as the coordinator tracks it.
struct GroupMember {
    /// Unique per incarnation: a static member that rejoins gets a new one, which is what
    /// fences its older process (whose commits then name an unknown member).
    let id: String
    let instanceID: String?
    var clientID: String
    var host: String
    var topics: Set<String>
    var sessionTimeoutMs: Int64
    var lastHeardMs: Int64
    /// The first generation this member (or the static instance it continues) was in;
    /// older generations are stale for it.
    var joinedGeneration: Int32
    /// Partitions held, each with the generation it was granted in. A commit or read
    /// naming an older generation than the grant comes from before this holding.
    var held: [GroupPartition: Int32] = [:]
    /// Held partitions the member was asked to give up and has not acknowledged yet.
    var pendingRevocation: Set<GroupPartition> = [] {
        didSet { if pendingRevocation.isEmpty { revocationPendingSinceMs = nil } }
    }
    /// When the oldest unacknowledged revocation was asked for. A member that heartbeats
    /// but never acknowledges would hold the partitions forever: past its session
    /// timeout it is expelled like a silent one.
    var revocationPendingSinceMs: Int64?
    /// Nil while a static member is disconnected (its partitions wait for it until its
    /// session times out).
    var channel: MemberChannel?

    /// What the member reads: held and not being revoked.
    var reading: Set<GroupPartition> { Set(held.keys).subtracting(pendingRevocation) }
}

/// A group's membership and assignment: a value the coordinator changes under its lock.
/// Every membership change bumps the generation and recomputes the target with the
/// group's assignor; partitions then move cooperatively (see `RebalancePlan`).
struct ConsumerGroup {
    let name: String
    var generation: Int32 = 0
    var strategy: AssignmentStrategy = .sticky
    var members: [String: GroupMember] = [:]
    /// Static members: instance id to member id.
    var instances: [String: String] = [:]
    /// The assignor's latest result, by member id.
    var target: [String: Set<GroupPartition>] = [:]
    /// Members whose queue was full when a message was pushed: to be expired.
    var overflowed: Set<String> = []
    /// The coordinator's monotonic time of the operation under way (set by it first).
    var nowMs: Int64 = 0

    init(name: String) {
        self.name = name
    }

    var state: SluiceAPI.GroupState {
        if members.isEmpty { return .empty }
        var holder: [GroupPartition: String] = [:]
        for member in members.values {
            if !member.pendingRevocation.isEmpty { return .rebalancing }
            for partition in member.held.keys { holder[partition] = member.id }
        }
        for (member, partitions) in target where partitions.contains(where: { holder[$0] != member }) {
            return .rebalancing
        }
        return .stable
    }

    /// Every topic some member subscribed to.
    var subscribedTopics: Set<String> { members.values.reduce(into: []) { $0.formUnion($1.topics) } }

    /// Who holds each partition.
    var holders: [GroupPartition: String] {
        var holder: [GroupPartition: String] = [:]
        for member in members.values {
            for partition in member.held.keys { holder[partition] = member.id }
        }
        return holder
    }

    // MARK: Rebalancing

    /// A membership change: bumps the generation, recomputes the target, asks holders to
    /// give up what moves, grants what is free, and tells every member its assignment.
    mutating func rebalance(topics: any GroupTopicSource) {
        generation += 1
        guard !members.isEmpty else {
            target = [:]
            return
        }
        var partitions: [GroupPartition] = []
        for topic in subscribedTopics.sorted() {
            for index in 0..<(topics.partitionCount(ofTopic: topic) ?? 0) { partitions.append(GroupPartition(topic, index)) }
        }
        let input = AssignmentInput(
            members: members.values.map { AssignmentInput.Member(id: $0.id, topics: $0.topics) },
            partitions: partitions, current: members.mapValues(\.reading))
        target = Assignors.assignor(for: strategy).assign(input)
        let plan = RebalancePlan(held: members.mapValues { Set($0.held.keys) }, target: target)
        for (id, revoked) in plan.revoke {
            if members[id]?.revocationPendingSinceMs == nil { members[id]?.revocationPendingSinceMs = nowMs }
            members[id]?.pendingRevocation.formUnion(revoked)
        }
        _ = grantReleased()
        for id in members.keys.sorted() { announce(id, revocations: true) }
    }

    /// Grants every targeted partition nobody holds to its target member; returns the
    /// members that gained something.
    mutating func grantReleased() -> Set<String> {
        let holder = holders
        var gained: Set<String> = []
        for (id, goal) in target {
            for partition in goal where holder[partition] == nil {
                members[id]?.held[partition] = generation
                gained.insert(id)
            }
        }
        return gained
    }

    /// Sends a member its whole assignment (and the revocations it owes).
    mutating func announce(_ id: String, revocations: Bool) {
        guard let member = members[id], let channel = member.channel else { return }
        var delivered = channel.push(CoordinatorMessage(kind: .assignment(
            Assignment(generation: generation, partitions: member.reading.byTopic))))
        if revocations && !member.pendingRevocation.isEmpty {
            delivered = channel.push(CoordinatorMessage(kind: .revocation(
                Revocation(generation: generation, partitions: member.pendingRevocation.byTopic)))) && delivered
        }
        if !delivered { overflowed.insert(id) }
    }

    /// A member gave partitions up (RevokeAck): they go to their new owners now. Only
    /// partitions pending revocation are released; anything else in the ack is ignored.
    mutating func release(_ partitions: [GroupPartition], from id: String) {
        guard var member = members[id] else { return }
        var released = false
        for partition in partitions where member.pendingRevocation.contains(partition) {
            member.pendingRevocation.remove(partition)
            member.held.removeValue(forKey: partition)
            released = true
        }
        members[id] = member
        guard released else { return }
        for gainer in grantReleased().sorted() { announce(gainer, revocations: false) }
    }

    /// Removes a member (left, expired, not reading), ending its stream, and rebalances
    /// the rest: its partitions are free at once.
    mutating func remove(_ id: String, ending: MemberChannel.Ending?, topics: any GroupTopicSource) {
        guard let member = members.removeValue(forKey: id) else { return }
        if let ending { member.channel?.end(ending) }
        if let instance = member.instanceID, instances[instance] == id { instances.removeValue(forKey: instance) }
        target.removeValue(forKey: id)
        overflowed.remove(id)
        rebalance(topics: topics)
    }

    /// Expires members whose queue overflowed, until none does.
    mutating func settle(topics: any GroupTopicSource) {
        while let id = overflowed.min() {
            overflowed.remove(id)
            remove(id, ending: .expelled("the member did not read its stream (more than its queue's messages waited); rejoin"), topics: topics)
        }
    }
}
