public import Logging
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

    /// A new connection; throws `GRPCStatus` UNAVAILABLE when the broker cannot be reached.
    public func connect(logger: Logger) async throws -> GRPCClientConnection {
        var configuration = transport
        configuration.host = host
        configuration.port = port
        return try await GRPCClientConnection.connect(configuration, logger: logger)
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
