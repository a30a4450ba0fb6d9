import SluiceWire

/// One etcd member's client address: `host:port` (`[v6]:port` for an IPv6 address).
public struct EtcdEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        precondition((1...65535).contains(port), "an etcd port is 1...65535")
        self.host = host
        self.port = port
    }

    /// `host:port` or `[v6]:port`; nil for anything else (no scheme, no path).
    public init?(_ text: Substring) {
        guard let (host, port) = HostPortText.split(text), !host.contains("/"), port != 0 else { return nil }
        self.init(host: String(host), port: port)
    }

    /// A comma-separated list, `a:2379,b:2379`: at least one, no duplicates.
    public static func list(_ text: Substring) throws(EtcdAddressError) -> [EtcdEndpoint] {
        var endpoints: [EtcdEndpoint] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let endpoint = EtcdEndpoint(part) else {
                throw EtcdAddressError("\"\(part)\" is not an etcd endpoint (HOST:PORT)")
            }
            guard !endpoints.contains(endpoint) else { throw EtcdAddressError("etcd endpoint \(endpoint) is listed twice") }
            endpoints.append(endpoint)
        }
        return endpoints
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A cluster's etcd endpoints and name, as `sluice serve --cluster` takes them:
/// `etcd://HOST:PORT[,HOST:PORT...][/NAME]`.
///
/// NAME is the cluster's name (letters, digits, `.`, `_`, `-`; "default" when left out):
/// every key of the cluster lives under `/sluice/NAME/` (`ClusterKeys`), so one etcd can
/// hold several clusters.
public struct EtcdClusterAddress: Sendable, Hashable, CustomStringConvertible {
    public static let scheme = "etcd://"
    public static let defaultClusterName = "default"

    public var endpoints: [EtcdEndpoint]
    public var clusterName: String

    public init(endpoints: [EtcdEndpoint], clusterName: String = EtcdClusterAddress.defaultClusterName) {
        precondition(!endpoints.isEmpty, "a cluster address names at least one etcd endpoint")
        precondition(Self.isValidClusterName(clusterName), "invalid cluster name \(clusterName)")
        self.endpoints = endpoints
        self.clusterName = clusterName
    }

    public init(parsing text: String) throws(EtcdAddressError) {
        guard text.hasPrefix(Self.scheme) else {
            throw EtcdAddressError("\"\(text)\" does not start with \(Self.scheme) (etcd://HOST:PORT[,HOST:PORT...][/NAME])")
        }
        let rest = text.dropFirst(Self.scheme.count)
        let hosts: Substring
        var name = Self.defaultClusterName
        if let slash = rest.firstIndex(of: "/") {
            hosts = rest[..<slash]
            let given = String(rest[rest.index(after: slash)...])
            guard Self.isValidClusterName(given) else {
                throw EtcdAddressError(
                    "cluster name \"\(given)\" must be 1 to 64 letters, digits, '.', '_' or '-' (and not \".\" or \"..\")")
            }
            name = given
        } else {
            hosts = rest
        }
        self.init(endpoints: try EtcdEndpoint.list(hosts), clusterName: name)
    }

    /// A name that is one path segment of a key and reads the same everywhere.
    public static func isValidClusterName(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), name != ".", name != ".." else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }

    public var description: String {
        let hosts = endpoints.map(\.description).joined(separator: ",")
        return clusterName == Self.defaultClusterName ? "\(Self.scheme)\(hosts)" : "\(Self.scheme)\(hosts)/\(clusterName)"
    }
}

/// A malformed etcd endpoint list or cluster address; the message says what and why.
public struct EtcdAddressError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
