public import Logging
public import NIOCore
import SluiceAPI
import SluiceWire
import Synchronization

/// A broker's membership of a cluster: its key `/sluice/<cluster>/brokers/<id>`
/// (`ClusterKeys`) holding its `BrokerInfo`, attached to a lease the broker keeps alive
/// while it runs. An expired lease deletes the key: the broker is gone.
///
/// Registering is a transaction that creates the key only if it does not exist, so two
/// brokers with the same id cannot both be registered: the second gets
/// `BrokerRegistrationError.idInUse`. If the lease is lost while running (etcd unreachable
/// for longer than its time to live, or the process paused), the broker registers again
/// with a new lease as soon as etcd answers; if meanwhile another broker took the id, the
/// registration ends with `idInUse` (`ended()`), and the broker must stop.
public final class BrokerRegistration: Sendable {
    public let info: BrokerInfo
    public let key: ByteBuffer
    private let client: EtcdClient
    private let keepAlive: Mutex<EtcdLeaseKeepAlive>
    private let maintenance: Mutex<Task<BrokerRegistrationError?, Never>?>

    /// Registers `info` under `keys`, with a lease of `leaseTTLSeconds`, and keeps it
    /// alive. Throws `BrokerRegistrationError.idInUse` when another broker holds the id,
    /// and `GRPCStatus` when etcd cannot be reached.
    public static func register(
        _ info: BrokerInfo, keys: ClusterKeys, client: EtcdClient,
        leaseTTLSeconds: Int64 = ClusterLimits.defaults.brokerLeaseTTLSeconds.value, logger: Logger
    ) async throws -> BrokerRegistration {
        let key = keys.broker(info.id)
        let lease = try await claim(key: key, info: info, ttlSeconds: leaseTTLSeconds, previousLease: nil, client: client)
        let registration = BrokerRegistration(info: info, key: key, client: client, keepAlive: client.lease.keepAlive(lease))
        let task = Task { await registration.maintain(ttlSeconds: leaseTTLSeconds, logger: logger) }
        registration.maintenance.withLock { $0 = task }
        logger.info("registered in etcd", metadata: ["key": "\(String(buffer: key))", "lease": "\(lease)"])
        return registration
    }

    private init(info: BrokerInfo, key: ByteBuffer, client: EtcdClient, keepAlive: EtcdLeaseKeepAlive) {
        self.info = info
        self.key = key
        self.client = client
        self.keepAlive = Mutex(keepAlive)
        self.maintenance = Mutex(nil)
    }

    /// The lease the registration holds now (a new one after each re-registration).
    public var lease: EtcdLease { keepAlive.withLock { $0.lease } }

    /// Waits until the registration ends: nil after `deregister()`, the error when another
    /// broker took the id while this one's lease was lost.
    public func ended() async -> BrokerRegistrationError? {
        guard let task = maintenance.withLock({ $0 }) else { return nil }
        return await task.value
    }

    /// Leaves the cluster: stops renewing and revokes the lease, which deletes the key at
    /// once (watchers see the broker go in the same revision). Throws `GRPCStatus` if etcd
    /// cannot be told; the key then goes when the lease expires.
    public func deregister() async throws {
        let task = maintenance.withLock { $0 }
        task?.cancel()
        _ = await task?.value
        await keepAlive.withLock { $0 }.stop()
        try await client.lease.revoke(lease.id)
    }

    /// Waits for the lease to be lost and registers again, until deregistered or the id is
    /// taken.
    private func maintain(ttlSeconds: Int64, logger: Logger) async -> BrokerRegistrationError? {
        while true {
            let current = keepAlive.withLock { $0 }
            // Deregistering cancels this task; the wait must end then, renewals with it.
            let loss = await withTaskCancellationHandler { await current.lost() } onCancel: { current.cancel() }
            if loss.reason == .stopped || Task.isCancelled { return nil }
            logger.warning("broker registration lost its lease; registering again", metadata: ["reason": "\(loss)"])
            var pause = Duration.milliseconds(200)
            while true {
                if Task.isCancelled { return nil }
                do {
                    let lease = try await Self.claim(
                        key: key, info: info, ttlSeconds: ttlSeconds, previousLease: loss.lease.id, client: client)
                    if Task.isCancelled {
                        // Deregistered meanwhile: the new lease must not outlive that.
                        _ = try? await client.lease.revoke(lease.id)
                        return nil
                    }
                    keepAlive.withLock { $0 = client.lease.keepAlive(lease) }
                    logger.notice("registered in etcd again", metadata: ["lease": "\(lease)"])
                    break
                } catch let error as BrokerRegistrationError {
                    logger.error("broker registration ended: \(error)")
                    return error
                } catch {
                    logger.warning("registering again failed; retrying", metadata: ["error": "\(error)"])
                    // Pauses between attempts at an etcd that does not answer, growing to a cap.
                    try? await Task.sleep(for: pause)
                    pause = min(pause * 2, ClusterLimits.defaults.retryPauseCap.value)
                }
            }
        }
    }

    /// Grants a lease and creates the key on it if the key does not exist. A key still
    /// attached to `previousLease` (this broker's own registration, which etcd kept while
    /// the broker could not confirm its lease) is taken over by comparing its mod
    /// revision. On any failure the new lease is revoked, so no lease is left behind.
    static func claim(
        key: ByteBuffer, info: BrokerInfo, ttlSeconds: Int64, previousLease: Int64?, client: EtcdClient
    ) async throws -> EtcdLease {
        let lease = try await client.lease.grant(ttlSeconds: ttlSeconds)
        do {
            let value = info.encoded()
            let created = try await client.kv.txn(
                compare: [.absent(key)], success: [.put(key, value, lease: lease.id)], failure: [.range(key)])
            if created.succeeded { return lease }
            guard let holder = created.responses.first?.range?.kvs.first else {
                // Deleted between the comparison and the read: cannot happen within one
                // transaction, which reads at its own revision.
                throw GRPCStatus(.internalError, "etcd reported \(String(buffer: key)) both present and absent")
            }
            if let previousLease, holder.lease == previousLease {
                let takenOver = try await client.kv.txn(
                    compare: [.modRevision(key, .equal, holder.modRevision)],
                    success: [.put(key, value, lease: lease.id)])
                if takenOver.succeeded {
                    _ = try? await client.lease.revoke(previousLease)
                    return lease
                }
            }
            throw BrokerRegistrationError.idInUse(
                id: info.id, key: String(buffer: key), holder: BrokerInfo(decoding: holder.value), lease: holder.lease)
        } catch {
            _ = try? await client.lease.revoke(lease.id)
            throw error
        }
    }
}

/// Why a broker could not register, or stopped being registered.
public enum BrokerRegistrationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another live broker holds the id: its key exists, attached to its lease.
    case idInUse(id: UInt32, key: String, holder: BrokerInfo?, lease: Int64)

    public var description: String {
        switch self {
        case .idInUse(let id, let key, let holder, let lease):
            let who = holder.map { "\($0)" } ?? "an unreadable value"
            return "broker id \(id) is already registered (\(key) holds \(who), lease \(String(lease, radix: 16))): "
                + "another broker with this id is running; give each broker its own --broker-id"
        }
    }
}
