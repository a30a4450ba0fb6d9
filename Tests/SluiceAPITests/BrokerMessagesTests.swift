import NIOCore
import SluiceAPI
import Testing

@Suite(.timeLimit(.minutes(2))) struct BrokerMessagesTests {
    static let batch = RecordBatch(
        formatVersion: 1, baseOffset: 40, recordCount: 1, firstTimestampMs: 1, maxTimestampMs: 1,
        recordsCrc32c: 7, records: Records(records: [Record(value: buffer("x"))]).protobufBytes())

    @Test func produceRoundTrip() throws {
        try expectRoundTrip(ProduceRequest(
            correlationId: .max, topic: "orders", partition: 3, acks: .durable, timeoutMs: 500, batch: Self.batch))
        try expectRoundTrip(ProduceRequest(topic: "no-batch"))
        try expectRoundTrip(ProduceResponse(
            correlationId: 9, topic: "orders", partition: 3, error: .outOfOrderSequence,
            errorMessage: "gap", baseOffset: -1, logAppendTimeMs: -1, logStartOffset: 0))
    }

    @Test func produceRequestBatchPresenceSurvives() throws {
        #expect(try ProduceRequest(protobuf: ProduceRequest(topic: "t").protobufBytes()).batch == nil)
        // An all-default batch is still present (an empty submessage, field 6 length 0).
        let empty = ProduceRequest(batch: RecordBatch())
        #expect(bytes(empty.protobufBytes()) == [0x32, 0x00])
        #expect(try ProduceRequest(protobuf: empty.protobufBytes()).batch == RecordBatch())
    }

    @Test func enumsMapEveryValueAndKeepUnknownNumbers() throws {
        let acks: [Acks] = [.unspecified, .none, .leader, .durable, .all]
        #expect(acks.map(\.rawValue) == [0, 1, 2, 3, 4])
        for (index, error) in [ErrorCode.none, .unknownTopic, .unknownPartition, .messageTooLarge,
                               .corruptBatch, .invalidBatch, .notLeader, .notEnoughReplicas,
                               .offsetOutOfRange, .outOfOrderSequence, .producerFenced,
                               .unknownProducerId, .storageError, .requestTimedOut, .throttled].enumerated() {
            #expect(error.rawValue == Int32(index))
            #expect(ErrorCode(rawValue: Int32(index)) == error)
        }
        let future = ProduceResponse(error: .unrecognized(99))
        #expect(try ProduceResponse(protobuf: try expectRoundTrip(future)).error == .unrecognized(99))
        let negative = ProduceRequest(acks: .unrecognized(-5))
        #expect(try ProduceRequest(protobuf: negative.protobufBytes()).acks == .unrecognized(-5))
        #expect(Compression(rawValue: 2) == .lz4)
    }

    @Test(arguments: [
        StartPosition.Position.earliest(true), .latest(true), .offset(0), .offset(12345),
        .timestampMs(1_700_000_000_000), .earliest(false),
    ])
    func startPositionOneofCasesSurviveEvenAtDefaultValues(_ position: StartPosition.Position) throws {
        let start = StartPosition(position: position)
        #expect(try StartPosition(protobuf: try expectRoundTrip(start)).position == position)
    }

    @Test func startPositionUnsetIsNil() throws {
        #expect(try StartPosition(protobuf: try expectRoundTrip(StartPosition())).position == nil)
        // A oneof keeps the last member seen: latest (10 01) then offset 5 (18 05).
        #expect(try StartPosition(protobuf: buffer([0x10, 0x01, 0x18, 0x05])).position == .offset(5))
    }

    @Test func subscribeRoundTrip() throws {
        try expectRoundTrip(SubscribeRequest(
            topic: "orders",
            partitions: [
                PartitionSubscription(partition: 0, start: StartPosition(position: .offset(10))),
                PartitionSubscription(partition: 1, start: nil),
            ],
            defaultStart: StartPosition(position: .earliest(true)),
            minBytes: 1, maxWaitMs: 100, maxBytes: 1 << 20))
        var second = Self.batch
        second.baseOffset = 41
        let response = SubscribeResponse(partition: 2, batches: [Self.batch, second], highWatermark: 42, logStartOffset: 0)
        let decoded = try SubscribeResponse(protobuf: try expectRoundTrip(response))
        #expect(decoded.batches.map(\.baseOffset) == [40, 41])
    }

    @Test func replicateRoundTrip() throws {
        try expectRoundTrip(ReplicateRequest(
            replicaId: 2,
            partitions: [ReplicaPosition(
                topic: "t", partition: 1, logEndOffset: 3, durableEndOffset: 2, lastFetchedEpoch: 4, currentLeaderEpoch: 5,
                suspect: true)],
            removed: [ReplicaPartitionName(topic: "u", partition: 0)], maxWaitMs: 500, maxBytes: 1 << 20))
        let response = ReplicateResponse(partitions: [
            ReplicaPartitionData(
                topic: "t", partition: 1, leaderEpoch: 5, highWatermark: 41, logStartOffset: 0,
                records: ByteBuffer(bytes: [1, 2, 3])),
            ReplicaPartitionData(
                topic: "t", partition: 2, error: .fencedLeaderEpoch, errorMessage: "stale",
                divergingEpoch: DivergingEpoch(epoch: 3, endOffset: 30)),
        ])
        let decoded = try ReplicateResponse(protobuf: try expectRoundTrip(response))
        #expect(decoded.partitions.map(\.error) == [.none, .fencedLeaderEpoch])
        #expect(decoded.partitions[1].divergingEpoch?.endOffset == 30)
    }

    @Test func topicAdminMessagesRoundTrip() throws {
        let description = TopicDescription(
            name: "orders", topicId: "5f0c", partitionCount: 2, replicationFactor: 3,
            configs: ["retention.ms": "604800000", "max.message.bytes": "1048576", "empty": ""],
            partitions: [
                PartitionDescription(partition: 0, leader: 1, replicas: [1, 2, 3], inSyncReplicas: [1, 3],
                                     logStartOffset: 0, logEndOffset: 10, highWatermark: 9, sizeBytes: 4096, leaderEpoch: 2),
                PartitionDescription(partition: 1),
            ])
        let decoded = try TopicDescription(protobuf: try expectRoundTrip(description))
        #expect(decoded.configs["retention.ms"] == "604800000")
        #expect(decoded.partitions[0].replicas == [1, 2, 3])

        try expectRoundTrip(CreateTopicRequest(name: "orders", partitions: 4, replicationFactor: 1,
                                               configs: ["segment.bytes": "1024"], validateOnly: true))
        try expectRoundTrip(CreateTopicResponse(topic: description))
        try expectRoundTrip(DeleteTopicRequest(name: "orders"))
        try expectRoundTrip(DeleteTopicResponse())
        try expectRoundTrip(ListTopicsRequest())
        try expectRoundTrip(ListTopicsResponse(topics: [description, TopicDescription(name: "b")]))
        try expectRoundTrip(DescribeTopicRequest(name: "orders"))
        try expectRoundTrip(DescribeTopicResponse(topic: description))
        try expectRoundTrip(AlterTopicConfigRequest(name: "orders", set: ["retention.ms": "1", "a": "b"],
                                                    reset: ["segment.ms", "", "retention.bytes"]))
        try expectRoundTrip(AlterTopicConfigResponse(topic: nil))
        try expectRoundTrip(CreatePartitionsRequest(name: "orders", totalCount: 8))
        try expectRoundTrip(CreatePartitionsResponse(topic: description))
    }

    @Test func mapEncodingIsInKeyOrder() {
        // Entries z, a: field 5 entries must come out as a then z whatever the hash order.
        let request = CreateTopicRequest(configs: ["z": "1", "a": "2"])
        // 22 06 | 0a 01 'a' 12 01 '2'   then   22 06 | 0a 01 'z' 12 01 '1'
        #expect(bytes(request.protobufBytes()) == [
            0x22, 0x06, 0x0A, 0x01, 0x61, 0x12, 0x01, 0x32,
            0x22, 0x06, 0x0A, 0x01, 0x7A, 0x12, 0x01, 0x31,
        ])
    }

    @Test func repeatedMapKeyKeepsTheLastValue() throws {
        let twice: [UInt8] = [
            0x22, 0x06, 0x0A, 0x01, 0x61, 0x12, 0x01, 0x31,
            0x22, 0x06, 0x0A, 0x01, 0x61, 0x12, 0x01, 0x32,
        ]
        #expect(try CreateTopicRequest(protobuf: buffer(twice)).configs == ["a": "2"])
    }

    @Test func stringsKeepNonASCIIText() throws {
        let request = DescribeTopicRequest(name: "zürich-📦")
        #expect(try DescribeTopicRequest(protobuf: request.protobufBytes()).name == "zürich-📦")
    }
}
