import Foundation
import SluiceAPI
import SluiceBroker
import SluiceTestSupport
import Testing

/// Random joins, leaves, crashes, static restarts, acknowledgements and expiries against
/// the coordinator, checking its invariants after every step. Seeds are fixed; the count
/// of runs is SLUICE_GROUP_RUNS (default 20, 500 under SLUICE_SOAK=1).
@Suite(.timeLimit(.minutes(2)))
struct GroupCoordinatorRandomTests {
    static var runs: Int { runCount("SLUICE_GROUP_RUNS", ci: 20, soak: 500) }

    @Test func invariantsHoldUnderRandomMembershipChanges() throws {
        for seed in 0..<Self.runs { try run(seed: UInt64(seed)) }
    }

    func run(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let clock = ManualGroupClock()
        let groups = try GroupCoordinator(clock: clock, topics: FakeTopics(counts: ["a": 5, "b": 3]), journal: nil)
        var members: [MemberView] = []
        var lastGeneration: Int32 = 0
        for step in 0..<60 {
            switch random.next(below: 7) {
            case 0, 1:
                let topics = random.next(below: 3) == 0 ? ["a"] : ["a", "b"]
                let instance = random.next(below: 2) == 0 ? "i\(random.next(below: 3))" : ""
                members.append(try groups.join(topics: topics, instance: instance, timeoutMs: 1_000))
            case 2 where !members.isEmpty:
                let leaving = members.remove(at: random.next(below: members.count))
                groups.leave(group: "g", member: leaving.memberID)
            case 3 where !members.isEmpty:
                let crashed = members.remove(at: random.next(below: members.count))
                groups.streamClosed(group: "g", member: crashed.memberID, channel: crashed.channel)
            case 4:
                clock.advance(ms: Int64(random.next(below: 700)))
                for index in members.indices where random.next(below: 4) != 0 {
                    groups.heard(group: "g", member: members[index].memberID)
                }
                groups.expireSilentMembers()
            default:
                for index in members.indices where random.next(below: 3) != 0 { groups.acknowledge(&members[index]) }
            }
            for index in members.indices { members[index].update() }
            members.removeAll { $0.channel.ending != nil }
            // A group without members or offsets is forgotten; it starts again at generation 0.
            guard let description = try? groups.describeGroup("g") else {
                lastGeneration = 0
                continue
            }
            // One holder per partition at any time.
            var seen: Set<GroupPartition> = []
            for member in description.members {
                for partition in (member.assigned + member.pendingRevocation).groupPartitions {
                    #expect(seen.insert(partition).inserted, "seed \(seed) step \(step): \(partition) held twice")
                }
            }
            #expect(description.generation >= lastGeneration, "seed \(seed): the generation went back")
            lastGeneration = description.generation
            // What each live member was last told matches what the coordinator records.
            for member in members {
                guard let recorded = description.members.first(where: { $0.memberId == member.memberID }) else { continue }
                #expect(Set(recorded.assigned.groupPartitions) == member.assigned, "seed \(seed) step \(step)")
            }
        }
        // Everyone acknowledges and heartbeats: the group settles with every partition
        // of a subscribed topic held by a subscribed member.
        for _ in 0..<4 {
            for index in members.indices {
                groups.heard(group: "g", member: members[index].memberID)
                groups.acknowledge(&members[index])
            }
        }
        clock.advance(ms: 2_000)
        for index in members.indices { groups.heard(group: "g", member: members[index].memberID) }
        groups.expireSilentMembers()
        for _ in 0..<4 { for index in members.indices { groups.acknowledge(&members[index]) } }
        guard let settled = try? groups.describeGroup("g"), !settled.members.isEmpty else { return }
        #expect(settled.state == .stable, "seed \(seed)")
        let subscribed = Set(settled.partitions.map(\.topic))
        let held = settled.members.flatMap { $0.assigned.groupPartitions }
        let expected = (subscribed.contains("a") ? 5 : 0) + (subscribed.contains("b") ? 3 : 0)
        #expect(held.count == expected, "seed \(seed): \(held.count) of \(expected) partitions held")
        #expect(settled.partitions.allSatisfy { !$0.owner.isEmpty }, "seed \(seed)")
    }
}
