import Logging
import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
import SluiceTestSupport
import SluiceWire
import Testing

@Suite(.timeLimit(.minutes(1))) struct BrokerServiceTests {
    @Test func adminRoundTrip() async throws {
        let broker = try await InProcessBroker.start()
        let admin = broker.admin

        let created = try await admin.createTopic(CreateTopicRequest(name: "orders", partitions: 3, configs: ["retention.ms": "1000"]))
        #expect(created.name == "orders")
        #expect(created.partitionCount == 3)
        #expect(created.replicationFactor == 1)
        #expect(created.configs["retention.ms"] == "1000")
        #expect(created.configs["max.message.bytes"] == "1048576")
        #expect(created.partitions.map(\.partition) == [0, 1, 2])

        let dry = try await admin.createTopic(CreateTopicRequest(name: "dry", partitions: 1, validateOnly: true))
        #expect(dry.name == "dry")

        let listed = try await admin.listTopics()
        #expect(listed.map(\.name) == ["orders"])
        #expect(listed[0].topicId == created.topicId)
        #expect(listed[0].partitions.isEmpty)

        let described = try await admin.describeTopic(named: "orders")
        #expect(described.partitions.count == 3)
        #expect(described.partitions.allSatisfy { $0.leader == 1 && $0.replicas == [1] && $0.inSyncReplicas == [1] && $0.logEndOffset == 0 })

        let altered = try await admin.alterTopicConfig(named: "orders", set: ["segment.ms": "60000"], reset: ["retention.ms"])
        #expect(altered.configs["segment.ms"] == "60000")
        #expect(altered.configs["retention.ms"] == "604800000")

        let grown = try await admin.createPartitions(named: "orders", totalCount: 5)
        #expect(grown.partitionCount == 5)
        #expect(grown.partitions.count == 5)

        try await admin.deleteTopic(named: "orders")
        #expect(try await admin.listTopics().isEmpty)
        await broker.stopAndRemove()
    }

    @Test func adminErrorsAreStatuses() async throws {
        let broker = try await InProcessBroker.start()
        let admin = broker.admin
        _ = try await admin.createTopic(CreateTopicRequest(name: "orders", partitions: 1))

        await expectStatus(.alreadyExists, containing: "orders") { try await admin.createTopic(CreateTopicRequest(name: "orders", partitions: 1)) }
        await expectStatus(.notFound, containing: "missing") { try await admin.describeTopic(named: "missing") }
        await expectStatus(.notFound) { try await admin.deleteTopic(named: "missing") }
        await expectStatus(.notFound) { try await admin.alterTopicConfig(named: "missing", set: ["segment.ms": "1"]) }
        await expectStatus(.notFound) { try await admin.createPartitions(named: "missing", totalCount: 2) }
        await expectStatus(.invalidArgument, containing: "topic name") { try await admin.createTopic(CreateTopicRequest(name: "a/b", partitions: 1)) }
        await expectStatus(.invalidArgument, containing: "partition") { try await admin.createTopic(CreateTopicRequest(name: "none", partitions: 0)) }
        await expectStatus(.invalidArgument, containing: "replication factor") {
            try await admin.createTopic(CreateTopicRequest(name: "rf", partitions: 1, replicationFactor: 2))
        }
        await expectStatus(.invalidArgument, containing: "colour") {
            try await admin.createTopic(CreateTopicRequest(name: "c", partitions: 1, configs: ["colour": "blue"]))
        }
        await expectStatus(.invalidArgument, containing: "segment.bytes") {
            try await admin.alterTopicConfig(named: "orders", set: ["segment.bytes": "12"])
        }
        await expectStatus(.invalidArgument, containing: "larger") { try await admin.createPartitions(named: "orders", totalCount: 1) }
        await broker.stopAndRemove()
    }

    @Test func topicsSurviveARestart() async throws {
        let directory = TemporaryDirectory()
        let first = try await InProcessBroker.start(directory: directory)
        let created = try await first.admin.createTopic(CreateTopicRequest(name: "kept", partitions: 2, configs: ["cleanup.policy": "delete"]))
        await first.stop()

        let second = try await InProcessBroker.start(directory: directory)
        let described = try await second.admin.describeTopic(named: "kept")
        #expect(described.topicId == created.topicId)
        #expect(described.partitionCount == 2)
        #expect(described.configs == created.configs)
        await second.stopAndRemove()
    }

    @Test func aSecondBrokerCannotShareTheDataDirectory() async throws {
        let broker = try await InProcessBroker.start()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        #expect(throws: BrokerError.self) {
            _ = try BrokerServer(
                configuration: .init(dataDirectory: broker.directory.path + "/data", transport: .init(host: "127.0.0.1", port: 0)),
                logger: logger)
        }
        await broker.stopAndRemove()
    }

    /// A single node is nobody's leader: Replicate answers each partition NOT_A_REPLICA
    /// (and keeps the stream), never a crash or a status.
    @Test func replicateOnASingleNodeAnswersNotAReplica() async throws {
        let broker = try await InProcessBroker.start()
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "t", partitions: 1))
        let call = try await broker.connection.makeCall(path: "/sluice.v1.Broker/Replicate")
        try await call.send(ReplicateRequest(replicaId: 2, partitions: [ReplicaPosition(topic: "t", partition: 0)]).protobufBytes())
        var responses = call.responses.makeAsyncIterator()
        let answer = try ReplicateResponse(protobuf: try #require(try await responses.next()))
        #expect(answer.partitions.map(\.error) == [.notAReplica])
        #expect(answer.partitions.first?.errorMessage.contains("not in a cluster") == true)
        try await call.finishSending()
        while try await responses.next() != nil {}
        await broker.stopAndRemove()
    }

    @Test func badProtobufIsInvalidArgument() async throws {
        let broker = try await InProcessBroker.start()
        // Field 1 as a length-delimited string claiming 100 bytes, with 2 present.
        let truncated = ByteBuffer(bytes: [0x0A, 100, 0x61, 0x62])
        for path in ["/sluice.v1.Broker/CreateTopic", "/sluice.v1.Broker/ListTopics", "/sluice.test.v1.Echo/Get",
                     "/grpc.health.v1.Health/Check"] {
            await expectStatus(.invalidArgument, containing: "not valid protobuf") {
                try await broker.connection.unary(path: path, request: truncated)
            }
        }
        for path in ["/sluice.v1.Broker/Subscribe", "/sluice.v1.Broker/Produce", "/sluice.v1.Broker/Replicate", "/sluice.test.v1.Echo/Expand", "/sluice.test.v1.Echo/Collect",
                     "/sluice.test.v1.Echo/Update", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"] {
            await expectStatus(.invalidArgument, containing: path) {
                let call = try await broker.connection.makeCall(path: path)
                try await call.send(truncated)
                try await call.finishSending()
                for try await _ in call.responses {}
            }
        }
        // The connection keeps working.
        #expect(try await broker.admin.listTopics().isEmpty)
        await broker.stopAndRemove()
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        let broker = try await InProcessBroker.start(testServices: false)
        await expectStatus(.unimplemented) {
            try await broker.connection.unary(path: "/sluice.test.v1.Echo/Get", request: EchoRequest(text: "hi").protobufBytes())
        }
        await broker.stopAndRemove()
    }
}
