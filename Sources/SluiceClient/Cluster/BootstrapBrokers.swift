import Logging
import SluiceWire

extension BrokerAddress {
    /// A broker named `host:port` (`[v6]:port` for an IPv6 host), as `--broker`, a
    /// `MetadataBroker.address` and a `LeaderHint.address` write it; nil when it does not parse.
    /// `settings` lends its transport settings (keepalive, timeouts, HTTP/2 windows), so every
    /// broker a client learns of is reached as its bootstrap brokers are.
    public init?(hostPort: String, settings: BrokerAddress? = nil) {
        guard let (host, port) = HostPortText.split(hostPort[...]) else { return nil }
        if var settings {
            settings.host = String(host)
            settings.port = port
            self = settings
        } else {
            self.init(host: String(host), port: port)
        }
    }

    /// A connection to the first of `brokers` that answers, tried in turn, each try bounded
    /// by its connect timeout (or `timeout`). Throws UNAVAILABLE naming the last failure when
    /// none answers, `CancellationError` at once when the task is cancelled.
    static func connectFirst(
        of brokers: [BrokerAddress], logger: Logger, timeout: Duration? = nil
    ) async throws -> (GRPCClientConnection, BrokerAddress) {
        precondition(!brokers.isEmpty, "a client needs at least one bootstrap broker")
        var failures: [String] = []
        for broker in brokers {
            do {
                return (try await broker.connect(logger: logger, timeout: timeout), broker)
            } catch let status as GRPCStatus where brokers.count > 1 {
                logger.debug("bootstrap broker did not answer; trying the next", metadata: [
                    "broker": "\(broker)", "status": "\(status.code)"])
                failures.append("\(broker): \(status.message)")
            }
        }
        throw GRPCStatus(.unavailable, "no bootstrap broker answered (\(failures.joined(separator: "; ")))")
    }
}
