public import SluiceAPI
public import SluiceWire
import Synchronization

/// `grpc.health.v1.Health`: the serving status of the server as a whole ("") and of each
/// served service, for load balancers, orchestrators and `grpc_health_probe`.
///
/// Check answers the current status, NOT_FOUND for a service that is not served. Watch
/// sends the current status (SERVICE_UNKNOWN for a service that is not served) and then
/// every change. When shutdown begins every status turns NOT_SERVING; watchers receive that
/// and their streams end with UNAVAILABLE, so a watcher does not hold the shutdown for the
/// whole grace period.
public final class HealthService: Sendable {
    public static let serviceName = "grpc.health.v1.Health"
    public typealias ServingStatus = HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: ServingStatus]
        var watchers: [Int: AsyncStream<ServingStatus>.Continuation] = [:]
        var nextWatcher = 0
        var shuttingDown = false
    }

    private let state: Mutex<State>

    /// All `services` and the overall status start SERVING.
    public init(services: [String]) {
        var statuses: [String: ServingStatus] = ["": .serving]
        for service in services { statuses[service] = .serving }
        state = Mutex(State(statuses: statuses))
    }

    /// Changes one service's status ("" is the overall status) and tells its watchers.
    public func setStatus(_ status: ServingStatus, forService service: String) {
        let continuations = state.withLock { state -> [AsyncStream<ServingStatus>.Continuation] in
            state.statuses[service] = status
            return Array(state.watchers.values)
        }
        // Every watcher re-reads its own service's status; the stream keeps only the newest.
        for continuation in continuations { continuation.yield(status) }
    }

    /// Turns every status NOT_SERVING and ends all Watch streams.
    public func beginShutdown() {
        let continuations = state.withLock { state -> [AsyncStream<ServingStatus>.Continuation] in
            state.shuttingDown = true
            for service in state.statuses.keys { state.statuses[service] = .notServing }
            return Array(state.watchers.values)
        }
        for continuation in continuations { continuation.finish() }
    }

    public func status(ofService service: String) -> ServingStatus? {
        state.withLock { $0.statuses[service] }
    }

    public var methods: [GRPCMethod] {
        let prefix = "/\(Self.serviceName)/"
        return [
            ProtobufRoute.unary(prefix + "Check") { [self] (request: HealthCheckRequest, _) in
                guard let status = status(ofService: request.service) else {
                    throw GRPCStatus(.notFound, "unknown service \(GRPCStatus.quoting(request.service))")
                }
                return HealthCheckResponse(status: status)
            },
            ProtobufRoute.serverStreaming(prefix + "Watch") { [self] (request: HealthCheckRequest, writer: ProtobufRoute.ResponseWriter<HealthCheckResponse>, _) in
                try await watch(request.service, writer)
            },
        ]
    }

    private func watch(_ service: String, _ writer: ProtobufRoute.ResponseWriter<HealthCheckResponse>) async throws {
        // Only the newest change matters to a watcher, so a slow one never queues up.
        let (changes, continuation) = AsyncStream<ServingStatus>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let watcher: Int? = state.withLock { state in
            guard !state.shuttingDown else { return nil }
            let id = state.nextWatcher
            state.nextWatcher += 1
            state.watchers[id] = continuation
            return id
        }
        guard let watcher else {
            try await writer.write(HealthCheckResponse(status: .notServing))
            throw GRPCStatus(.unavailable, "the server is shutting down")
        }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: watcher) } }

        var sent = status(ofService: service) ?? .serviceUnknown
        try await writer.write(HealthCheckResponse(status: sent))
        for await _ in changes {
            let current = status(ofService: service) ?? .serviceUnknown
            if current != sent {
                sent = current
                try await writer.write(HealthCheckResponse(status: current))
            }
        }
        // The stream ended: either the call was cancelled, or shutdown began.
        try Task.checkCancellation()
        let final = status(ofService: service) ?? .serviceUnknown
        if final != sent {
            try await writer.write(HealthCheckResponse(status: final))
        }
        throw GRPCStatus(.unavailable, "the server is shutting down")
    }
}
