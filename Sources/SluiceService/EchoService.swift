import NIOCore
import SluiceAPI
public import SluiceWire
import Synchronization

/// `sluice.test.v1.Echo` (served only with `sluice serve --test-services`): one RPC of each
/// kind, with knobs for delays, injected statuses and payload sizes, and `Stats`, which
/// tells a test what the server's handlers saw, so cancellation and deadlines are observed
/// on the server side.
///
/// Knobs, per request (echo.proto):
/// - `delay_ms`: a cancellable sleep before answering (before each answer for streams);
/// - `status_code`/`status_message`: end the call with that status instead of answering;
/// - `repeat`: Expand sends that many copies of `text` (default: one response per word);
///   Update sends that many copies of each answer (default 1); at most `maxRepeat`;
/// - `payload_bytes`: each response carries that many bytes (byte i is i mod 256); at most
///   `maxPayloadBytes`. Collect uses the last request's value.
public struct EchoService: Sendable {
    public static let serviceName = "sluice.test.v1.Echo"
    public static let maxRepeat: UInt32 = 1_000_000
    public static let maxPayloadBytes: UInt32 = 64 * 1024 * 1024

    private let stats = EchoStats()

    public init() {}

    public var methods: [GRPCMethod] {
        let stats = self.stats
        let prefix = "/\(Self.serviceName)/"
        return [
            ProtobufRoute.unary(prefix + "Get") { (request: EchoRequest, context) in
                try await stats.track(context) {
                    try await Self.prepare(request)
                    return try Self.response(request.text, request)
                }
            },
            ProtobufRoute.serverStreaming(prefix + "Expand") { (request: EchoRequest, writer: ProtobufRoute.ResponseWriter<EchoResponse>, context) in
                try await stats.track(context) {
                    try Self.checkLimits(request)
                    let texts = request.repeat > 0
                        ? Array(repeating: request.text, count: Int(request.repeat))
                        : request.text.split(whereSeparator: \.isWhitespace).map(String.init)
                    for text in texts {
                        try await Self.prepare(request)
                        try await writer.write(try Self.response(text, request))
                    }
                }
            },
            ProtobufRoute.clientStreaming(prefix + "Collect") { (requests: ProtobufRoute.RequestStream<EchoRequest>, context) in
                try await stats.track(context) {
                    var texts: [String] = []
                    var last = EchoRequest()
                    for try await request in requests {
                        try await Self.prepare(request)
                        texts.append(request.text)
                        last = request
                    }
                    return try Self.response(texts.joined(separator: " "), last)
                }
            },
            ProtobufRoute.bidirectional(prefix + "Update") { (requests: ProtobufRoute.RequestStream<EchoRequest>, writer: ProtobufRoute.ResponseWriter<EchoResponse>, context) in
                try await stats.track(context) {
                    for try await request in requests {
                        try await Self.prepare(request)
                        let answer = try Self.response(request.text, request)
                        for _ in 0..<max(1, request.repeat) {
                            try await writer.write(answer)
                        }
                    }
                }
            },
            ProtobufRoute.unary(prefix + "Stats") { (_: StatsRequest, _) in
                stats.snapshot()
            },
        ]
    }

    /// Checks the knobs, sleeps `delay_ms` (throwing CancellationError if the call is
    /// cancelled meanwhile) and throws the injected status, if any.
    private static func prepare(_ request: EchoRequest) async throws {
        try checkLimits(request)
        if request.delayMs > 0 {
            try await Task.sleep(for: .milliseconds(Int64(request.delayMs)))
        }
        if request.statusCode != 0 {
            throw InjectedStatus(status: GRPCStatus(GRPCStatus.Code(rawValue: Int(request.statusCode)), request.statusMessage))
        }
    }

    private static func checkLimits(_ request: EchoRequest) throws(GRPCStatus) {
        guard request.repeat <= maxRepeat else {
            throw GRPCStatus(.invalidArgument, "repeat \(request.repeat) is above the limit of \(maxRepeat)")
        }
        guard request.payloadBytes <= maxPayloadBytes else {
            throw GRPCStatus(.invalidArgument, "payload_bytes \(request.payloadBytes) is above the limit of \(maxPayloadBytes)")
        }
    }

    private static func response(_ text: String, _ request: EchoRequest) throws(GRPCStatus) -> EchoResponse {
        try checkLimits(request)
        var payload = ByteBuffer()
        var remaining = Int(request.payloadBytes)
        payload.reserveCapacity(remaining)
        while remaining > 0 {
            let count = min(remaining, payloadPattern.count)
            payload.writeBytes(payloadPattern[0..<count])
            remaining -= count
        }
        return EchoResponse(text: text, payload: payload)
    }
}

/// Byte i of every payload is i mod 256, so a test can check payload integrity.
private let payloadPattern: [UInt8] = (0..<256).map { UInt8($0) }

/// A status the request asked for: passed to the client as is, never counted as a
/// cancellation even when its code is CANCELLED or DEADLINE_EXCEEDED.
struct InjectedStatus: Error {
    var status: GRPCStatus
}

/// Counters of Echo handlers since the server started (StatsResponse).
final class EchoStats: Sendable {
    private struct Counters {
        var started: UInt64 = 0
        var cancelled: UInt64 = 0
        var deadlineExceeded: UInt64 = 0
        var active: UInt64 = 0
    }

    private let counters = Mutex(Counters())

    /// Runs a handler, counting it as started and active, and on the way out as cancelled
    /// or deadline-exceeded when that is why it ended.
    func track<Result>(_ context: ServerCallContext, _ body: () async throws -> Result) async throws -> Result {
        let start = ContinuousClock.now
        counters.withLock {
            $0.started += 1
            $0.active += 1
        }
        do {
            let result = try await body()
            counters.withLock { $0.active -= 1 }
            return result
        } catch let injected as InjectedStatus {
            counters.withLock { $0.active -= 1 }
            throw injected.status
        } catch {
            let ending = Self.ending(of: error, context: context, start: start)
            counters.withLock {
                $0.active -= 1
                switch ending {
                case .cancelled: $0.cancelled += 1
                case .deadlineExceeded: $0.deadlineExceeded += 1
                case .failed: break
                }
            }
            throw error
        }
    }

    private enum Ending { case cancelled, deadlineExceeded, failed }

    /// The transport cancels a handler's task for a client reset, a disconnect and a passed
    /// deadline alike, so the deadline tells them apart. A client enforces the same deadline
    /// and resets the stream when it passes; that reset can reach the server a little before
    /// the server's own timer fires (the server's deadline counts from when the headers
    /// arrived). So a cancellation close to the deadline counts as the deadline: within half
    /// the call's time budget, at most one second.
    private static func ending(of error: any Error, context: ServerCallContext, start: ContinuousClock.Instant) -> Ending {
        let wasCancelled: Bool
        if error is CancellationError || Task.isCancelled {
            wasCancelled = true
        } else if let status = error as? GRPCStatus, status.code == .cancelled || status.code == .deadlineExceeded {
            wasCancelled = true
        } else {
            wasCancelled = false
        }
        guard wasCancelled else { return .failed }
        if let deadline = context.deadline {
            let tolerance = min(Duration.seconds(1), (deadline - start) / 2)
            if ContinuousClock.now >= deadline - tolerance { return .deadlineExceeded }
        }
        return .cancelled
    }

    func snapshot() -> StatsResponse {
        counters.withLock {
            StatsResponse(
                handlersStarted: $0.started, handlersCancelled: $0.cancelled,
                handlersDeadlineExceeded: $0.deadlineExceeded, handlersActive: $0.active)
        }
    }
}
