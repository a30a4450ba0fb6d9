import NIOCore
import Testing

@testable import SluiceAPI

/// Every string field of every request message (and of the record headers a consumer
/// decodes) is refused when it holds a NUL byte or bytes that are not UTF-8, naming the
/// field, instead of being cut at the NUL (protobuf-c's C strings) or repaired to U+FFFD.
@Suite(.timeLimit(.minutes(2))) struct StringFieldTests {
    /// One string field of one message: how to build the message around a value.
    struct Field: Sendable, CustomTestStringConvertible {
        var messageName: String
        /// The path `RefusedString.field` must name.
        var path: String
        var encode: @Sendable (String) -> ByteBuffer
        /// Decodes `bytes` and says whether the result equals the message built around `value`.
        var decodesAs: @Sendable (ByteBuffer, String) throws(ProtobufDecodingError) -> Bool

        init<Message: ProtobufMessage>(
            _ messageName: String, _ path: String, _ make: @escaping @Sendable (String) -> Message
        ) {
            self.messageName = messageName
            self.path = path
            encode = { make($0).protobufBytes() }
            decodesAs = { bytes, value throws(ProtobufDecodingError) in try Message(protobuf: bytes) == make(value) }
        }

        var testDescription: String { "\(messageName).\(path)" }
    }

    static let batch = RecordBatch(formatVersion: 1, recordCount: 1, recordsCrc32c: 7, records: ByteBuffer(bytes: [1, 2]))

    static let fields: [Field] = [
        // sluice.v1.Broker
        Field("sluice.v1.ProduceRequest", "topic") { ProduceRequest(correlationId: 3, topic: $0, acks: .all, batch: batch) },
        Field("sluice.v1.SubscribeRequest", "topic") {
            SubscribeRequest(topic: $0, partitions: [PartitionSubscription(partition: 1)], maxBytes: 9)
        },
        Field("sluice.v1.SubscribeRequest", "group_reader.group") {
            SubscribeRequest(topic: "t", groupReader: GroupReader(group: $0, memberId: "m", generation: 2))
        },
        Field("sluice.v1.SubscribeRequest", "group_reader.member_id") {
            SubscribeRequest(topic: "t", groupReader: GroupReader(group: "g", memberId: $0, generation: 2))
        },
        Field("sluice.v1.InitProducerIdRequest", "producer_name") { InitProducerIdRequest(producerName: $0) },
        Field("sluice.v1.ReplicateRequest", "partitions.topic") {
            ReplicateRequest(replicaId: 2, partitions: [ReplicaPosition(topic: $0, partition: 2, logEndOffset: 5)])
        },
        Field("sluice.v1.CreateTopicRequest", "name") { CreateTopicRequest(name: $0, partitions: 2, configs: ["a": "b"]) },
        Field("sluice.v1.CreateTopicRequest", "configs.key") {
            CreateTopicRequest(name: "t", partitions: 2, configs: [$0: "1000", "a": "b"])
        },
        Field("sluice.v1.CreateTopicRequest", "configs.value") {
            CreateTopicRequest(name: "t", partitions: 2, configs: ["retention.ms": $0, "a": "b"])
        },
        Field("sluice.v1.DeleteTopicRequest", "name") { DeleteTopicRequest(name: $0) },
        Field("sluice.v1.DescribeTopicRequest", "name") { DescribeTopicRequest(name: $0) },
        Field("sluice.v1.AlterTopicConfigRequest", "name") { AlterTopicConfigRequest(name: $0, set: ["a": "b"], reset: ["c"]) },
        Field("sluice.v1.AlterTopicConfigRequest", "set.key") { AlterTopicConfigRequest(name: "t", set: [$0: "b"]) },
        Field("sluice.v1.AlterTopicConfigRequest", "set.value") { AlterTopicConfigRequest(name: "t", set: ["a": $0]) },
        Field("sluice.v1.AlterTopicConfigRequest", "reset") { AlterTopicConfigRequest(name: "t", reset: ["c", $0]) },
        Field("sluice.v1.CreatePartitionsRequest", "name") { CreatePartitionsRequest(name: $0, totalCount: 4) },
        // sluice.v1.Groups
        Field("sluice.v1.MemberMessage", "join.group") {
            MemberMessage(kind: .join(JoinGroup(group: $0, topics: ["t"], instanceId: "i", clientId: "c")))
        },
        Field("sluice.v1.MemberMessage", "join.topics") {
            MemberMessage(kind: .join(JoinGroup(group: "g", topics: ["t", $0], instanceId: "i", clientId: "c")))
        },
        Field("sluice.v1.MemberMessage", "join.instance_id") {
            MemberMessage(kind: .join(JoinGroup(group: "g", topics: ["t"], instanceId: $0, clientId: "c")))
        },
        Field("sluice.v1.MemberMessage", "join.client_id") {
            MemberMessage(kind: .join(JoinGroup(group: "g", topics: ["t"], instanceId: "i", clientId: $0)))
        },
        Field("sluice.v1.MemberMessage", "revoke_ack.partitions.topic") {
            MemberMessage(kind: .revokeAck(RevokeAck(generation: 3, partitions: [
                TopicPartitions(topic: "t", partitions: [0]), TopicPartitions(topic: $0, partitions: [1, 2]),
            ])))
        },
        Field("sluice.v1.CommitOffsetsRequest", "group") {
            CommitOffsetsRequest(group: $0, memberId: "m", generation: 1, offsets: [OffsetCommit(topic: "t", offset: 4)])
        },
        Field("sluice.v1.CommitOffsetsRequest", "member_id") {
            CommitOffsetsRequest(group: "g", memberId: $0, generation: 1, offsets: [OffsetCommit(topic: "t", offset: 4)])
        },
        Field("sluice.v1.CommitOffsetsRequest", "offsets.topic") {
            CommitOffsetsRequest(group: "g", memberId: "m", generation: 1, offsets: [OffsetCommit(topic: $0, offset: 4)])
        },
        Field("sluice.v1.CommitOffsetsRequest", "offsets.metadata") {
            CommitOffsetsRequest(group: "g", memberId: "m", offsets: [OffsetCommit(topic: "t", offset: 4, metadata: $0)])
        },
        Field("sluice.v1.FetchOffsetsRequest", "group") { FetchOffsetsRequest(group: $0) },
        Field("sluice.v1.FetchOffsetsRequest", "partitions.topic") {
            FetchOffsetsRequest(group: "g", partitions: [TopicPartitions(topic: $0, partitions: [0])])
        },
        Field("sluice.v1.DescribeGroupRequest", "group") { DescribeGroupRequest(group: $0) },
        Field("sluice.v1.ResetOffsetsRequest", "group") { ResetOffsetsRequest(group: $0, topic: "t", target: .shiftBy(-2)) },
        Field("sluice.v1.ResetOffsetsRequest", "topic") { ResetOffsetsRequest(group: "g", topic: $0, target: .earliest(true)) },
        Field("sluice.v1.DeleteGroupRequest", "group") { DeleteGroupRequest(group: $0) },
        // The standard services and the test service share the decoding.
        Field("grpc.health.v1.HealthCheckRequest", "service") { HealthCheckRequest(service: $0) },
        Field("grpc.reflection.v1.ServerReflectionRequest", "host") {
            ServerReflectionRequest(host: $0, messageRequest: .listServices(""))
        },
        Field("grpc.reflection.v1.ServerReflectionRequest", "file_containing_symbol") {
            ServerReflectionRequest(messageRequest: .fileContainingSymbol($0))
        },
        Field("grpc.reflection.v1.ServerReflectionRequest", "file_containing_extension.containing_type") {
            ServerReflectionRequest(messageRequest: .fileContainingExtension(.init(containingType: $0, extensionNumber: 3)))
        },
        Field("sluice.test.v1.EchoRequest", "status_message") { EchoRequest(text: "x", statusCode: 3, statusMessage: $0) },
        // Record headers, which a consumer decodes (by slicing, like ProduceRequest).
        Field("sluice.v1.Records", "records.headers.key") {
            Records(records: [Record(value: ByteBuffer(bytes: [9]), headers: [RecordHeader(key: $0, value: ByteBuffer(bytes: [1]))])])
        },
    ]

    /// Wire bytes that must be refused, and why. The NUL ones would have been cut to
    /// `orders` / `ord` / `` by protobuf-c, the others repaired to U+FFFD.
    static let refused: [(bytes: [UInt8], reason: RefusedString.Reason)] = [
        ([0x00] + Array("orders".utf8), .containsNUL),
        (Array("ord".utf8) + [0x00] + Array("ers".utf8), .containsNUL),
        (Array("orders".utf8) + [0x00], .containsNUL),
        (Array("orders".utf8) + [0x00] + [0xFF], .containsNUL),
        (Array("ord".utf8) + [0xC3, 0x28] + Array("ers".utf8), .notUTF8),  // a lead byte without its continuation
        (Array("ord".utf8) + [0xFF] + Array("ers".utf8), .notUTF8),  // a lone 0xFF
        ([0xFF], .notUTF8),
        (Array("ord".utf8) + [0xC0, 0x80] + Array("ers".utf8), .notUTF8),  // overlong NUL
        (Array("ord".utf8) + [0xED, 0xA0, 0x80], .notUTF8),  // a UTF-16 surrogate
        (Array("ord".utf8) + [0xF4, 0x90, 0x80, 0x80], .notUTF8),  // past U+10FFFF
        (Array("orders".utf8) + [0xE6, 0x97], .notUTF8),  // 日 cut short
    ]

    /// `field`'s message with `value` in the field, encoded: a placeholder of as many bytes
    /// is encoded, then replaced, so every length prefix stays right. `~` (0x7E) is not a
    /// valid key and no length or value here is 126, so it occurs only in the placeholder.
    static func encode(_ field: Field, rawValue value: [UInt8]) throws -> ByteBuffer {
        let placeholder = [UInt8](repeating: 0x7E, count: value.count)
        var encoded = Array(field.encode(String(decoding: placeholder, as: UTF8.self)).readableBytesView)
        let starts = (0...(encoded.count - placeholder.count)).filter { encoded[$0..<$0 + placeholder.count].elementsEqual(placeholder) }
        try #require(starts.count == 1, "placeholder found \(starts.count) times in \(field)")
        encoded.replaceSubrange(starts[0]..<starts[0] + placeholder.count, with: value)
        return ByteBuffer(bytes: encoded)
    }

    @Test(arguments: fields)
    func aStringThatWouldBeCutOrRepairedIsRefusedNamingTheField(_ field: Field) throws {
        for (value, reason) in Self.refused {
            let bytes = try Self.encode(field, rawValue: value)
            do {
                let equal = try field.decodesAs(bytes, "")
                Issue.record("\(field) with \(value) decoded (equal to an empty one: \(equal))")
            } catch {
                #expect(error.messageName == field.messageName, "\(value)")
                #expect(error.refusedString == RefusedString(field: field.path, reason: reason), "\(value)")
                #expect(error.description == "string field \(field.path) of \(field.messageName) \(reason)")
            }
        }
    }

    @Test(arguments: fields)
    func validStringsDecodeExactly(_ field: Field) throws {
        for value in ["orders", "ordérs-日本-🙂", "", "~", String(repeating: "é", count: 300)] {
            #expect(try field.decodesAs(field.encode(value), value), "\(field) with \(value)")
        }
        // The same bytes spliced in as the refused ones are, so the splice itself is sound.
        let multiByte = Array("ordérs-日本-🙂".utf8)
        #expect(try field.decodesAs(Self.encode(field, rawValue: multiByte), "ordérs-日本-🙂"))
    }

    /// The hot ProduceRequest path slices strings itself; it must decline a refused topic so
    /// that the general path reports it, and still slice a valid multi-byte one.
    @Test func theSlicingDecoderDeclinesRefusedStrings() throws {
        let field = Self.fields[0]
        for (value, _) in Self.refused {
            #expect(ProduceRequest.decodeSlicing(try Self.encode(field, rawValue: value)) == nil, "\(value)")
        }
        let valid = ProduceRequest(topic: "ordérs-日本-🙂", batch: Self.batch)
        #expect(ProduceRequest.decodeSlicing(valid.protobufBytes()) == valid)
    }

    /// Responses travel through the same decoding on the client; valid ones are unchanged.
    @Test func responsesWithValidStringsStillDecode() throws {
        try expectRoundTrip(DescribeTopicResponse(topic: TopicDescription(
            name: "ordérs-日本", topicId: "id", partitionCount: 1, configs: ["retention.ms": "1000"])))
        try expectRoundTrip(CommitOffsetsResponse(results: [OffsetCommitResult(topic: "日本", errorMessage: "é")]))
        try expectRoundTrip(CoordinatorMessage(kind: .joined(Joined(memberId: "py-🙂"))))
    }

    /// Unknown length-delimited fields and packed repeated scalars are stepped over, not
    /// taken for strings: bytes a string may not hold are fine there.
    @Test func onlyStringFieldsAreChecked() throws {
        // DeleteTopicRequest: name "t", then unknown field 9 (wire type 2) holding 00 FF.
        #expect(try DeleteTopicRequest(protobuf: buffer([0x0A, 0x01, 0x74, 0x4A, 0x02, 0x00, 0xFF])).name == "t")
        // ResetOffsetsRequest.partitions (field 3, packed): 0 and 255 as varints 00 FF 01.
        let reset = try ResetOffsetsRequest(protobuf: buffer([0x0A, 0x01, 0x67, 0x1A, 0x03, 0x00, 0xFF, 0x01]))
        #expect(reset.partitions == [0, 255])
        // ProduceRequest.batch.records (bytes) holding NUL and 0xFF.
        let produce = ProduceRequest(topic: "t", batch: RecordBatch(records: ByteBuffer(bytes: [0x00, 0xFF])))
        try expectRoundTrip(produce)
    }
}
