import NIOCore
public import SluiceAPI
import SluiceWire

/// A lease granted by etcd: keys attached to it live as long as it is renewed within its
/// time to live, and are deleted together when it expires or is revoked. A broker's
/// registration is such a key.
public struct EtcdLease: Sendable, Hashable, CustomStringConvertible {
    /// etcd's id for it.
    public let id: Int64
    /// The time to live etcd granted, in whole seconds (at least etcd's minimum).
    public let ttlSeconds: Int64
    /// Just before the grant was sent: the lease cannot expire earlier than this plus its
    /// time to live, so that is when its holder must stop counting on it.
    public let requestedAt: ContinuousClock.Instant

    public init(id: Int64, ttlSeconds: Int64, requestedAt: ContinuousClock.Instant) {
        precondition(ttlSeconds > 0, "a lease lives at least a second")
        self.id = id
        self.ttlSeconds = ttlSeconds
        self.requestedAt = requestedAt
    }

    public var ttl: Duration { .seconds(ttlSeconds) }

    public var description: String { "lease \(String(id, radix: 16)) (ttl \(ttlSeconds) s)" }
}

/// A client for etcd's lease service (`etcdserverpb.Lease`, `proto/etcd/etcdserverpb/lease.proto`).
///
/// Throws `GRPCStatus` when etcd or the transport fails a call. Revoke and TimeToLive are
/// sent again to the next member after UNAVAILABLE (doing them twice changes nothing); a
/// grant is not (a second grant would leave a stray lease to expire on its own).
public final class EtcdLeaseClient: Sendable {
    static let grantPath = "/etcdserverpb.Lease/LeaseGrant"
    static let revokePath = "/etcdserverpb.Lease/LeaseRevoke"
    static let keepAlivePath = "/etcdserverpb.Lease/LeaseKeepAlive"
    static let timeToLivePath = "/etcdserverpb.Lease/LeaseTimeToLive"

    let connector: EtcdConnector

    public init(connector: EtcdConnector) {
        self.connector = connector
    }

    /// A new lease living `ttlSeconds` unless renewed (etcd raises a lower value to its
    /// minimum, 2 s with default election settings).
    public func grant(ttlSeconds: Int64) async throws -> EtcdLease {
        precondition(ttlSeconds > 0, "a lease lives at least a second")
        let requestedAt = ContinuousClock.now
        let response: EtcdLeaseGrantResponse = try await connector.unary(
            Self.grantPath, EtcdLeaseGrantRequest(ttl: ttlSeconds), idempotent: false)
        guard response.error.isEmpty, response.id != 0, response.ttl > 0 else {
            throw GRPCStatus(.unavailable, "etcd granted no lease: \(response.error.isEmpty ? "id \(response.id), ttl \(response.ttl)" : response.error)")
        }
        return EtcdLease(id: response.id, ttlSeconds: response.ttl, requestedAt: requestedAt)
    }

    /// Revokes the lease: its keys are deleted at once, in one revision. Returns false
    /// when etcd no longer knew it (expired or revoked before).
    @discardableResult
    public func revoke(_ id: Int64) async throws -> Bool {
        do {
            let _: EtcdLeaseRevokeResponse = try await connector.unary(
                Self.revokePath, EtcdLeaseRevokeRequest(id: id), idempotent: true)
            return true
        } catch let status as GRPCStatus where status.code == .notFound {
            // etcd's "requested lease not found": the lease is already gone.
            return false
        }
    }

    /// The lease's remaining time (`ttl`, -1 once it no longer exists) and, when `keys`,
    /// the keys attached to it.
    public func timeToLive(_ id: Int64, keys: Bool = false) async throws -> EtcdLeaseTimeToLiveResponse {
        try await connector.unary(Self.timeToLivePath, EtcdLeaseTimeToLiveRequest(id: id, keys: keys), idempotent: true)
    }

    /// Starts renewing `lease` every third of its time to live until it is lost or
    /// `stop()`ped; see `EtcdLeaseKeepAlive`.
    public func keepAlive(_ lease: EtcdLease) -> EtcdLeaseKeepAlive {
        EtcdLeaseKeepAlive(lease: lease, connector: connector)
    }
}
