import Logging
import NIOCore
import SluiceAPI
import SluiceWire
import Synchronization

/// Keeps one lease alive: a task renews it over etcd's LeaseKeepAlive stream every third of
/// its time to live, and ends when the lease is lost, reporting why (`lost()`).
///
/// The holder's view of the lease is conservative: a renewal confirmed with time to live T
/// extends it to T after the renewal was *sent*, so the holder stops counting on the lease
/// no later than etcd expires it. A renewal not answered within a third of the time to live
/// counts as a lost connection: the stream is reopened on the next etcd endpoint, and the
/// lease is lost only if no renewal is confirmed before it would expire.
public final class EtcdLeaseKeepAlive: Sendable {
    public let lease: EtcdLease
    private let progress: Progress
    private let task: Task<EtcdLeaseLoss, Never>

    init(lease: EtcdLease, connector: EtcdConnector) {
        self.lease = lease
        let progress = Progress()
        self.progress = progress
        task = Task { await Self.renew(lease, connector: connector, progress: progress) }
    }

    /// Waits until the lease is lost (etcd says it no longer exists, or no renewal could be
    /// confirmed in time) or `stop()` was called; says which. Any number of callers.
    public func lost() async -> EtcdLeaseLoss {
        await task.value
    }

    /// Stops renewing (the lease itself is left to expire: revoke it to end it at once).
    /// Returns once the renewing task has ended.
    public func stop() async {
        task.cancel()
        _ = await task.value
    }

    /// Stops renewing without waiting for the renewing task to end.
    public func cancel() {
        task.cancel()
    }

    /// Renewals etcd confirmed so far.
    public var renewals: Int { progress.renewals.load(ordering: .relaxed) }

    /// Until when, at the latest, the lease is known to live (the last confirmed renewal's
    /// sending time plus the time to live it returned).
    public var confirmedUntil: ContinuousClock.Instant { progress.confirmedUntil.withLock { $0 } }

    final class Progress: Sendable {
        let renewals = Atomic<Int>(0)
        let confirmedUntil = Mutex<ContinuousClock.Instant>(.now)
    }

    deinit {
        task.cancel()
    }

    private static func renew(_ lease: EtcdLease, connector: EtcdConnector, progress: Progress) async -> EtcdLeaseLoss {
        let logger = connector.logger
        let interval = lease.ttl / ClusterLimits.defaults.renewalsPerTTL.value
        var expiresAt = lease.requestedAt + lease.ttl
        progress.confirmedUntil.withLock { $0 = expiresAt }
        var nextRenewal = ContinuousClock.now
        var stream: (call: GRPCClientCall, connection: GRPCClientConnection)?
        var lastProblem = "no renewal was answered"
        defer { stream?.call.cancel() }
        while true {
            // A timer, not synchronisation: renewals are due at fixed times.
            try? await Task.sleep(until: min(nextRenewal, expiresAt), clock: .continuous)
            if Task.isCancelled { return EtcdLeaseLoss(lease: lease, reason: .stopped, detail: "renewals were stopped") }
            let sentAt = ContinuousClock.now
            guard sentAt < expiresAt else {
                return EtcdLeaseLoss(lease: lease, reason: .unconfirmed, detail: lastProblem)
            }
            do {
                if stream == nil { stream = try await connector.openStream(EtcdLeaseClient.keepAlivePath) }
                guard let (call, connection) = stream else { preconditionFailure("opened above") }
                try await call.send(EtcdLeaseKeepAliveRequest(id: lease.id).protobufBytes())
                let answer = try await untilDeadline(min(expiresAt, sentAt + interval)) {
                    var responses = call.responses.makeAsyncIterator()
                    return try await responses.next()
                }
                guard let answer, let bytes = answer else {
                    // No answer in time (a frozen member), or the stream ended: try the next one.
                    lastProblem = answer == nil ? "a renewal was not answered in time" : "etcd ended the keep-alive stream"
                    call.cancel()
                    stream = nil
                    await connector.failed(connection)
                    continue
                }
                let response = try EtcdLeaseKeepAliveResponse(protobuf: bytes)
                guard response.ttl > 0 else {
                    return EtcdLeaseLoss(lease: lease, reason: .expired, detail: "etcd no longer knows the lease")
                }
                expiresAt = sentAt + .seconds(response.ttl)
                progress.confirmedUntil.withLock { $0 = expiresAt }
                progress.renewals.add(1, ordering: .relaxed)
                nextRenewal = sentAt + interval
            } catch {
                if Task.isCancelled { return EtcdLeaseLoss(lease: lease, reason: .stopped, detail: "renewals were stopped") }
                lastProblem = "\(error)"
                logger.info("etcd lease keep-alive failed, retrying", metadata: ["lease": "\(lease)", "error": "\(error)"])
                if let (call, connection) = stream {
                    call.cancel()
                    await connector.failed(connection)
                }
                stream = nil
                // Retry soon, not at once: the next endpoint may be failing the same way.
                nextRenewal = ContinuousClock.now + min(interval, .milliseconds(200))
            }
        }
    }
}

/// Why a kept-alive lease ended.
public struct EtcdLeaseLoss: Error, Sendable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// etcd answered a renewal with no time to live: the lease expired or was revoked.
        case expired
        /// No renewal was confirmed before the lease would expire: it must be taken as gone.
        case unconfirmed
        /// `stop()` was called.
        case stopped
    }

    public let lease: EtcdLease
    public let reason: Reason
    /// The last failure seen, for the log.
    public let detail: String

    public var description: String {
        switch reason {
        case .expired: "\(lease) expired or was revoked (\(detail))"
        case .unconfirmed: "\(lease) could not be renewed before it would expire (\(detail))"
        case .stopped: "\(lease) is no longer renewed (\(detail))"
        }
    }
}
