import Foundation
import NIOCore
import SluiceTestSupport
import Testing
@testable import SluiceWire

/// Random event sequences against one stream's state machine, either role, checking the
/// named invariants after every step. Seeds are fixed; the count of runs is
/// SLUICE_STREAM_RUNS (default 3,000, 100,000 under SLUICE_SOAK=1).
@Suite(.timeLimit(.minutes(2)))
struct GRPCStreamStateMachineRandomTests {
    static var runs: Int {
        let environment = ProcessInfo.processInfo.environment
        if let count = environment["SLUICE_STREAM_RUNS"].flatMap(Int.init) { return count }
        return environment["SLUICE_SOAK"].map { $0 != "" && $0 != "0" } == true ? 100_000 : 3_000
    }

    @Test func invariantsHoldUnderRandomEvents() {
        for seed in 0..<Self.runs {
            var run = RandomStreamRun(seed: UInt64(seed))
            let failure = run.run()
            #expect(failure == nil, "seed \(seed)")
            if failure != nil { return }
        }
    }
}

/// One seeded run: a stream of a random role meets up to 60 random events, then closes.
struct RandomStreamRun {
    typealias Action = GRPCStreamStateMachine.Action

    var random: SplitMix64
    var machine: GRPCStreamStateMachine
    var invariants = StreamInvariants()
    /// Bytes of generated gRPC frames not yet delivered as DATA.
    var wire: [UInt8] = []
    var log: [String] = []

    init(seed: UInt64) {
        random = SplitMix64(seed: seed)
        let inbound = InboundMessageBuffer(limitBytes: 1 + random.next(below: 48), maxMessageBytes: 32)
        machine = GRPCStreamStateMachine(
            role: random.next(below: 2) == 0 ? .client : .server(methods: StateMachineFixture.methods), inbound: inbound)
    }

    /// The first broken invariant, with the events that led to it; nil if all held.
    mutating func run() -> String? {
        for _ in 0..<(1 + random.next(below: 60)) {
            if let failure = step() { return failure }
        }
        // However the stream ends: the connection goes, or nghttp2 closes the stream.
        let closing = random.next(below: 2) == 0 ? machine.connectionClosed() : machine.streamClosed(errorCode: 0)
        if let failure = observe("final close", closing, closes: true) { return failure }
        while case .message(_, let consume) = machine.nextRead() { invariants.consumed += consume }
        if invariants.finalStatuses != 1 { return failed("exactly one final status per stream: \(invariants.finalStatuses)") }
        if invariants.consumed != invariants.received {
            return failed("every inbound byte consumed once: received \(invariants.received), consumed \(invariants.consumed)")
        }
        return nil
    }

    private mutating func step() -> String? {
        switch random.next(below: 15) {
        case 0, 1:
            let headers = nextHeaders()
            let endStream = random.next(below: 4) == 0
            return observe("headers \(headers.map(\.value)) end=\(endStream)", machine.receivedHeaders(headers, endStream: endStream))
        case 2, 3, 4:
            if case .open(_, responseHeadersReceived: false) = machine.state, !machine.isServer, random.next(below: 4) != 0 {
                // Mostly the response headers first, so more runs reach the client's later states.
                return observe("response headers", machine.receivedHeaders(StateMachineFixture.responseHeaders, endStream: false))
            }
            let chunk = nextData()
            invariants.received += chunk.count
            return observe("data \(chunk.count)", chunk.withUnsafeBytes { machine.receivedData($0) })
        case 5: return observe("end of stream", machine.receivedEndOfStream())
        case 6:
            let code = [UInt32(0), 2, 7, 8][random.next(below: 4)]
            return observe("stream closed \(code)", machine.streamClosed(errorCode: code), closes: true)
        case 7: return observe("sent END_STREAM", machine.sentEndOfStream())
        case 8: return observe("deadline", machine.deadlineExpired())
        case 9: return observe("abort", machine.abort(GRPCStatus(.unavailable, "shutdown")))
        case 10: return observe("write", machine.writeRequested(), asked: true)
        case 11: return observe("finish sending", machine.finishSending(hasPendingWrite: random.next(below: 8) == 0))
        case 12:
            let status = [GRPCStatus.ok, GRPCStatus(.aborted, "x")][random.next(below: 2)]
            return observe("handler finished \(status.code)", machine.handlerFinished(status))
        case 13: return observe("cancelled", machine.cancelled())
        default:
            if random.next(below: 30) == 0 { return observe("connection closed", machine.connectionClosed(), closes: true) }
            if case .message(_, let consume) = machine.nextRead() { invariants.consumed += consume }
            log.append("read")
            return invariants.consumed <= invariants.received ? nil : failed("consumed more than received")
        }
    }

    private mutating func nextHeaders() -> [(name: String, value: String)] {
        if machine.isServer {
            switch random.next(below: 6) {
            case 0: return StateMachineFixture.request(path: "/t.S/Nope", extra: [])
            case 1: return [("x-trailer", "1")]
            default: return StateMachineFixture.request(path: "/t.S/Stream", extra: [])
            }
        }
        switch random.next(below: 6) {
        case 0: return [(":status", "503")]
        case 1: return [("grpc-status", "5"), ("grpc-message", "gone")]
        case 2: return StateMachineFixture.responseHeaders + [("grpc-status", "0")]
        case 3: return []
        default: return StateMachineFixture.responseHeaders
        }
    }

    /// A random piece of the frames on the wire: whole and split messages, some over the
    /// 32-byte limit or with a bad flag byte.
    private mutating func nextData() -> [UInt8] {
        if wire.isEmpty {
            var frame = StateMachineFixture.framed((0..<random.next(below: 40)).map { UInt8(truncatingIfNeeded: $0) })
            if random.next(below: 20) == 0 { frame[0] = 7 }
            wire = frame
        }
        let count = 1 + random.next(below: wire.count)
        defer { wire.removeFirst(count) }
        return Array(wire.prefix(count))
    }

    private func failed(_ invariant: String) -> String {
        "\(invariant) after \(log.joined(separator: ", "))"
    }

    private mutating func observe(_ event: String, _ actions: [Action], asked: Bool = false, closes: Bool = false) -> String? {
        log.append("\(event) -> \(actions)")
        if let broken = invariants.observe(actions, writeAsked: asked) { return failed(broken) }
        if closes { invariants.outputClosed = true }
        if (machine.status != nil) != (invariants.finalStatuses == 1) {
            return failed("the machine's status and the final statuses given agree")
        }
        return nil
    }
}

/// The named invariants of one stream, fed with every action the machine returns.
struct StreamInvariants {
    var received = 0
    var consumed = 0
    var finalStatuses = 0
    /// No frame of ours may go out: the stream or connection closed, we reset it, or our
    /// last frame (the status, or the reset after it) went out.
    var outputClosed = false
    /// Server: the status went out. Client: END_STREAM is queued. No message may follow.
    var messagesEnded = false

    /// The invariant an action list breaks, if any.
    mutating func observe(_ actions: [GRPCStreamStateMachine.Action], writeAsked: Bool) -> String? {
        for action in actions {
            switch action {
            case .callEnded:
                finalStatuses += 1
                if finalStatuses > 1 { return "exactly one final status per stream" }
            case .consume(let bytes):
                consumed += bytes
                if bytes < 0 || consumed > received { return "every inbound byte consumed once (over-consumed)" }
            case .sendResponseHeaders, .sendMessage, .sendEndOfMessages, .sendStatus:
                if outputClosed { return "no write after the stream closed: \(action)" }
                if case .sendMessage = action {
                    if messagesEnded { return "no message after the end of the messages" }
                    if !writeAsked { return "a message is sent only when the application writes one" }
                }
                if case .sendStatus = action {
                    if messagesEnded { return "one status per stream" }
                    messagesEnded = true
                }
                if case .sendEndOfMessages = action {
                    if messagesEnded { return "one END_STREAM per stream" }
                    messagesEnded = true
                }
            case .resetStream:
                outputClosed = true
            default:
                break
            }
        }
        return nil
    }
}
