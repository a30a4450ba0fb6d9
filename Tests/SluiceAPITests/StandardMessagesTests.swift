import NIOCore
import SluiceAPI
import Testing

@Suite(.timeLimit(.minutes(2))) struct StandardMessagesTests {
    @Test func echoMessagesRoundTrip() throws {
        try expectRoundTrip(EchoRequest(text: "a b c", delayMs: 10, statusCode: 5, statusMessage: "nope",
                                        repeat: 3, payloadBytes: 1024))
        try expectRoundTrip(EchoResponse(text: "a", payload: buffer(Array(repeating: 1, count: 70_000))))
        try expectRoundTrip(StatsRequest())
        try expectRoundTrip(StatsResponse(handlersStarted: 4, handlersCancelled: 1, handlersDeadlineExceeded: 2,
                                          handlersActive: .max))
    }

    @Test func healthMessagesRoundTrip() throws {
        try expectRoundTrip(HealthCheckRequest(service: "sluice.v1.Broker"))
        for status in [HealthCheckResponse.ServingStatus.unknown, .serving, .notServing, .serviceUnknown] {
            let decoded = try HealthCheckResponse(protobuf: try expectRoundTrip(HealthCheckResponse(status: status)))
            #expect(decoded.status == status)
        }
        // SERVING: field 1 varint 1.
        #expect(bytes(HealthCheckResponse(status: .serving).protobufBytes()) == [0x08, 0x01])
        #expect(HealthCheckResponse.ServingStatus.serviceUnknown.rawValue == 3)
    }

    @Test(arguments: [
        ServerReflectionRequest.MessageRequest.fileByFilename("sluice/v1/broker.proto"),
        .fileContainingSymbol("sluice.v1.Broker"),
        .fileContainingExtension(.init(containingType: "sluice.v1.Record", extensionNumber: 100)),
        .allExtensionNumbersOfType("sluice.v1.Record"),
        .listServices(""),
        .listServices("*"),
    ])
    func reflectionRequestCases(_ request: ServerReflectionRequest.MessageRequest) throws {
        let message = ServerReflectionRequest(host: "localhost", messageRequest: request)
        #expect(try ServerReflectionRequest(protobuf: try expectRoundTrip(message)).messageRequest == request)
    }

    @Test func reflectionListServicesEmptyIsStillSent() {
        // grpcio's client sends list_services = "": field 7, length 0 must be on the wire.
        let message = ServerReflectionRequest(messageRequest: .listServices(""))
        #expect(bytes(message.protobufBytes()) == [0x3A, 0x00])
    }

    @Test func reflectionResponseCases() throws {
        let original = ServerReflectionRequest(host: "h", messageRequest: .listServices(""))
        let responses: [ServerReflectionResponse.MessageResponse] = [
            .fileDescriptorResponse(.init(fileDescriptorProto: [buffer([1, 2, 3]), ByteBuffer(), buffer("x")])),
            .allExtensionNumbersResponse(.init(baseTypeName: "sluice.v1.Record", extensionNumber: [1, -2, 300])),
            .listServicesResponse(.init(service: [.init(name: "sluice.v1.Broker"), .init(name: "grpc.health.v1.Health")])),
            .errorResponse(.init(errorCode: 5, errorMessage: "not found")),
        ]
        for response in responses {
            let message = ServerReflectionResponse(validHost: "h", originalRequest: original, messageResponse: response)
            let decoded = try ServerReflectionResponse(protobuf: try expectRoundTrip(message))
            #expect(decoded.messageResponse == response)
            #expect(decoded.originalRequest == original)
        }
        try expectRoundTrip(ServerReflectionResponse())
    }

    @Test func etcdMessagesRoundTrip() throws {
        let header = EtcdResponseHeader(clusterId: .max, memberId: 2, revision: 77, raftTerm: 3)
        let keyValue = EtcdKeyValue(key: buffer("/sluice/brokers/1"), createRevision: 5, modRevision: 7,
                                    version: 2, value: buffer("{}"), lease: 0x1234)
        try expectRoundTrip(header)
        try expectRoundTrip(keyValue)
        try expectRoundTrip(EtcdRangeRequest(
            key: buffer("/sluice/"), rangeEnd: buffer("/sluice0"), limit: 10, revision: 3,
            sortOrder: .descend, sortTarget: .mod, serializable: true, keysOnly: true, countOnly: false,
            minModRevision: 1, maxModRevision: 2, minCreateRevision: 3, maxCreateRevision: 4))
        try expectRoundTrip(EtcdRangeResponse(header: header, kvs: [keyValue, EtcdKeyValue(key: buffer("k"))],
                                              more: true, count: 2))
        try expectRoundTrip(EtcdPutRequest(key: buffer("k"), value: buffer("v"), lease: 1, prevKv: true,
                                           ignoreValue: true, ignoreLease: true))
        try expectRoundTrip(EtcdPutResponse(header: header, prevKv: keyValue))
    }

    @Test func etcdFieldNumbersMatchUpstream() {
        // PutRequest { key = 1 "k", value = 2 "v", lease = 3 5, prev_kv = 4 true }
        let put = EtcdPutRequest(key: buffer("k"), value: buffer("v"), lease: 5, prevKv: true)
        #expect(bytes(put.protobufBytes()) == [0x0A, 0x01, 0x6B, 0x12, 0x01, 0x76, 0x18, 0x05, 0x20, 0x01])
        // RangeRequest { sort_order = 5 DESCEND(2), count_only = 9 true }
        let range = EtcdRangeRequest(sortOrder: .descend, countOnly: true)
        #expect(bytes(range.protobufBytes()) == [0x28, 0x02, 0x48, 0x01])
        // KeyValue { value = 5 "a", lease = 6 1 }
        #expect(bytes(EtcdKeyValue(value: buffer("a"), lease: 1).protobufBytes()) == [0x2A, 0x01, 0x61, 0x30, 0x01])
    }
}
