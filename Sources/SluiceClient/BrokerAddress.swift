import Logging
public import SluiceWire

/// Where a broker listens, and how to open connections to it. Producers and consumers keep
/// this rather than a connection, so they can reconnect after a connection is lost.
public struct BrokerAddress: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// Used for every connection (host and port are taken from this value).
    public var transport: GRPCClientConfiguration

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
        transport = GRPCClientConfiguration(host: host, port: port)
        transport.keepaliveInterval = Self.keepaliveInterval
    }

    /// Sluice clients ping an idle connection this often, so a broker that went silent (a
    /// dead host, a dropped network path) is noticed within this plus the keepalive timeout
    /// even when no request is waiting. The wire's generic default is off because other
    /// gRPC servers penalise frequent pings; Sluice's broker does not.
    public static let keepaliveInterval: Duration = .seconds(60)

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// How long opening a connection may take: TCP connect plus the broker's HTTP/2
    /// SETTINGS (`transport.connectTimeout`, 10 s by default). A broker that accepts the
    /// connection but never answers (frozen, or behind a path that stopped forwarding)
    /// fails the attempt with UNAVAILABLE when it passes.
    public var connectTimeout: Duration {
        get { transport.connectTimeout }
        set { transport.connectTimeout = newValue }
    }

    /// A new connection; throws `GRPCStatus` UNAVAILABLE when the broker cannot be reached
    /// within `connectTimeout`, `CancellationError` at once when the task is cancelled.
    package func connect(logger: Logger) async throws -> GRPCClientConnection {
        try await connect(logger: logger, timeout: nil)
    }

    /// `connect(logger:)` with `timeout` (a client's own setting) in place of `connectTimeout`.
    func connect(logger: Logger, timeout: Duration?) async throws -> GRPCClientConnection {
        var configuration = transport
        configuration.host = host
        configuration.port = port
        if let timeout { configuration.connectTimeout = timeout }
        let bound = configuration.connectTimeout
        let description = description
        let connecting = Task { [counted = ClientTasks.begin()] in
            defer { counted.end() }
            return try await GRPCClientConnection.connect(configuration, logger: logger)
        }
        do {
            // The connect itself is bounded by `bound` (its preface timeout) but does not end
            // when its task is cancelled; the slack covers a timer that fires late.
            return try await firstOf(
                within: bound + .seconds(1),
                timeoutError: GRPCStatus(.unavailable, "no connection to \(description) within \(bound)")
            ) { try await connecting.value }
        } catch {
            // Cancelled or timed out: a connection that still opens later is closed, not leaked.
            Task { [counted = ClientTasks.begin()] in
                defer { counted.end() }
                try? await connecting.value.close()
            }
            throw error
        }
    }
}

/// The full method paths of `sluice.v1.Broker`.
enum BrokerMethod {
    static let produce = "/sluice.v1.Broker/Produce"
    static let subscribe = "/sluice.v1.Broker/Subscribe"
}

extension Duration {
    /// Whole milliseconds, saturating.
    var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (millis, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        return overflow ? .max : millis + attoseconds / 1_000_000_000_000_000
    }
}
