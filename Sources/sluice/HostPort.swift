import ArgumentParser
import Foundation
import SluiceWire

/// A `host:port` argument: `127.0.0.1:9092`, `localhost:9092`, `[::1]:9092`.
struct HostPort: ExpressibleByArgument, CustomStringConvertible, Sendable {
    var host: String
    var port: Int

    init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    init?(argument: String) {
        guard let (host, port) = HostPortText.split(argument[...]) else { return nil }
        self.host = String(host)
        self.port = port
    }

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static var defaultValueDescription: String { "host:port" }
}

/// `--broker a:9092,b:9092,c:9092`: the bootstrap brokers a client tries in turn, the first
/// that answers serving it; one `host:port` is a list of one.
struct BrokerList: ExpressibleByArgument, CustomStringConvertible, Sendable {
    var brokers: [HostPort]

    init(_ brokers: [HostPort]) {
        precondition(!brokers.isEmpty, "a broker list is never empty")
        self.brokers = brokers
    }

    init?(argument: String) {
        let parsed = argument.split(separator: ",", omittingEmptySubsequences: false)
            .map { HostPort(argument: $0.trimmingCharacters(in: .whitespaces)) }
        guard !parsed.isEmpty, !parsed.contains(where: { $0 == nil }) else { return nil }
        brokers = parsed.compactMap { $0 }
    }

    var description: String { brokers.map(\.description).joined(separator: ",") }

    static var defaultValueDescription: String { "host:port[,host:port...]" }

    static let local = BrokerList([HostPort(host: "127.0.0.1", port: 9092)])
}
