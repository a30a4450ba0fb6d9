import Synchronization

/// This broker as Metadata names it: its id, and the address clients reach it at: the
/// advertised one when given, else the address it listens on, known once it is bound.
final class BrokerIdentity: Sendable {
    let id: UInt32
    private let advertised: String?
    private let listening = Mutex("")

    init(id: UInt32, advertised: String? = nil) {
        self.id = id
        self.advertised = advertised
    }

    var address: String { advertised ?? listening.withLock { $0 } }

    /// The server is bound at `host:port`; an IPv6 host is bracketed (`[::1]:9092`).
    func bound(host: String, port: Int) {
        listening.withLock { $0 = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }
}
