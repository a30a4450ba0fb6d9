import Foundation
import Logging
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

/// `sluice serve` serves sluice.v1.Groups, and an answered commit survives SIGKILL.
@Suite(.timeLimit(.minutes(2))) struct GroupsServeProcessTests {
    func connect(_ port: Int) async throws -> GRPCClientConnection {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return try await GRPCClientConnection.connect(GRPCClientConfiguration(host: "127.0.0.1", port: port), logger: logger)
    }

    @Test func anAnsweredCommitSurvivesSIGKILL() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let (first, firstPort) = try await SluiceProcess.serve(directory: directory)
        let connection = try await connect(firstPort)
        _ = try await SluiceAdminClient(connection: connection).createTopic(CreateTopicRequest(name: "t", partitions: 2))
        var producer = try await ProduceStream(connection)
        #expect(try await producer.produce("t", partition: 1, TestBatches.batch(["a", "b", "c"])).error == ErrorCode.none)
        try await producer.close()
        var member = try await GroupMemberStream.join(connection, topics: ["t"])
        try await member.awaitAssignment(count: 2)
        let committed: CommitOffsetsResponse = try await connection.unary(
            path: "/sluice.v1.Groups/CommitOffsets",
            request: CommitOffsetsRequest(group: "g", memberId: member.memberID, generation: member.generation,
                                          offsets: [OffsetCommit(topic: "t", partition: 1, offset: 2, metadata: "kept")]),
            timeout: .seconds(30))
        #expect(committed.results.map(\.error) == [ErrorCode.none])
        kill(first.process.processIdentifier, SIGKILL)
        #expect(await first.exitStatus() == SIGKILL)
        await connection.close()

        let (second, secondPort) = try await SluiceProcess.serve(directory: directory)
        let reconnected = try await connect(secondPort)
        let fetched: FetchOffsetsResponse = try await reconnected.unary(
            path: "/sluice.v1.Groups/FetchOffsets", request: FetchOffsetsRequest(group: "g"), timeout: .seconds(30))
        #expect(fetched.offsets.map(\.offset) == [2])
        #expect(fetched.offsets.map(\.metadata) == ["kept"])
        let described: DescribeGroupResponse = try await reconnected.unary(
            path: "/sluice.v1.Groups/DescribeGroup", request: DescribeGroupRequest(group: "g"), timeout: .seconds(30))
        #expect(described.group?.state == .empty)
        #expect(described.group?.partitions.map(\.lag) == [1])
        await reconnected.close()
        second.process.terminate()
        #expect(await second.exitStatus() == 0)
    }
}
