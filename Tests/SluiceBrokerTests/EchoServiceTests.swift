import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceService
import SluiceTestSupport
@testable import SluiceWire
import Testing

@Suite(.timeLimit(.minutes(1))) struct EchoServiceTests {
    typealias Echo = ProtobufCall<EchoRequest, EchoResponse>

    func stats(_ broker: InProcessBroker) async throws -> StatsResponse {
        try await broker.unary("/sluice.test.v1.Echo/Stats", StatsRequest())
    }

    func collect(_ call: Echo) async throws -> [EchoResponse] {
        var all: [EchoResponse] = []
        for try await response in call.responses { all.append(response) }
        return all
    }

    @Test func getEchoesWithPayload() async throws {
        let broker = try await InProcessBroker.start()
        let response: EchoResponse = try await broker.unary("/sluice.test.v1.Echo/Get", EchoRequest(text: "hello", payloadBytes: 300))
        #expect(response.text == "hello")
        #expect(Array(response.payload.readableBytesView) == (0..<300).map { UInt8(truncatingIfNeeded: $0) })
        await broker.stopAndRemove()
    }

    @Test func expandSendsWordsOrCopies() async throws {
        let broker = try await InProcessBroker.start()
        let words = try await Echo(broker.connection, path: "/sluice.test.v1.Echo/Expand")
        try await words.send(EchoRequest(text: "one two  three"))
        try await words.finishSending()
        #expect(try await collect(words).map(\.text) == ["one", "two", "three"])

        let copies = try await Echo(broker.connection, path: "/sluice.test.v1.Echo/Expand")
        try await copies.send(EchoRequest(text: "x y", repeat: 4, payloadBytes: 10))
        try await copies.finishSending()
        let responses = try await collect(copies)
        #expect(responses.map(\.text) == Array(repeating: "x y", count: 4))
        #expect(responses.allSatisfy { $0.payload.readableBytes == 10 })
        await broker.stopAndRemove()
    }

    @Test func collectJoinsTexts() async throws {
        let broker = try await InProcessBroker.start()
        let call = try await Echo(broker.connection, path: "/sluice.test.v1.Echo/Collect")
        for text in ["a", "b", "c"] { try await call.send(EchoRequest(text: text)) }
        try await call.finishSending()
        #expect(try await collect(call).map(\.text) == ["a b c"])
        await broker.stopAndRemove()
    }

    @Test func updateAnswersEachRequestAsItArrives() async throws {
        let broker = try await InProcessBroker.start()
        let call = try await Echo(broker.connection, path: "/sluice.test.v1.Echo/Update")
        var responses = call.responses.makeAsyncIterator()
        for text in ["first", "second", "third"] {
            try await call.send(EchoRequest(text: text))
            // Answered before the next request is sent: really bidirectional.
            #expect(try await responses.next()?.text == text)
        }
        try await call.send(EchoRequest(text: "twice", repeat: 2))
        #expect(try await responses.next()?.text == "twice")
        #expect(try await responses.next()?.text == "twice")
        try await call.finishSending()
        #expect(try await responses.next() == nil)
        await broker.stopAndRemove()
    }

    @Test func injectedStatusEndsTheCall() async throws {
        let broker = try await InProcessBroker.start()
        await expectStatus(.permissionDenied, containing: "go away") {
            let _: EchoResponse = try await broker.unary(
                "/sluice.test.v1.Echo/Get",
                EchoRequest(text: "x", statusCode: Int32(GRPCStatus.Code.permissionDenied.rawValue), statusMessage: "go away"))
        }
        // An injected CANCELLED is the request's wish, not a cancellation.
        await expectStatus(.cancelled, containing: "pretend") {
            let _: EchoResponse = try await broker.unary(
                "/sluice.test.v1.Echo/Get", EchoRequest(text: "x", statusCode: 1, statusMessage: "pretend"))
        }
        await expectStatus(.notFound) {
            let call = try await Echo(broker.connection, path: "/sluice.test.v1.Echo/Update")
            try await call.send(EchoRequest(text: "ok"))
            try await call.send(EchoRequest(text: "x", statusCode: 5))
            try await call.finishSending()
            #expect(try await collect(call).map(\.text) == ["ok"])
        }
        let counters = try await stats(broker)
        #expect(counters.handlersStarted == 3)
        #expect(counters.handlersCancelled == 0)
        #expect(counters.handlersDeadlineExceeded == 0)
        #expect(counters.handlersActive == 0)
        await broker.stopAndRemove()
    }

    @Test func deadlineIsEnforcedAndCounted() async throws {
        let broker = try await InProcessBroker.start()
        // Only the server enforces this deadline: a client's own reset at the same deadline
        // can reach a loaded server well before its timer fires, and is then (rightly)
        // counted as a cancellation.
        var configuration = GRPCClientConfiguration(host: "127.0.0.1", port: broker.port)
        configuration.enforcesDeadlineLocally = false
        let connection = try await GRPCClientConnection.connect(configuration, logger: Logger(label: "sluice.test.echo"))
        // On a loaded machine the deadline can pass before the handler's task even reads its
        // request; the call then ends without the handler running, which is right but proves
        // nothing about the handler. So the budget grows until a handler did run, and every
        // handler that ran must have been ended by the deadline, never counted as cancelled.
        var handlerRan = false
        for budget in [Duration.milliseconds(200), .seconds(2), .seconds(10)] where !handlerRan {
            await expectStatus(.deadlineExceeded) {
                let _: EchoResponse = try await connection.unary(
                    path: "/sluice.test.v1.Echo/Get", request: EchoRequest(text: "slow", delayMs: 60_000),
                    timeout: budget)
            }
            try await eventually("no handler is left running") { try await stats(broker).handlersActive == 0 }
            let counters = try await stats(broker)
            #expect(counters.handlersDeadlineExceeded == counters.handlersStarted)
            #expect(counters.handlersCancelled == 0)
            handlerRan = counters.handlersStarted > 0
        }
        #expect(handlerRan, "no handler started within the longest deadline")
        await connection.close()
        await broker.stopAndRemove()
    }

    @Test func clientCancellationReachesTheHandler() async throws {
        let broker = try await InProcessBroker.start()
        let call = try await Echo(broker.connection, path: "/sluice.test.v1.Echo/Update")
        try await call.send(EchoRequest(text: "never answered", delayMs: 60_000))
        try await eventually("the handler is running") { try await stats(broker).handlersActive == 1 }
        call.cancel()
        try await eventually("the handler counts its cancellation") {
            let counters = try await stats(broker)
            return counters.handlersCancelled == 1 && counters.handlersActive == 0
        }
        #expect(try await stats(broker).handlersDeadlineExceeded == 0)
        // The connection is still good.
        let response: EchoResponse = try await broker.unary("/sluice.test.v1.Echo/Get", EchoRequest(text: "after"))
        #expect(response.text == "after")
        await broker.stopAndRemove()
    }

    @Test func limitsAreChecked() async throws {
        let broker = try await InProcessBroker.start()
        await expectStatus(.invalidArgument, containing: "payload_bytes") {
            let _: EchoResponse = try await broker.unary("/sluice.test.v1.Echo/Get", EchoRequest(payloadBytes: EchoService.maxPayloadBytes + 1))
        }
        await expectStatus(.invalidArgument, containing: "repeat") {
            let call = try await Echo(broker.connection, path: "/sluice.test.v1.Echo/Expand")
            try await call.send(EchoRequest(text: "x", repeat: EchoService.maxRepeat + 1))
            try await call.finishSending()
            _ = try await collect(call)
        }
        await broker.stopAndRemove()
    }
}
