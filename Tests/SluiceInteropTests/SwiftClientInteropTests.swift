import NIOCore
import SluiceAPI
import SluiceClient
import SluiceTestSupport
import SluiceWire
import Testing

/// Sluice's own Swift client against a real `sluice serve` process: the third gRPC stack
/// of the interop suite (grpcio and grpclib are the others, in tests/interop). Each test
/// gets a process of its own, so the server's Echo counters are the test's alone.
@Suite("Swift client against sluice serve", .timeLimit(.minutes(1)))
struct SwiftClientInteropTests {
    static let echo = "/sluice.test.v1.Echo/"

    func withServer(_ body: (GRPCClientConnection) async throws -> Void) async throws {
        try await withStarted(
            ServedBroker.withTestServices, open: { try await $0.connect() }, close: { await $0.close() },
            stop: { server in
                let status = await server.stop()
                #expect(status == 0, "sluice serve exits 0 within 20 s of SIGTERM (nil: it had to be killed)")
            }) { _, connection in try await body(connection) }
    }

    func stats(_ connection: GRPCClientConnection) async throws -> StatsResponse {
        let bytes = try await connection.unary(
            path: Self.echo + "Stats", request: StatsRequest().protobufBytes(), timeout: .seconds(5))
        return try StatsResponse(protobuf: bytes)
    }

    @Test("unary, server streaming, client streaming and bidirectional Echo")
    func allFourKinds() async throws {
        try await withServer { connection in
            let unary = try await connection.unary(
                path: Self.echo + "Get", request: EchoRequest(text: "hello").protobufBytes(), timeout: .seconds(10))
            #expect(try EchoResponse(protobuf: unary).text == "hello")

            let expand = try await ProtobufCall<EchoRequest, EchoResponse>(
                connection, path: Self.echo + "Expand", timeout: .seconds(10))
            try await expand.send(EchoRequest(text: "one two three"))
            try await expand.finishSending()
            var words: [String] = []
            for try await response in expand.responses { words.append(response.text) }
            #expect(words == ["one", "two", "three"])

            let collect = try await ProtobufCall<EchoRequest, EchoResponse>(
                connection, path: Self.echo + "Collect", timeout: .seconds(10))
            for text in ["a", "b", "c"] { try await collect.send(EchoRequest(text: text)) }
            try await collect.finishSending()
            var joined: [String] = []
            for try await response in collect.responses { joined.append(response.text) }
            #expect(joined == ["a b c"])

            // Ping-pong: each answer is read before the next request is sent.
            let update = try await ProtobufCall<EchoRequest, EchoResponse>(
                connection, path: Self.echo + "Update", timeout: .seconds(10))
            var answers = update.responses.makeAsyncIterator()
            for index in 0..<5 {
                try await update.send(EchoRequest(text: "message \(index)"))
                #expect(try await answers.next()?.text == "message \(index)")
            }
            try await update.finishSending()
            #expect(try await answers.next() == nil)
        }
    }

    @Test("a grpc-timeout ends the call with DEADLINE_EXCEEDED and ends the server's handler")
    func deadline() async throws {
        try await withServer { connection in
            let before = try await stats(connection)
            await #expect {
                _ = try await connection.unary(
                    path: Self.echo + "Get", request: EchoRequest(text: "slow", delayMs: 120_000).protobufBytes(),
                    timeout: .milliseconds(300))
            } throws: { error in
                (error as? GRPCStatus)?.code == .deadlineExceeded
            }
            try await eventually("the handler to end by its deadline") {
                let now = try await stats(connection)
                return now.handlersDeadlineExceeded + now.handlersCancelled
                    > before.handlersDeadlineExceeded + before.handlersCancelled && now.handlersActive == 0
            }
        }
    }

    @Test("cancelling a server stream cancels the server's handler")
    func cancellation() async throws {
        try await withServer { connection in
            let expand = try await ProtobufCall<EchoRequest, EchoResponse>(
                connection, path: Self.echo + "Expand", timeout: .seconds(60))
            try await expand.send(EchoRequest(text: "tick", delayMs: 20, repeat: 10_000))
            try await expand.finishSending()
            var responses = expand.responses.makeAsyncIterator()
            #expect(try await responses.next()?.text == "tick")
            expand.cancel()
            try await eventually("handlers_cancelled to grow") {
                let now = try await stats(connection)
                return now.handlersCancelled == 1 && now.handlersActive == 0
            }
        }
    }

    @Test("health Check and Watch")
    func health() async throws {
        try await withServer { connection in
            let check = try await connection.unary(
                path: "/grpc.health.v1.Health/Check", request: HealthCheckRequest(service: "sluice.v1.Broker").protobufBytes(),
                timeout: .seconds(5))
            #expect(try HealthCheckResponse(protobuf: check).status == .serving)

            await #expect {
                _ = try await connection.unary(
                    path: "/grpc.health.v1.Health/Check", request: HealthCheckRequest(service: "no.such.Service").protobufBytes(),
                    timeout: .seconds(5))
            } throws: { error in
                (error as? GRPCStatus)?.code == .notFound
            }

            let watch = try await ProtobufCall<HealthCheckRequest, HealthCheckResponse>(
                connection, path: "/grpc.health.v1.Health/Watch", timeout: .seconds(10))
            try await watch.send(HealthCheckRequest(service: ""))
            try await watch.finishSending()
            var updates = watch.responses.makeAsyncIterator()
            #expect(try await updates.next()?.status == .serving)
            watch.cancel()
        }
    }

    @Test("reflection lists the services and serves the broker's file", arguments: ["v1", "v1alpha"])
    func reflection(version: String) async throws {
        try await withServer { connection in
            let call = try await ProtobufCall<ServerReflectionRequest, ServerReflectionResponse>(
                connection, path: "/grpc.reflection.\(version).ServerReflection/ServerReflectionInfo", timeout: .seconds(10))
            var answers = call.responses.makeAsyncIterator()

            try await call.send(ServerReflectionRequest(messageRequest: .listServices("")))
            guard case .listServicesResponse(let list)? = try await answers.next()?.messageResponse else {
                Issue.record("no list_services_response")
                return
            }
            let names = Set(list.service.map(\.name))
            #expect(names.isSuperset(of: ["sluice.v1.Broker", "sluice.test.v1.Echo", "grpc.health.v1.Health"]))

            try await call.send(ServerReflectionRequest(messageRequest: .fileContainingSymbol("sluice.v1.Broker")))
            guard case .fileDescriptorResponse(let files)? = try await answers.next()?.messageResponse else {
                Issue.record("no file_descriptor_response")
                return
            }
            // FileDescriptorProto field 1 is the file name: the broker's file is among them.
            let contents = files.fileDescriptorProto.map { String(decoding: $0.readableBytesView, as: UTF8.self) }
            #expect(contents.contains { $0.contains("sluice/v1/broker.proto") && $0.contains("CreateTopic") })

            try await call.send(ServerReflectionRequest(messageRequest: .fileContainingSymbol("no.such.Symbol")))
            guard case .errorResponse(let error)? = try await answers.next()?.messageResponse else {
                Issue.record("no error_response for an unknown symbol")
                return
            }
            #expect(error.errorCode == GRPCStatus.Code.notFound.rawValue)
            try await call.finishSending()
            #expect(try await answers.next() == nil)
        }
    }
}
