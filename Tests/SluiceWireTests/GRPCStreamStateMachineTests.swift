import NIOCore
import Testing
@testable import SluiceWire

/// Every transition of `GRPCStreamStateMachine`, both roles, without a socket: each test
/// names the event, the state it meets, and the exact actions it must return.
@Suite struct GRPCStreamStateMachineTests {
    typealias Machine = GRPCStreamStateMachine
    typealias Action = GRPCStreamStateMachine.Action

    // MARK: Server: the request

    @Test func serverStartsTheHandlerOfAValidRequest() {
        var machine = StateMachineFixture.server()
        #expect(machine.state == .awaitingRequest)
        let actions = machine.receivedHeaders(
            StateMachineFixture.request(path: "/t.S/Stream", extra: [("grpc-timeout", "5S"), ("x-key", "v")]),
            endStream: false)
        #expect(
            actions == [
                .startHandler(
                    .init(path: "/t.S/Stream", metadata: ["x-key": "v"], timeout: .seconds(5), kind: .bidirectional))
            ])
        #expect(machine.state == .open(sending: .nothing, responseHeadersReceived: false))
        #expect(machine.nextRead() == .pending)
    }

    @Test(arguments: [
        ([(":method", "GET")], 405, GRPCStatus(.internalError, "gRPC requires POST")),
        ([("content-type", "text/plain")], 415, GRPCStatus(.internalError, "content-type must be application/grpc")),
        ([("grpc-encoding", "gzip")], 200, GRPCStatus(.unimplemented, "grpc-encoding \"gzip\" is not supported")),
        ([(":path", "/t.S/Nope")], 200, GRPCStatus(.unimplemented, "unknown method \"/t.S/Nope\"")),
        ([("grpc-timeout", "soon")], 200, GRPCStatus(.internalError, "malformed grpc-timeout \"soon\"")),
    ])
    func serverRejectsARequestWithATrailersOnlyAnswer(override: [(String, String)], httpStatus: Int, status: GRPCStatus) {
        var machine = StateMachineFixture.server()
        var headers = StateMachineFixture.request(path: "/t.S/Unary", extra: [])
        for (name, value) in override {
            headers.removeAll { $0.name == name }
            headers.append((name, value))
        }
        let actions = machine.receivedHeaders(headers, endStream: false)
        #expect(
            actions == [
                .callEnded(status, trailers: [:]),
                .sendStatus(status, .trailersOnly(httpStatus: httpStatus, withMetadata: false)),
            ])
        #expect(machine.state == .ended(status: status, streamClosed: false))
        // The rejected request's DATA only goes back as window.
        #expect(machine.data([0, 0, 0, 0, 1, 7]) == [.consume(6)])
    }

    @Test func serverRequestHeadersWithEndStreamEndTheReads() {
        var machine = StateMachineFixture.server()
        _ = machine.receivedHeaders(StateMachineFixture.request(path: "/t.S/Unary", extra: []), endStream: true)
        #expect(machine.nextRead() == .end)
        #expect(machine.sentEndOfStream() == [])  // not before the status
        _ = machine.handlerFinished(.ok)
        // Not counted as END_STREAM received for the reset after the answer (kept from before).
        #expect(machine.sentEndOfStream() == [.resetStream(errorCode: 0)])
    }

    @Test func serverDeliversDataAndTheEnd() {
        var machine = StateMachineFixture.startedServer()
        #expect(machine.data(StateMachineFixture.framed([1, 2, 3])) == [.consume(8), .wakeReader])
        #expect(machine.nextRead() == .message(ByteBuffer(bytes: [1, 2, 3]), consume: 0))
        #expect(machine.nextRead() == .pending)
        #expect(machine.receivedEndOfStream() == [.wakeReader])
        #expect(machine.nextRead() == .end)
        #expect(machine.sentEndOfStream() == [])
    }

    @Test func serverHoldsWindowPastTheBufferBoundUntilRead() {
        var machine = StateMachineFixture.startedServer(bufferLimit: 9)
        #expect(machine.data(StateMachineFixture.framed([1, 2, 3])) == [.consume(8), .wakeReader])
        #expect(machine.data(StateMachineFixture.framed([4])) == [.consume(0), .wakeReader])
        #expect(machine.nextRead() == .message(ByteBuffer(bytes: [1, 2, 3]), consume: 6))
    }

    @Test func serverTreatsRequestTrailersAsTheEnd() {
        var machine = StateMachineFixture.startedServer()
        #expect(machine.receivedHeaders([("x-trailer", "1")], endStream: true) == [.wakeReader])
        #expect(machine.nextRead() == .end)
    }

    @Test func serverAbortsOnAnOversizedMessage() {
        var machine = StateMachineFixture.startedServer(maxMessage: 4)
        let status = GRPCFramingError.messageTooLarge(length: 5, limit: 4).status
        #expect(
            machine.data(StateMachineFixture.framed([1, 2, 3, 4, 5]))
                == [.consume(10)] + StateMachineFixture.serverAbort(status, headersSent: false))
        #expect(machine.state == .ended(status: status, streamClosed: false))
        #expect(machine.nextRead() == .failed(status))
    }

    @Test func serverAbortsWhenTheRequestEndsInsideAMessage() {
        var machine = StateMachineFixture.startedServer()
        _ = machine.data([0, 0, 0, 0, 9, 1])
        let status = GRPCFramingError.truncated(bufferedBytes: 6).status
        #expect(machine.receivedEndOfStream() == StateMachineFixture.serverAbort(status, headersSent: false))
    }

    @Test func serverWritesHeadersBeforeTheFirstMessageOnly() {
        var machine = StateMachineFixture.startedServer()
        #expect(machine.writeRequested() == [.sendResponseHeaders, .sendMessage])
        #expect(machine.state == .open(sending: .messages, responseHeadersReceived: false))
        #expect(machine.writeRequested() == [.sendMessage])
    }

    @Test func serverStatusIsTrailersOnlyBeforeAnyResponse() {
        var machine = StateMachineFixture.startedServer()
        #expect(
            machine.handlerFinished(.ok)
                == [
                    .callEnded(.ok, trailers: [:]), .failBlockedWriter(Machine.alreadyEnded), .wakeReader,
                    .sendStatus(.ok, .trailersOnly(httpStatus: 200, withMetadata: true)),
                ])
        #expect(machine.handlerFinished(GRPCStatus(.internalError, "again")) == [])
        #expect(machine.writeRequested() == [.refuse(Machine.alreadyEnded)])
    }

    @Test func serverStatusIsTrailersAfterResponses() {
        var machine = StateMachineFixture.startedServer()
        _ = machine.writeRequested()
        let status = GRPCStatus(.aborted, "stop")
        #expect(
            machine.handlerFinished(status)
                == [.callEnded(status, trailers: [:]), .failBlockedWriter(status), .wakeReader, .sendStatus(status, .trailers)])
        #expect(machine.writeRequested() == [.refuse(status)])
    }

    @Test func serverDeadlineAbortsTheCall() {
        var machine = StateMachineFixture.startedServer()
        _ = machine.writeRequested()
        let status = GRPCStatus(.deadlineExceeded, "deadline exceeded")
        #expect(machine.deadlineExpired() == StateMachineFixture.serverAbort(status, headersSent: true))
        #expect(machine.deadlineExpired() == [])
    }

    @Test func serverStreamClosedUnderARunningCall() {
        var machine = StateMachineFixture.startedServer(bufferLimit: 1)
        _ = machine.data(StateMachineFixture.framed([1]))
        _ = machine.data(StateMachineFixture.framed([2]))  // held: over the bound
        let status = GRPCStatus(.cancelled, "the client cancelled the call")
        #expect(
            machine.streamClosed(errorCode: 8)
                == [
                    .consume(12), .cancelHandler, .discardOutbound, .callEnded(status, trailers: [:]),
                    .failBlockedWriter(status), .wakeReader,
                ])
        #expect(machine.state == .ended(status: status, streamClosed: true))
        #expect(machine.nextRead() == .failed(status))
        #expect(machine.sentEndOfStream() == [])
    }

    @Test func serverStreamClosedAfterTheStatus() {
        var machine = StateMachineFixture.startedServer()
        _ = machine.handlerFinished(.ok)
        #expect(machine.streamClosed(errorCode: 0) == [.discardOutbound, .failBlockedWriter(Machine.alreadyEnded), .wakeReader])
        #expect(machine.state == .ended(status: .ok, streamClosed: true))
    }

    @Test func serverResetsTheRequestAfterAnEarlyAnswer() {
        var machine = StateMachineFixture.startedServer()
        _ = machine.handlerFinished(.ok)
        #expect(machine.sentEndOfStream() == [.resetStream(errorCode: 0)])
        #expect(machine.state == .ended(status: .ok, streamClosed: true))
        #expect(machine.sentEndOfStream() == [])
    }

    @Test func serverCancelledHandlerFailsItsWaitsOnly() {
        var machine = StateMachineFixture.startedServer()
        let status = GRPCStatus(.cancelled, "the handler was cancelled")
        #expect(machine.cancelled() == [.failBlockedWriter(status), .wakeReader])
        #expect(machine.status == nil)
        #expect(machine.nextRead() == .failed(status))
    }

    @Test func serverConnectionClosed() {
        var machine = StateMachineFixture.startedServer()
        let status = GRPCStatus(.cancelled, "the client disconnected")
        #expect(
            machine.connectionClosed()
                == [.cancelHandler, .discardOutbound, .callEnded(status, trailers: [:]), .failBlockedWriter(status), .wakeReader])
        #expect(machine.connectionClosed() == [])
    }

    @Test func serverIllegalEventsEndTheCallWithInternal() {
        var early = StateMachineFixture.server()
        let beforeHeaders = GRPCStatus(.internalError, "protocol violation: DATA before the request headers")
        #expect(early.data([1, 2]) == [.consume(2)] + StateMachineFixture.serverAbort(beforeHeaders, headersSent: false))

        var midHeaders = StateMachineFixture.startedServer()
        let midStatus = GRPCStatus(.internalError, "protocol violation: HEADERS in the middle of the request")
        #expect(midHeaders.receivedHeaders([], endStream: false) == StateMachineFixture.serverAbort(midStatus, headersSent: false))

        var finishing = StateMachineFixture.startedServer()
        let finishStatus = GRPCStatus(.internalError, "protocol violation: a server finishes with a status, not END_STREAM")
        #expect(finishing.finishSending(hasPendingWrite: false) == StateMachineFixture.serverAbort(finishStatus, headersSent: false))

        var writing = StateMachineFixture.server()
        #expect(writing.writeRequested() == [.refuse(GRPCStatus(.internalError, "write before the request"))])
        var ending = StateMachineFixture.server()
        let endStatus = GRPCStatus(.internalError, "protocol violation: END_STREAM before the request headers")
        #expect(ending.receivedEndOfStream() == StateMachineFixture.serverAbort(endStatus, headersSent: false))
    }

    // MARK: Client

    @Test func clientOpensReadyToSend() {
        var machine = StateMachineFixture.client()
        #expect(machine.state == .open(sending: .messages, responseHeadersReceived: false))
        #expect(machine.writeRequested() == [.sendMessage])
        #expect(machine.finishSending(hasPendingWrite: false) == [.sendEndOfMessages])
        #expect(machine.finishSending(hasPendingWrite: false) == [])
        #expect(machine.writeRequested() == [.refuse(GRPCStatus(.internalError, "write after the end of the stream"))])
    }

    @Test func clientFinishWhileAWriteIsParkedIsRefused() {
        var machine = StateMachineFixture.client()
        #expect(
            machine.finishSending(hasPendingWrite: true)
                == [.refuse(GRPCStatus(.internalError, "finishSending while a send is still pending"))])
        #expect(machine.state == .open(sending: .messages, responseHeadersReceived: false))
    }

    @Test func clientStoresResponseHeadersThenCompletesOnTrailers() {
        var machine = StateMachineFixture.client()
        _ = machine.finishSending(hasPendingWrite: false)
        #expect(machine.receivedHeaders(StateMachineFixture.responseHeaders + [("x-h", "1")], endStream: false)
            == [.storeResponseMetadata(["x-h": "1"])])
        #expect(machine.data(StateMachineFixture.framed([9])) == [.consume(6), .wakeReader])
        #expect(
            machine.receivedHeaders([("grpc-status", "0"), ("x-t", "2")], endStream: true)
                == [.discardOutbound, .failBlockedWriter(Machine.alreadyEnded), .wakeReader, .callEnded(.ok, trailers: ["x-t": "2"])])
        // Messages that came before the status are still read, then the end.
        #expect(machine.nextRead() == .message(ByteBuffer(bytes: [9]), consume: 0))
        #expect(machine.nextRead() == .end)
    }

    @Test func clientTrailersBeforeItsRequestEndedResetTheStream() {
        var machine = StateMachineFixture.client()
        _ = machine.receivedHeaders(StateMachineFixture.responseHeaders, endStream: false)
        let status = GRPCStatus(.notFound, "no such topic")
        #expect(
            machine.receivedHeaders([("grpc-status", "5"), ("grpc-message", "no such topic")], endStream: true)
                == [
                    .discardOutbound, .failBlockedWriter(status), .wakeReader, .callEnded(status, trailers: [:]),
                    .resetStream(errorCode: 8),
                ])
        #expect(machine.state == .ended(status: status, streamClosed: true))
        #expect(machine.nextRead() == .failed(status))
    }

    @Test func clientTrailersOnlyResponse() {
        var machine = StateMachineFixture.client()
        _ = machine.finishSending(hasPendingWrite: false)
        let status = GRPCStatus(.unimplemented, "unknown method")
        #expect(
            machine.receivedHeaders(
                StateMachineFixture.responseHeaders + [("grpc-status", "12"), ("grpc-message", "unknown%20method")],
                endStream: true)
                == [.discardOutbound, .failBlockedWriter(status), .wakeReader, .callEnded(status, trailers: [:])])
    }

    @Test func clientTrailersWithoutStatusOrAfterAPartialMessage() {
        var noStatus = StateMachineFixture.respondedClient()
        let missing = GRPCStatus(.internalError, "the response has no grpc-status")
        #expect(noStatus.receivedHeaders([], endStream: true).contains(.callEnded(missing, trailers: [:])))

        var partial = StateMachineFixture.respondedClient()
        _ = partial.data([0, 0, 0, 0, 4, 1])
        let truncated = GRPCFramingError.truncated(bufferedBytes: 6).status
        #expect(partial.receivedHeaders([("grpc-status", "0")], endStream: true).contains(.callEnded(truncated, trailers: [:])))
    }

    @Test func clientBadResponseHeadersCancelTheCall() {
        var httpError = StateMachineFixture.client()
        let unavailable = GRPCStatus.fromHTTPStatus(503)
        #expect(
            httpError.receivedHeaders([(":status", "503")], endStream: false)
                == StateMachineFixture.clientCancel(unavailable))

        var notGRPC = StateMachineFixture.client()
        let status = GRPCStatus(.internalError, "response content-type is not application/grpc")
        #expect(
            notGRPC.receivedHeaders([(":status", "200"), ("content-type", "text/html")], endStream: false)
                == StateMachineFixture.clientCancel(status))
    }

    @Test func clientEndWithoutTrailers() {
        var machine = StateMachineFixture.respondedClient()
        let status = GRPCStatus(.internalError, "the server ended the stream without trailers")
        #expect(
            machine.receivedEndOfStream()
                == [.discardOutbound, .failBlockedWriter(status), .wakeReader, .callEnded(status, trailers: [:]), .resetStream(errorCode: 8)])
    }

    @Test func clientOversizedResponseCancels() {
        var machine = StateMachineFixture.respondedClient(maxMessage: 2)
        let status = GRPCFramingError.messageTooLarge(length: 3, limit: 2).status
        #expect(machine.data(StateMachineFixture.framed([1, 2, 3])) == [.consume(8)] + StateMachineFixture.clientCancel(status))
    }

    @Test func clientDeadlineAndCancelResetOnce() {
        var machine = StateMachineFixture.respondedClient(bufferLimit: 1)
        _ = machine.data(StateMachineFixture.framed([1]))
        _ = machine.data(StateMachineFixture.framed([2]))  // held: over the bound
        let status = GRPCStatus(.deadlineExceeded, "deadline exceeded")
        #expect(machine.deadlineExpired() == [.consume(12)] + StateMachineFixture.clientCancel(status))
        #expect(machine.nextRead() == .failed(status))  // messages dropped
        #expect(machine.cancelled() == [])
        #expect(machine.writeRequested() == [.refuse(status)])
        #expect(machine.finishSending(hasPendingWrite: false) == [.refuse(status)])
        // What was in flight before the reset goes back as window, nothing else.
        #expect(machine.data([0, 0]) == [.consume(2)])
    }

    @Test func clientCancelled() {
        var machine = StateMachineFixture.client()
        #expect(machine.cancelled() == StateMachineFixture.clientCancel(GRPCStatus(.cancelled, "the call was cancelled")))
    }

    @Test(arguments: [(UInt32(7), GRPCStatus.Code.unavailable), (8, .cancelled), (0xb, .resourceExhausted), (0xc, .permissionDenied), (2, .internalError)])
    func clientStreamResetByThePeer(errorCode: UInt32, code: GRPCStatus.Code) {
        var machine = StateMachineFixture.client()
        let status = Machine.status(forReset: errorCode)
        #expect(status.code == code)
        #expect(
            machine.streamClosed(errorCode: errorCode)
                == [.discardOutbound, .failBlockedWriter(status), .wakeReader, .callEnded(status, trailers: [:])])
        #expect(machine.state == .ended(status: status, streamClosed: true))
    }

    @Test func clientStreamClosedAfterTheStatus() {
        var machine = StateMachineFixture.respondedClient()
        _ = machine.receivedHeaders([("grpc-status", "0")], endStream: true)
        #expect(machine.streamClosed(errorCode: 0) == [.discardOutbound])
        #expect(machine.connectionClosed() == [])
    }

    @Test func clientConnectionClosed() {
        var machine = StateMachineFixture.client()
        let status = GRPCStatus(.unavailable, "the connection closed")
        #expect(machine.connectionClosed() == [.discardOutbound, .failBlockedWriter(status), .wakeReader, .callEnded(status, trailers: [:])])
    }

    @Test func clientIllegalEventsEndTheCallWithInternal() {
        var early = StateMachineFixture.client()
        let status = GRPCStatus(.internalError, "protocol violation: DATA before the response headers")
        #expect(early.data([1]) == [.consume(1)] + StateMachineFixture.clientCancel(status))

        var handler = StateMachineFixture.client()
        let noHandler = GRPCStatus(.internalError, "protocol violation: a client call has no handler")
        #expect(handler.handlerFinished(.ok) == StateMachineFixture.clientCancel(noHandler))
        #expect(handler.sentEndOfStream() == [])
    }
}

/// Machines in given states and the action lists the endings produce.
enum StateMachineFixture {
    static let methods: [String: GRPCMethod.Kind] = ["/t.S/Unary": .unary, "/t.S/Stream": .bidirectional]
    static let responseHeaders = [(name: ":status", value: "200"), (name: "content-type", value: "application/grpc")]

    static func request(path: String, extra: [(String, String)]) -> [(name: String, value: String)] {
        [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
         ("content-type", "application/grpc+proto"), ("te", "trailers")] + extra.map { (name: $0.0, value: $0.1) }
    }

    static func server(bufferLimit: Int = 1 << 20, maxMessage: Int = 1 << 20) -> GRPCStreamStateMachine {
        GRPCStreamStateMachine(
            role: .server(methods: methods), inbound: InboundMessageBuffer(limitBytes: bufferLimit, maxMessageBytes: maxMessage))
    }

    static func startedServer(bufferLimit: Int = 1 << 20, maxMessage: Int = 1 << 20) -> GRPCStreamStateMachine {
        var machine = server(bufferLimit: bufferLimit, maxMessage: maxMessage)
        _ = machine.receivedHeaders(request(path: "/t.S/Stream", extra: []), endStream: false)
        return machine
    }

    static func client(bufferLimit: Int = 1 << 20, maxMessage: Int = 1 << 20) -> GRPCStreamStateMachine {
        GRPCStreamStateMachine(role: .client, inbound: InboundMessageBuffer(limitBytes: bufferLimit, maxMessageBytes: maxMessage))
    }

    static func respondedClient(bufferLimit: Int = 1 << 20, maxMessage: Int = 1 << 20) -> GRPCStreamStateMachine {
        var machine = client(bufferLimit: bufferLimit, maxMessage: maxMessage)
        _ = machine.receivedHeaders(responseHeaders, endStream: false)
        return machine
    }

    /// The 5-byte gRPC prefix (uncompressed, big-endian length) and the payload.
    static func framed(_ payload: [UInt8]) -> [UInt8] {
        let count = UInt32(payload.count)
        return [0, UInt8(count >> 24), UInt8((count >> 16) & 0xff), UInt8((count >> 8) & 0xff), UInt8(count & 0xff)] + payload
    }

    /// A server call ended from its own side while the stream is open.
    static func serverAbort(_ status: GRPCStatus, headersSent: Bool) -> [GRPCStreamStateMachine.Action] {
        [
            .cancelHandler, .discardOutbound, .callEnded(status, trailers: [:]), .failBlockedWriter(status), .wakeReader,
            .sendStatus(status, headersSent ? .trailers : .trailersOnly(httpStatus: 200, withMetadata: true)),
        ]
    }

    /// A client call cancelled locally with nothing left unconsumed.
    static func clientCancel(_ status: GRPCStatus) -> [GRPCStreamStateMachine.Action] {
        [.resetStream(errorCode: 8), .discardOutbound, .failBlockedWriter(status), .wakeReader, .callEnded(status, trailers: [:])]
    }
}

extension GRPCStreamStateMachine {
    mutating func data(_ bytes: [UInt8]) -> [Action] {
        bytes.withUnsafeBytes { receivedData($0) }
    }
}
