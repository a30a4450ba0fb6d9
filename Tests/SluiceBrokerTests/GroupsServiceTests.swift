import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

/// sluice.v1.Groups over real gRPC on an in-process broker.
@Suite(.timeLimit(.minutes(3)))
struct GroupsServiceTests {
    static let groups = "/sluice.v1.Groups/"

    func createTopic(_ broker: InProcessBroker, _ name: String, partitions: UInt32) async throws {
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: name, partitions: partitions))
    }

    func produce(_ broker: InProcessBroker, _ topic: String, partition: UInt32, count: Int) async throws {
        var stream = try await ProduceStream(broker.connection)
        let answer = try await stream.produce(topic, partition: partition, TestBatches.batch((0..<count).map { "v\($0)" }))
        #expect(answer.error == ErrorCode.none)
        try await stream.close()
    }

    func commit(_ broker: InProcessBroker, _ member: GroupMemberStream, _ topic: String, _ partition: UInt32, _ offset: Int64,
                group: String = "g") async throws -> OffsetCommitResult? {
        let response: CommitOffsetsResponse = try await broker.unary(Self.groups + "CommitOffsets", CommitOffsetsRequest(
            group: group, memberId: member.memberID, generation: member.generation,
            offsets: [OffsetCommit(topic: topic, partition: partition, offset: offset, metadata: "m")]))
        return response.results.first
    }

    func describe(_ broker: InProcessBroker, _ group: String = "g") async throws -> GroupDescription {
        let response: DescribeGroupResponse = try await broker.unary(Self.groups + "DescribeGroup", DescribeGroupRequest(group: group))
        return try #require(response.group)
    }

    @Test func joinAssignCommitFetchAndDescribeWithLag() async throws {
        let broker = try await InProcessBroker.start()
        try await createTopic(broker, "orders", partitions: 2)
        try await produce(broker, "orders", partition: 0, count: 5)
        try await produce(broker, "orders", partition: 1, count: 3)
        var first = try await GroupMemberStream.join(broker.connection, topics: ["orders"])
        try await first.awaitAssignment(count: 2)
        #expect(first.memberID.hasPrefix("test-"))
        #expect(try await commit(broker, first, "orders", 0, 4)?.error == ErrorCode.none)

        var second = try await GroupMemberStream.join(broker.connection, topics: ["orders"])
        // The first member is asked for one partition; it acknowledges after committing.
        while first.revoked.isEmpty { _ = try await first.next() }
        #expect(first.revoked.count == 1)
        try await first.send(.revokeAck(RevokeAck(generation: first.generation, partitions: first.revoked.byTopicForTest)))
        try await second.awaitAssignment(count: 1)
        #expect(second.assigned.isDisjoint(with: first.assigned))
        #expect(second.generation == first.generation)

        let fetched: FetchOffsetsResponse = try await broker.unary(Self.groups + "FetchOffsets", FetchOffsetsRequest(group: "g"))
        #expect(fetched.offsets.map(\.offset) == [4])
        #expect(fetched.offsets.first?.metadata == "m")

        let description = try await describe(broker)
        #expect(description.state == .stable)
        #expect(description.members.count == 2)
        #expect(description.partitions.map(\.lag) == [1, 3])
        #expect(description.partitions.map(\.highWatermark) == [5, 3])
        #expect(Set(description.partitions.map(\.owner)) == [first.memberID, second.memberID])
        #expect(description.members.allSatisfy { $0.host.contains("127.0.0.1") })

        let listed: ListGroupsResponse = try await broker.unary(Self.groups + "ListGroups", ListGroupsRequest())
        #expect(listed.groups.map(\.group) == ["g"])
        #expect(listed.groups.first?.memberCount == 2)

        // A leave hands the partition over at once and ends the stream OK.
        try await second.send(.leave(LeaveGroup()))
        #expect(await second.awaitEnd().code == .ok)
        try await first.awaitAssignment(count: 2)
        try await first.call.finishSending()
        #expect(await first.awaitEnd().code == .ok)
        try await eventually("the group is empty") { try await describe(broker).state == .empty }
        // The internal topic is not listed.
        #expect(try await broker.admin.listTopics().map(\.name) == ["orders"])
        await broker.stopAndRemove()
    }

    @Test func aSilentMemberExpiresAndItsStreamSaysSo() async throws {
        let broker = try await InProcessBroker.start()
        try await createTopic(broker, "t", partitions: 2)
        // Joined and the assignment may be overtaken by the expiry on a loaded machine (an
        // expelled member's queue is dropped), so only the ending is certain.
        var silent = try await GroupMemberStream(broker.connection)
        try await silent.send(.join(JoinGroup(group: "g", topics: ["t"], sessionTimeoutMs: 200)))
        let status = await silent.awaitEnd()
        #expect(status.code == .failedPrecondition)
        #expect(status.message.contains("session expired"))
        // With no member and no committed offset the group is forgotten.
        try await eventually("the expired member's group is gone") { (try? await describe(broker)) == nil }
        await broker.stopAndRemove()
    }

    @Test func badInputGetsClearStatuses() async throws {
        let broker = try await InProcessBroker.start()
        try await createTopic(broker, "t", partitions: 2)
        try await produce(broker, "t", partition: 0, count: 2)

        await expectStatus(.notFound, containing: "group \"nobody\"") {
            let _: CommitOffsetsResponse = try await broker.unary(Self.groups + "CommitOffsets", CommitOffsetsRequest(
                group: "nobody", memberId: "m-1", generation: 1, offsets: [OffsetCommit(topic: "t", partition: 0, offset: 1)]))
        }
        await expectStatus(.notFound) {
            let _: DescribeGroupResponse = try await broker.unary(Self.groups + "DescribeGroup", DescribeGroupRequest(group: "nobody"))
        }
        await expectStatus(.notFound) {
            let _: DeleteGroupResponse = try await broker.unary(Self.groups + "DeleteGroup", DeleteGroupRequest(group: "nobody"))
        }

        for (join, text) in [
            (JoinGroup(group: "g", topics: []), "no topics"),
            (JoinGroup(group: "g", topics: ["t"], sessionTimeoutMs: 3_600_000), "session_timeout_ms 3600000"),
            (JoinGroup(group: "bad name", topics: ["t"]), "group name"),
        ] {
            var member = try await GroupMemberStream(broker.connection)
            try await member.send(.join(join))
            let status = await member.awaitEnd()
            #expect(status.code == .invalidArgument, "\(status)")
            #expect(status.message.contains(text), "\(status)")
        }
        var unknownTopic = try await GroupMemberStream(broker.connection)
        try await unknownTopic.send(.join(JoinGroup(group: "g", topics: ["missing"])))
        let unknownStatus = await unknownTopic.awaitEnd()
        #expect(unknownStatus.code == .notFound && unknownStatus.message.contains("\"missing\""), "\(unknownStatus)")

        var heartbeatFirst = try await GroupMemberStream(broker.connection)
        try await heartbeatFirst.send(.heartbeat(Heartbeat()))
        let firstStatus = await heartbeatFirst.awaitEnd()
        #expect(firstStatus.code == .invalidArgument && firstStatus.message.contains("must be join"), "\(firstStatus)")

        let garbage = try await broker.connection.makeCall(path: "/sluice.v1.Groups/Join")
        try await garbage.send(ByteBuffer(bytes: [0xff, 0xff, 0xff, 0xff, 0x0f]))
        var garbageResponses = garbage.responses.makeAsyncIterator()
        await expectStatus(.invalidArgument) { _ = try await garbageResponses.next() }

        // A live member: commits for a partition it does not own and beyond the log end.
        var owner = try await GroupMemberStream.join(broker.connection, topics: ["t"])
        try await owner.awaitAssignment(count: 2)
        #expect(try await commit(broker, owner, "t", 0, 3)?.error == .offsetOutOfRange)
        #expect(try await commit(broker, owner, "t", 0, 2)?.error == ErrorCode.none)
        var other = try await GroupMemberStream.join(broker.connection, group: "g", topics: ["t"])
        while owner.revoked.isEmpty { _ = try await owner.next() }
        try await owner.send(.revokeAck(RevokeAck(generation: owner.generation, partitions: owner.revoked.byTopicForTest)))
        try await other.awaitAssignment(count: 1)
        let notMine = try #require(other.assigned.first)
        #expect(try await commit(broker, owner, notMine.topic, notMine.partition, 0)?.error == .notAssigned)
        await expectStatus(.failedPrecondition, containing: "stale") {
            let _: CommitOffsetsResponse = try await broker.unary(Self.groups + "CommitOffsets", CommitOffsetsRequest(
                group: "g", memberId: owner.memberID, generation: 0, offsets: []))
        }
        await expectStatus(.failedPrecondition, containing: "member(s)") {
            let _: DeleteGroupResponse = try await broker.unary(Self.groups + "DeleteGroup", DeleteGroupRequest(group: "g"))
        }
        // Nothing above disturbed the group's one good commit.
        let fetched: FetchOffsetsResponse = try await broker.unary(Self.groups + "FetchOffsets", FetchOffsetsRequest(group: "g"))
        #expect(fetched.offsets.map(\.offset) == [2])
        // The internal topic refuses client writes and admin changes.
        var producer = try await ProduceStream(broker.connection)
        let refused = try await producer.produce(InternalTopics.consumerOffsets, TestBatches.batch(["x"]))
        #expect(refused.error == .invalidBatch)
        try await producer.close()
        await expectStatus(.invalidArgument, containing: "reserved") {
            _ = try await broker.admin.createTopic(CreateTopicRequest(name: "__mine", partitions: 1))
        }
        await expectStatus(.invalidArgument, containing: "internal") {
            try await broker.admin.deleteTopic(named: InternalTopics.consumerOffsets)
        }
        await broker.stopAndRemove()
    }

    @Test func committedOffsetsSurviveARestartAndTheGroupIsListedEmpty() async throws {
        let directory = TemporaryDirectory()
        let broker = try await InProcessBroker.start(directory: directory)
        try await createTopic(broker, "t", partitions: 3)
        for partition: UInt32 in 0..<3 { try await produce(broker, "t", partition: partition, count: 10) }
        var member = try await GroupMemberStream.join(broker.connection, topics: ["t"])
        try await member.awaitAssignment(count: 3)
        for partition: UInt32 in 0..<3 {
            #expect(try await commit(broker, member, "t", partition, Int64(partition) + 7)?.error == ErrorCode.none)
        }
        // A deleted group's offsets stay deleted.
        let other: CommitOffsetsResponse = try await broker.unary(Self.groups + "CommitOffsets", CommitOffsetsRequest(
            group: "gone", memberId: "", generation: -1, offsets: [OffsetCommit(topic: "t", partition: 0, offset: 1)]))
        #expect(other.results.first?.error == ErrorCode.none)
        let _: DeleteGroupResponse = try await broker.unary(Self.groups + "DeleteGroup", DeleteGroupRequest(group: "gone"))
        await broker.stop()

        let reopened = try await InProcessBroker.start(directory: directory)
        let fetched: FetchOffsetsResponse = try await reopened.unary(Self.groups + "FetchOffsets", FetchOffsetsRequest(group: "g"))
        #expect(fetched.offsets.map(\.offset) == [7, 8, 9])
        let listed: ListGroupsResponse = try await reopened.unary(Self.groups + "ListGroups", ListGroupsRequest())
        #expect(listed.groups.map(\.group) == ["g"])
        #expect(listed.groups.first?.state == .empty)
        let description = try await describe(reopened)
        #expect(description.partitions.map(\.lag) == [3, 2, 1])
        // Reset (only possible now that the group is empty) and read back.
        let reset: ResetOffsetsResponse = try await reopened.unary(Self.groups + "ResetOffsets", ResetOffsetsRequest(
            group: "g", topic: "t", target: .shiftBy(-5)))
        #expect(reset.offsets.map(\.offset) == [2, 3, 4])
        await reopened.stopAndRemove()
    }
}

extension Set where Element == GroupPartition {
    var byTopicForTest: [TopicPartitions] {
        Dictionary(grouping: self, by: \.topic).sorted { $0.key < $1.key }.map { topic, entries in
            TopicPartitions(topic: topic, partitions: entries.map(\.partition).sorted())
        }
    }
}
