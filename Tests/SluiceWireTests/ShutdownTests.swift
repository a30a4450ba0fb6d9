import NIOCore
import Testing
@testable import SluiceWire

@Suite(.timeLimit(.minutes(2))) struct ShutdownTests {
    @Test func gracefulShutdownLetsUnaryFinishAndEndsStreamsWithUnavailable() async throws {
        let unaryStarted = Signal()
        let releaseUnary = Signal()
        let streamStarted = Signal()
        let streamCancelled = Signal()
        let methods: [GRPCMethod] = [
            .unary("/test.Shutdown/Slow") { _, _ in
                await unaryStarted.fire()
                await releaseUnary.wait()
                return buffer("finished")
            },
            .bidirectional("/test.Shutdown/Stream") { requests, writer, _ in
                await streamStarted.fire()
                do {
                    for try await message in requests { try await writer.write(message) }
                } catch {
                    if Task.isCancelled { await streamCancelled.fire() }
                    throw error
                }
            },
        ]
        var configuration = GRPCServerConfiguration(host: "127.0.0.1", port: 0)
        configuration.shutdownGracePeriod = .milliseconds(200)
        let server = GRPCServer(configuration: configuration, methods: methods, logger: testLogger("server"))
        let (host, port) = try await server.start()
        let client = try await GRPCClientConnection.connect(
            GRPCClientConfiguration(host: host, port: port), logger: testLogger("client"))

        let unary = Task { try await client.unary(path: "/test.Shutdown/Slow", request: buffer("")) }
        let stream = try await client.makeCall(path: "/test.Shutdown/Stream")
        try await stream.send(buffer("ping"))
        var responses = stream.responses.makeAsyncIterator()
        #expect(try await responses.next().map(string) == "ping")
        await unaryStarted.wait()
        await streamStarted.wait()

        let shutdown = Task { await server.shutdown() }
        // The streaming call is cut after the grace period...
        let error = await #expect(throws: GRPCStatus.self) {
            while try await responses.next() != nil {}
        }
        #expect(error?.code == .unavailable)
        await streamCancelled.wait()
        // ...while the unary call is let to finish.
        await releaseUnary.fire()
        #expect(string(try await unary.value) == "finished")
        await shutdown.value
        // The server closed the connection once its calls were done.
        await client.closed()
        let after = await #expect(throws: GRPCStatus.self) {
            _ = try await client.unary(path: "/test.Shutdown/Slow", request: buffer(""))
        }
        #expect(after?.code == .unavailable)
        await #expect(throws: (any Error).self) {
            _ = try await GRPCClientConnection.connect(
                GRPCClientConfiguration(host: host, port: port), logger: testLogger("client"))
        }
    }

    @Test func shutdownWithIdleConnectionsReturns() async throws {
        let server = GRPCServer(
            configuration: GRPCServerConfiguration(), methods: [], logger: testLogger("server"))
        let (host, port) = try await server.start()
        let client = try await GRPCClientConnection.connect(
            GRPCClientConfiguration(host: host, port: port), logger: testLogger("client"))
        await server.shutdown()
        await client.closed()
    }
}
