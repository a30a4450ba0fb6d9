import SluiceAPI
import SluiceBroker
import Testing

/// The coordinator as a state machine: no sockets, a hand-moved clock, no journal.
@Suite(.timeLimit(.minutes(1)))
struct GroupCoordinatorTests {
    let clock = ManualGroupClock()

    func coordinator(_ counts: [String: UInt32] = ["t": 6], settings: GroupSettings = GroupSettings()) throws -> GroupCoordinator {
        try GroupCoordinator(settings: settings, clock: clock, topics: FakeTopics(counts: counts), journal: nil)
    }

    /// Three members settle, acknowledging revocations like clients do.
    func threeSettled(_ groups: GroupCoordinator) throws -> [MemberView] {
        var members = [try groups.join(), try groups.join(), try groups.join()]
        for _ in 0..<3 {
            for index in members.indices { groups.acknowledge(&members[index]) }
        }
        for index in members.indices { members[index].update() }
        return members
    }

    @Test func threeMembersSplitSixPartitionsAndAFourthMovesOnlyOne() throws {
        let groups = try coordinator()
        var members = try threeSettled(groups)
        #expect(members.map(\.assigned.count) == [2, 2, 2])
        #expect(Set(members.flatMap(\.assigned)) == groupPartitions("t", 0...5))
        #expect(try groups.describeGroup("g").state == .stable)
        let before = members.map(\.assigned)
        let generationBefore = try groups.describeGroup("g").generation

        var fourth = try groups.join()
        for index in members.indices { members[index].update() }
        #expect(try groups.describeGroup("g").generation == generationBefore + 1)
        #expect(try groups.describeGroup("g").state == .rebalancing)
        // Exactly one member is asked for exactly one partition; the others keep theirs
        // and see no revocation at all.
        let revoked = members.filter { !$0.revocations.isEmpty }
        #expect(revoked.count == 1)
        #expect(revoked.first?.pendingRevocation.count == 1)
        for (index, member) in members.enumerated() where member.revocations.isEmpty {
            #expect(member.assigned == before[index])
            #expect(member.generation == generationBefore + 1)
        }
        // The moving partition is nobody's until it is acknowledged.
        #expect(fourth.assigned.isEmpty)
        let moving = try #require(revoked.first?.pendingRevocation.first)
        for index in members.indices where !members[index].revocations.isEmpty { groups.acknowledge(&members[index]) }
        fourth.update()
        #expect(fourth.assigned == [moving])
        #expect(fourth.generation == generationBefore + 1)
        #expect(try groups.describeGroup("g").state == .stable)
    }

    @Test func aLeaverPartitionsAreReassignedAtOnce() throws {
        let groups = try coordinator()
        var members = try threeSettled(groups)
        let leaving = members.removeLast()
        groups.leave(group: "g", member: leaving.memberID)
        #expect(leaving.channel.ending == .left)
        for index in members.indices { members[index].update() }
        #expect(members.allSatisfy { $0.revocations.isEmpty })
        #expect(Set(members.flatMap(\.assigned)) == groupPartitions("t", 0...5))
        #expect(members.map(\.assigned.count) == [3, 3])
    }

    @Test func stickyMovesOnlyWhatItMust() {
        let members = ["a", "b", "c", "d"].map { AssignmentInput.Member(id: $0, topics: ["t"]) }
        let all = (0..<8).map { GroupPartition("t", $0) }
        let first = StickyAssignor().assign(AssignmentInput(members: members, partitions: all))
        #expect(first.values.map(\.count).sorted() == [2, 2, 2, 2])
        // "b" leaves: only its two partitions move.
        var current = first
        current.removeValue(forKey: "b")
        let second = StickyAssignor().assign(AssignmentInput(members: members.filter { $0.id != "b" }, partitions: all, current: current))
        let plan = RebalancePlan(held: current, target: second)
        #expect(plan.moves == 0)
        #expect(plan.add.values.reduce(0) { $0 + $1.count } == 2)
        for member in ["a", "c", "d"] { #expect(second[member]?.isSuperset(of: current[member] ?? []) == true) }
        // "e" joins four members holding 2 each of 8: balance is 2,2,2,1,1, so "e" takes
        // one partition from one member and nothing else moves.
        let five = members + [AssignmentInput.Member(id: "e", topics: ["t"])]
        let third = StickyAssignor().assign(AssignmentInput(members: five, partitions: all, current: first))
        #expect(RebalancePlan(held: first, target: third).moves == 1)
        #expect(third.values.map(\.count).sorted() == [1, 1, 2, 2, 2])
    }

    @Test func rangeGivesContiguousRangesPerTopic() {
        let members = ["m1", "m2", "m3"].map { AssignmentInput.Member(id: $0, topics: ["a", "b"]) }
        let all = (0..<7).map { GroupPartition("a", $0) } + (0..<2).map { GroupPartition("b", $0) }
        let result = RangeAssignor().assign(AssignmentInput(members: members, partitions: all))
        #expect(result["m1"] == Set([0, 1, 2].map { GroupPartition("a", $0) } + [GroupPartition("b", 0)]))
        #expect(result["m2"] == Set([3, 4].map { GroupPartition("a", $0) } + [GroupPartition("b", 1)]))
        #expect(result["m3"] == Set([5, 6].map { GroupPartition("a", $0) }))
    }

    @Test func roundRobinDealsInTurn() {
        let members = [AssignmentInput.Member(id: "m1", topics: ["a", "b"]), AssignmentInput.Member(id: "m2", topics: ["a"])]
        let all = (0..<3).map { GroupPartition("a", $0) } + (0..<2).map { GroupPartition("b", $0) }
        let result = RoundRobinAssignor().assign(AssignmentInput(members: members, partitions: all))
        #expect(result["m1"] == [GroupPartition("a", 0), GroupPartition("a", 2), GroupPartition("b", 0), GroupPartition("b", 1)])
        #expect(result["m2"] == [GroupPartition("a", 1)])
    }

    @Test func staticMemberRestartKeepsPartitionsWithoutAGenerationBump() throws {
        let groups = try coordinator()
        var first = try groups.join(instance: "worker-1")
        var second = try groups.join(instance: "worker-2")
        groups.acknowledge(&first)
        second.update()
        first.update()
        let generation = try groups.describeGroup("g").generation
        // The process dies (stream reset, no leave): its partitions wait for it.
        groups.streamClosed(group: "g", member: first.memberID, channel: first.channel)
        #expect(try groups.describeGroup("g").generation == generation)
        var restarted = try groups.join(instance: "worker-1")
        #expect(restarted.assigned == first.assigned)
        #expect(restarted.generation == generation)
        #expect(restarted.memberID != first.memberID)
        #expect(try groups.describeGroup("g").generation == generation)
        second.update()
        #expect(second.revocations.isEmpty)
        // The old incarnation is fenced: its member id is gone.
        let partition = try #require(first.assigned.first)
        expectBrokerError(.groupNotFound) { try groups.commit(first, partition, offset: 1) }
        #expect(try groups.commit(restarted, partition, offset: 1)?.error == ErrorCode.none)
        restarted.update()
    }

    @Test func aSecondLiveJoinWithTheSameInstanceFencesTheOlderStream() throws {
        let groups = try coordinator()
        let older = try groups.join(instance: "worker-1")
        let newer = try groups.join(instance: "worker-1")
        #expect(older.channel.ending == .expelled("fenced: another member joined with instance id \"worker-1\""))
        #expect(newer.assigned == groupPartitions("t", 0...5))
        #expect(try groups.describeGroup("g").members.map(\.memberId) == [newer.memberID])
    }

    @Test func silentMembersExpireAndLoseTheirPartitions() throws {
        let groups = try coordinator()
        var talker = try groups.join(timeoutMs: 1_000)
        var silent = try groups.join(timeoutMs: 1_000)
        groups.acknowledge(&talker)
        silent.update()
        #expect(silent.assigned.count == 3)
        clock.advance(ms: 600)
        groups.heard(group: "g", member: talker.memberID)
        #expect(groups.expireSilentMembers() == 0)
        clock.advance(ms: 600)
        #expect(groups.expireSilentMembers() == 1)
        guard let reason = silent.expelledReason(otherwise: "the silent member's stream did not end") else { return }
        #expect(reason.contains("session expired"))
        talker.update()
        #expect(talker.assigned == groupPartitions("t", 0...5))
        expectBrokerError(.groupNotFound) { try groups.commit(silent, GroupPartition("t", 0), offset: 1) }
    }

    @Test func aMemberThatNeverAcknowledgesARevocationIsExpelled() throws {
        let groups = try coordinator()
        var holder = try groups.join(timeoutMs: 1_000)
        clock.advance(ms: 500)
        var newcomer = try groups.join(timeoutMs: 1_000)
        holder.update()
        #expect(holder.pendingRevocation.count == 3)
        // The holder keeps heartbeating but never acknowledges.
        for _ in 0..<3 {
            clock.advance(ms: 400)
            groups.heard(group: "g", member: holder.memberID)
            groups.heard(group: "g", member: newcomer.memberID)
            groups.expireSilentMembers()
        }
        guard let reason = holder.expelledReason(otherwise: "a member sitting on a revocation stayed") else { return }
        #expect(reason.contains("not acknowledged"))
        newcomer.update()
        #expect(newcomer.assigned == groupPartitions("t", 0...5))
    }

    @Test func commitsAreFencedByMemberGenerationAndOwnership() throws {
        let groups = try coordinator()
        var a = try groups.join()
        var b = try groups.join()
        groups.acknowledge(&a)
        b.update()
        a.update()
        let mine = try #require(a.assigned.min())
        let theirs = try #require(b.assigned.min())
        #expect(try groups.commit(a, mine, offset: 5)?.error == ErrorCode.none)
        #expect(try groups.commit(a, theirs, offset: 5)?.error == .notAssigned)
        #expect(try groups.commit(a, mine, offset: 101)?.error == .offsetOutOfRange)
        #expect(try groups.commit(a, mine, offset: -1)?.error == .offsetOutOfRange)
        #expect(try groups.commit(a, GroupPartition("t", 9), offset: 1)?.error == .unknownPartition)
        #expect(try groups.commit(a, GroupPartition("nope", 0), offset: 1)?.error == .unknownTopic)
        expectBrokerError(.groupStateConflict, containing: "is stale") { try groups.commit(a, generation: 0, mine, offset: 5) }
        expectBrokerError(.groupStateConflict, containing: "is stale") { try groups.commit(a, generation: 99, mine, offset: 5) }
        expectBrokerError(.groupNotFound) { try groups.commit(a, mine, offset: 5, group: "other") }
        // b leaves; a gets b's partitions in a newer generation. A commit naming a's older
        // generation for them comes from before a held them: refused.
        let oldGeneration = a.generation
        groups.leave(group: "g", member: b.memberID)
        a.update()
        #expect(a.assigned.contains(theirs))
        #expect(try groups.commit(a, generation: oldGeneration, theirs, offset: 5)?.error == .illegalGeneration)
        // Partitions a kept through the rebalance still take a commit racing the bump.
        #expect(try groups.commit(a, generation: oldGeneration, mine, offset: 6)?.error == ErrorCode.none)
        #expect(try groups.commit(a, theirs, offset: 7)?.error == ErrorCode.none)
        let fetched = try groups.fetchOffsets(group: "g", partitions: [mine, theirs])
        #expect(fetched.map(\.offset) == [6, 7])
        let unknown = try groups.fetchOffsets(group: "g", partitions: [GroupPartition("other", 0)])
        #expect(unknown.map(\.offset) == [-1])
    }

    @Test func badJoinsAreRefusedWithReasons() throws {
        let groups = try coordinator()
        expectBrokerError(.invalidRequest, containing: "no topics") { try groups.join(topics: []) }
        expectBrokerError(.topicNotFound, containing: "\"missing\"") { try groups.join(topics: ["t", "missing"]) }
        expectBrokerError(.invalidRequest, containing: "session_timeout_ms 50") { try groups.join(timeoutMs: 50) }
        expectBrokerError(.invalidRequest, containing: "session_timeout_ms 300001") { try groups.join(timeoutMs: 300_001) }
        expectBrokerError(.invalidRequest, containing: "group name") { try groups.join(group: "a/b") }
        expectBrokerError(.invalidRequest, containing: "group name is empty") { try groups.join(group: "") }
        expectBrokerError(.invalidRequest, containing: "internal") { try groups.join(topics: ["__consumer_offsets"]) }
        _ = try groups.join(strategy: .range)
        expectBrokerError(.invalidRequest, containing: "uses strategy range") { try groups.join(strategy: .roundRobin) }
        #expect(try groups.describeGroup("g").members.count == 1)
    }

    @Test func aMemberThatDoesNotReadIsExpelledNotBufferedFor() throws {
        let groups = try coordinator()
        let stalled = try groups.join(capacity: 3)
        // Never drained: every rebalance queues an assignment (and a revocation).
        var others: [MemberView] = []
        for _ in 0..<4 where stalled.channel.ending == nil { others.append(try groups.join()) }
        guard let reason = stalled.expelledReason(otherwise: "a member that never reads stayed in the group") else { return }
        #expect(reason.contains("did not read"))
        #expect(try groups.describeGroup("g").members.count == others.count)
    }

    @Test func adminChangesOnlyWhileTheGroupIsEmpty() throws {
        let groups = try coordinator()
        let member = try groups.join()
        let admin = CommitOffsetsRequest(group: "g", memberId: "", generation: -1, offsets: [OffsetCommit(topic: "t", partition: 0, offset: 3)])
        expectBrokerError(.groupStateConflict, containing: "1 member(s)") { try groups.commit(admin) }
        expectBrokerError(.groupStateConflict) { try groups.resetOffsets(group: "g", topic: "t", partitions: [], to: .earliest, dryRun: false) }
        expectBrokerError(.groupStateConflict) { try groups.deleteGroup("g") }
        groups.leave(group: "g", member: member.memberID)
        #expect(try groups.commit(admin).results.first?.error == ErrorCode.none)
        #expect(try groups.describeGroup("g").state == .empty)
        let (dry, _) = try groups.resetOffsets(group: "g", topic: "t", partitions: [0, 1], to: .shift(-10), dryRun: true)
        #expect(dry.map(\.offset) == [0, 0])
        #expect(try groups.fetchOffsets(group: "g", partitions: []).map(\.offset) == [3])
        _ = try groups.resetOffsets(group: "g", topic: "t", partitions: [0, 1], to: .latest, dryRun: false)
        #expect(try groups.fetchOffsets(group: "g", partitions: []).map(\.offset) == [100, 100])
        let lag = try groups.describeGroup("g").partitions
        #expect(lag.map(\.lag) == [0, 0])
        _ = try groups.deleteGroup("g")
        expectBrokerError(.groupNotFound) { try groups.describeGroup("g") }
        #expect(groups.listGroups().isEmpty)
    }
}
