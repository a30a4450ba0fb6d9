import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Synchronization
import Testing

/// Many members on real Join streams at once, each acknowledging revocations as they
/// arrive: the group settles with every partition held once, also after half the members
/// vanish without a word (their streams reset).
@Suite(.timeLimit(.minutes(3)))
struct GroupsConcurrencyTests {
    /// A member whose stream is read by a task that acknowledges every revocation.
    final class AutoMember: Sendable {
        let call: GRPCClientCall
        let memberID: String
        let task: Task<Void, Never>

        init(_ connection: GRPCClientConnection, topic: String) async throws {
            let member = try await GroupMemberStream.join(connection, topics: [topic])
            call = member.call
            memberID = member.memberID
            task = Task {
                var stream = member
                do {
                    while let message = try await stream.next() {
                        if case .revocation(let revocation)? = message.kind {
                            try await stream.send(.revokeAck(RevokeAck(generation: revocation.generation, partitions: revocation.partitions)))
                        }
                    }
                } catch {}
            }
        }

        func vanish() {
            call.cancel()
            task.cancel()
        }
    }

    @Test func membersComeAndGoAndEveryPartitionEndsUpHeldOnce() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 12))
        var members: [AutoMember] = []
        for _ in 0..<8 { members.append(try await AutoMember(broker.connection, topic: "t")) }

        func settled(members count: Int) async throws -> Bool {
            let response: DescribeGroupResponse = try await broker.unary(
                "/sluice.v1.Groups/DescribeGroup", DescribeGroupRequest(group: "g"))
            guard let group = response.group, group.state == .stable, group.members.count == count else { return false }
            let held = group.members.flatMap { $0.assigned.groupPartitions }
            #expect(Set(held).count == held.count, "a partition is held twice: \(group.members)")
            // Sticky balance: 12 partitions over `count` members.
            let sizes = group.members.map { $0.assigned.groupPartitions.count }
            return held.count == 12 && (sizes.max() ?? 0) - (sizes.min() ?? 0) <= 1
        }

        try await eventually("8 members settle", within: .seconds(30)) { try await settled(members: 8) }
        for member in members.suffix(4) { member.vanish() }
        members.removeLast(4)
        try await eventually("the 4 left settle", within: .seconds(30)) { try await settled(members: 4) }
        for member in members { member.vanish() }
        await broker.stopAndRemove()
    }
}
