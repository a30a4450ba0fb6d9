import NIOCore
import SluiceAPI
import SluiceClient
import SluiceService
import SluiceTestSupport
import SluiceWire
import Testing

@Suite(.timeLimit(.minutes(1))) struct HealthServiceTests {
    @Test func checkAnswersEachServedService() async throws {
        let broker = try await InProcessBroker.start()
        for service in ["", "sluice.v1.Broker", "sluice.test.v1.Echo", "grpc.health.v1.Health",
                        "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"] {
            let response: HealthCheckResponse = try await broker.unary("/grpc.health.v1.Health/Check", HealthCheckRequest(service: service))
            #expect(response.status == .serving, "\(service)")
        }
        await expectStatus(.notFound, containing: "no.such.Service") {
            let _: HealthCheckResponse = try await broker.unary("/grpc.health.v1.Health/Check", HealthCheckRequest(service: "no.such.Service"))
        }
        await broker.stopAndRemove()
    }

    @Test func echoIsUnknownWithoutTestServices() async throws {
        let broker = try await InProcessBroker.start(testServices: false)
        await expectStatus(.notFound) {
            let _: HealthCheckResponse = try await broker.unary("/grpc.health.v1.Health/Check", HealthCheckRequest(service: "sluice.test.v1.Echo"))
        }
        await broker.stopAndRemove()
    }

    /// A Health Watch of `service`, its request sent.
    func watchHealth(
        of service: String, on broker: InProcessBroker
    ) async throws -> ProtobufCall<HealthCheckRequest, HealthCheckResponse> {
        let watch = try await ProtobufCall<HealthCheckRequest, HealthCheckResponse>(broker.connection, path: "/grpc.health.v1.Health/Watch")
        try await watch.send(HealthCheckRequest(service: service))
        try await watch.finishSending()
        return watch
    }

    @Test func watchStreamsChangesAndEndsAtShutdown() async throws {
        let broker = try await InProcessBroker.start()
        let watch = try await watchHealth(of: "sluice.v1.Broker", on: broker)
        var responses = watch.responses.makeAsyncIterator()
        #expect(try await responses.next()?.status == .serving)

        broker.server.health.setStatus(.notServing, forService: "sluice.v1.Broker")
        #expect(try await responses.next()?.status == .notServing)
        broker.server.health.setStatus(.serving, forService: "sluice.v1.Broker")
        #expect(try await responses.next()?.status == .serving)

        async let shutdown: Void = broker.server.shutdown()
        #expect(try await responses.next()?.status == .notServing)
        await expectStatus(.unavailable, containing: "shutting down") { try await responses.next() }
        await shutdown
        await broker.connection.close()
        broker.directory.remove()
    }

    @Test func watchOfAnUnknownServiceSaysServiceUnknown() async throws {
        let broker = try await InProcessBroker.start()
        let watch = try await watchHealth(of: "no.such.Service", on: broker)
        var responses = watch.responses.makeAsyncIterator()
        #expect(try await responses.next()?.status == .serviceUnknown)
        watch.cancel()
        await broker.stopAndRemove()
    }
}

@Suite(.timeLimit(.minutes(1))) struct ReflectionServiceTests {
    typealias Reflection = ProtobufCall<ServerReflectionRequest, ServerReflectionResponse>

    /// Asks each question on one stream, in order, and returns the answers.
    func ask(_ broker: InProcessBroker, _ questions: [ServerReflectionRequest.MessageRequest],
             service: String = "grpc.reflection.v1.ServerReflection") async throws -> [ServerReflectionResponse.MessageResponse?] {
        let call = try await Reflection(broker.connection, path: "/\(service)/ServerReflectionInfo")
        var responses = call.responses.makeAsyncIterator()
        var answers: [ServerReflectionResponse.MessageResponse?] = []
        for question in questions {
            let request = ServerReflectionRequest(host: "localhost", messageRequest: question)
            try await call.send(request)
            let answer = try #require(try await responses.next())
            #expect(answer.originalRequest == request)
            #expect(answer.validHost == "localhost")
            answers.append(answer.messageResponse)
        }
        try await call.finishSending()
        #expect(try await responses.next() == nil)
        return answers
    }

    func fileNames(_ answer: ServerReflectionResponse.MessageResponse?) -> [[UInt8]] {
        guard case .fileDescriptorResponse(let files)? = answer else { return [] }
        return files.fileDescriptorProto.map { Array($0.readableBytesView) }
    }

    @Test(arguments: ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"])
    func answersQuestions(service: String) async throws {
        let broker = try await InProcessBroker.start()
        let answers = try await ask(broker, [
            .listServices(""),
            .fileByFilename("sluice/v1/broker.proto"),
            .fileContainingSymbol("sluice.test.v1.Echo"),
            .fileContainingSymbol("sluice.v1.RecordBatch"),
            .fileByFilename("no/such.proto"),
            .fileContainingSymbol("no.such.Symbol"),
        ], service: service)

        guard case .listServicesResponse(let list)? = answers[0] else {
            Issue.record("not a service list: \(String(describing: answers[0]))")
            return
        }
        #expect(Set(list.service.map(\.name)) == Set(broker.server.serviceNames))
        #expect(list.service.map(\.name).contains("sluice.test.v1.Echo"))

        // A file comes with its imports, so a client can build a complete pool.
        let brokerFiles = ["sluice/v1/broker.proto", "sluice/v1/records.proto"].compactMap { ServiceDescriptors.fileDescriptor(named: $0) }
        #expect(fileNames(answers[1]) == brokerFiles)
        #expect(fileNames(answers[2]) == [ServiceDescriptors.fileDescriptor(named: "sluice/test/v1/echo.proto")].compactMap { $0 })
        #expect(fileNames(answers[3]) == [ServiceDescriptors.fileDescriptor(named: "sluice/v1/records.proto")].compactMap { $0 })

        for answer in answers[4...] {
            guard case .errorResponse(let error)? = answer else {
                Issue.record("not an error: \(String(describing: answer))")
                continue
            }
            #expect(error.errorCode == Int32(GRPCStatus.Code.notFound.rawValue))
            #expect(error.errorMessage.contains("no"))
        }
        await broker.stopAndRemove()
    }

    @Test func listsOnlyServedServices() async throws {
        let broker = try await InProcessBroker.start(testServices: false)
        let answers = try await ask(broker, [.listServices("*")])
        guard case .listServicesResponse(let list)? = answers[0] else {
            Issue.record("not a service list")
            return
        }
        #expect(list.service.map(\.name) == ["sluice.v1.Broker", "sluice.v1.Groups", "grpc.health.v1.Health",
                                              "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"])
        await broker.stopAndRemove()
    }

    @Test func emptyQuestionIsAnsweredInStream() async throws {
        let broker = try await InProcessBroker.start()
        let call = try await Reflection(broker.connection, path: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        var responses = call.responses.makeAsyncIterator()
        try await call.send(ServerReflectionRequest())
        guard case .errorResponse(let error)? = try await responses.next()?.messageResponse else {
            Issue.record("expected an error response")
            return
        }
        #expect(error.errorCode == Int32(GRPCStatus.Code.invalidArgument.rawValue))
        // The stream goes on after an in-stream error.
        try await call.send(ServerReflectionRequest(messageRequest: .listServices("")))
        guard case .listServicesResponse? = try await responses.next()?.messageResponse else {
            Issue.record("expected a service list")
            return
        }
        try await call.finishSending()
        #expect(try await responses.next() == nil)
        await broker.stopAndRemove()
    }
}
