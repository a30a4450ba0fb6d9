import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

/// Subscribe with `group_reader`: a member reads only partitions it holds.
@Suite(.timeLimit(.minutes(2)))
struct GroupReaderTests {
    func subscribe(_ broker: InProcessBroker, _ member: GroupMemberStream, partitions: [UInt32], generation: Int32? = nil) async throws -> SubscribeStream {
        try await SubscribeStream(broker.connection, SubscribeRequest(
            topic: "t", partitions: partitions.map { PartitionSubscription(partition: $0, start: .earliest) },
            groupReader: GroupReader(group: "g", memberId: member.memberID, generation: generation ?? member.generation)))
    }

    @Test func aMemberReadsWhatItHoldsAndLosesTheStreamWhenThePartitionMoves() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 2))
        var producer = try await ProduceStream(broker.connection)
        for partition: UInt32 in 0..<2 {
            #expect(try await producer.produce("t", partition: partition, TestBatches.batch(["a", "b"])).error == ErrorCode.none)
        }
        var first = try await GroupMemberStream.join(broker.connection, topics: ["t"])
        try await first.awaitAssignment(count: 2)
        var both = try await subscribe(broker, first, partitions: [0, 1])
        #expect(try await both.records(4).count == 4)

        // A stranger (unknown member id) is refused at the start.
        var stranger = try await SubscribeStream(broker.connection, SubscribeRequest(
            topic: "t", groupReader: GroupReader(group: "g", memberId: "nobody", generation: 1)))
        await expectStatus(.failedPrecondition, containing: "not in group") { _ = try await stranger.next() }

        // A second member joins; the first gives one partition up, and its stream that
        // reads that partition ends.
        var second = try await GroupMemberStream.join(broker.connection, topics: ["t"])
        while first.revoked.isEmpty { _ = try await first.next() }
        let moved = try #require(first.revoked.first)
        try await first.send(.revokeAck(RevokeAck(generation: first.generation, partitions: first.revoked.byTopicForTest)))
        try await second.awaitAssignment(count: 1)
        await expectStatus(.failedPrecondition, containing: "\(moved) is not assigned") {
            while try await both.next() != nil {}
        }
        // The new owner reads it; the old one cannot open it again.
        var taken = try await subscribe(broker, second, partitions: [moved.partition])
        #expect(try await taken.records(2).map(\.value) == ["a", "b"])
        var refused = try await subscribe(broker, first, partitions: [moved.partition])
        await expectStatus(.failedPrecondition) { _ = try await refused.next() }
        taken.call.cancel()
        try await producer.close()
        await broker.stopAndRemove()
    }
}
