import ArgumentParser
import Logging
import NIOCore
import SluiceCluster
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `sluice serve`'s cluster flags: without `--cluster` the broker is a single node and
/// none of this runs (the Quick start); with it, the broker registers in etcd
/// (docs/architecture.md, "Cluster metadata in etcd") once it listens, and leaves when it
/// shuts down.
struct ServeClusterOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Join a cluster whose metadata lives in etcd: etcd://HOST:PORT[,HOST:PORT...][/NAME].",
        discussion: "The endpoints are etcd members' client addresses, tried in turn when one fails. NAME (default \"default\") keeps clusters sharing one etcd apart: every key is under /sluice/NAME/. The broker registers under /sluice/NAME/brokers/<--broker-id>; a broker id already registered refuses to start."),
        transform: { try EtcdClusterAddress(parsing: $0) })
    var cluster: EtcdClusterAddress?

    @Option(help: "HOST:PORT at which clients and other brokers reach this broker (default: the address it listens on).")
    var advertisedAddress: HostPort?

    @Option(help: "This broker's rack (failure domain), for rack-aware replica placement.")
    var rack: String?

    @Option(help: .limit(
        "Seconds this broker's etcd lease lives without renewal: how long a broker that stopped without leaving still counts as live.",
        why: ClusterLimits.defaults.brokerLeaseTTLSeconds.why))
    var leaseTtl: Int64 = ClusterLimits.defaults.brokerLeaseTTLSeconds.value

    @Option(help: .limit(
        "Seconds a broker stopping on SIGTERM waits, still serving, for the partitions it leads to be led by other in-sync replicas (a controlled shutdown; 0: do not wait).",
        why: ClusterLimits.defaults.controlledShutdownTimeout.why))
    var controlledShutdownSeconds: Int64 = ClusterLimits.defaults.controlledShutdownTimeout.value.components.seconds

    @Option(help: .limit(
        "Seconds between the controller's moves of leadership back to each partition's preferred replica once it is in sync (0: never).",
        why: ClusterLimits.defaults.leaderRebalanceInterval.why))
    var leaderRebalanceIntervalSeconds: Int64 = ClusterLimits.defaults.leaderRebalanceInterval.value.components.seconds

    func validate() throws {
        if cluster == nil {
            for (given, flag) in [(advertisedAddress != nil, "--advertised-address"), (rack != nil, "--rack")] where given {
                throw ValidationError("\(flag) needs --cluster")
            }
        }
        if let rack, rack.isEmpty || rack.utf8.contains(0) { throw ValidationError("--rack must be a non-empty name") }
        guard leaseTtl >= 1 else { throw ValidationError("--lease-ttl must be at least 1 second") }
        guard leaderRebalanceIntervalSeconds >= 0 else { throw ValidationError("--leader-rebalance-interval-seconds must be 0 or more") }
        guard controlledShutdownSeconds >= 0 else { throw ValidationError("--controlled-shutdown-seconds must be 0 or more") }
    }

    /// The cache a broker in a cluster serves from, empty (revision 0: nothing read yet)
    /// until `join` starts the watcher that feeds it; nil without `--cluster`.
    func emptyMetadataCache() -> ClusterMetadataCache? {
        guard let cluster else { return nil }
        return ClusterMetadataCache(ClusterKeyspace(keys: ClusterKeys(clusterName: cluster.clusterName), revision: 0).snapshot)
    }

    /// Registers the broker listening at `listening`, then watches the cluster's metadata
    /// (into `metadata` when given: the cache the server was configured with) and stands
    /// for controller; nil without `--cluster`. Throws a message for the operator when it
    /// cannot.
    func join(
        brokerID: UInt32, listening: HostPort, metadata: ClusterMetadataCache? = nil, logger: Logger
    ) async throws -> ClusterMembership? {
        guard let cluster else { return nil }
        let advertised = advertisedAddress ?? listening
        guard !["0.0.0.0", "::"].contains(advertised.host) else {
            throw ClusterJoinError("listening on \(listening) says nothing about where to reach this broker: give --advertised-address")
        }
        let client = EtcdClient(endpoints: cluster.endpoints, logger: logger)
        let info = BrokerInfo(id: brokerID, address: advertised.description, rack: rack)
        let keys = ClusterKeys(clusterName: cluster.clusterName)
        let registration: BrokerRegistration
        do {
            registration = try await BrokerRegistration.register(
                info, keys: keys, client: client, leaseTTLSeconds: leaseTtl, logger: logger)
        } catch {
            await client.close()
            throw ClusterJoinError("cannot register broker \(brokerID) in \(cluster): \(error)")
        }
        var watcher: ClusterMetadataWatcher?
        do {
            let started = try await ClusterMetadataWatcher.start(client: client, keys: keys, into: metadata, logger: logger)
            watcher = started
            let registry = try await BrokerRegistry.start(client: client, keys: keys, logger: logger)
            let candidacy = ControllerCandidacy.start(
                info, keys: keys, client: client, registry: registry, leaseTTLSeconds: leaseTtl,
                leaderRebalanceInterval: leaderRebalanceIntervalSeconds > 0 ? .seconds(leaderRebalanceIntervalSeconds) : nil,
                logger: logger)
            return ClusterMembership(client: client, registration: registration, watcher: started, registry: registry, candidacy: candidacy)
        } catch {
            await watcher?.stop()
            _ = try? await registration.deregister()
            await client.close()
            throw ClusterJoinError("cannot read the metadata of \(cluster): \(error)")
        }
    }
}

/// A registered broker's hold on its cluster membership: its registration, the metadata
/// it watches (`metadata`, what Produce, Subscribe and the Metadata RPC consult) and its
/// candidacy for controller (`localController`, the controller while this broker is the
/// elected one).
struct ClusterMembership {
    let client: EtcdClient
    let registration: BrokerRegistration
    let watcher: ClusterMetadataWatcher
    let registry: BrokerRegistry
    let candidacy: ControllerCandidacy

    var metadata: ClusterMetadataCache { watcher.cache }
    /// The controller while this broker is the elected one; nil otherwise.
    var localController: (any TopicController)? { candidacy.controller }

    /// Leaves the cluster: a controller steps down first (its key deleted in a fenced
    /// Txn, its lease revoked) so another broker is elected while this one still
    /// registers; then the lease is revoked, so the key goes now rather than after the
    /// lease's time to live. With `handOver` (a controlled shutdown), it then waits at most
    /// that long, still serving, until the metadata shows every partition it led moved to
    /// another live in-sync replica: producers and subscribers are told NOT_LEADER with the
    /// new leader's name instead of finding the broker gone, and no partition is without
    /// a leader while it stops.
    func leave(brokerID: UInt32, handOver: Duration?, logger: Logger) async {
        await candidacy.stop()
        await registry.stop()
        let deregistered: Bool
        do {
            try await registration.deregister()
            deregistered = true
            logger.info("left the cluster: the etcd lease is revoked", metadata: ["key": "\(String(buffer: registration.key))"])
        } catch {
            deregistered = false
            logger.warning("could not revoke the etcd lease; the registration ends when it expires", metadata: ["error": "\(error)"])
        }
        if let handOver, deregistered { await awaitHandOver(brokerID: brokerID, within: handOver, logger: logger) }
        await watcher.stop()
        await client.close()
    }

    private func awaitHandOver(brokerID: UInt32, within bound: Duration, logger: Logger) async {
        let leading = metadata.snapshot.partitionsToHandOver(from: brokerID)
        guard !leading.isEmpty else { return }
        let cache = metadata
        let moved = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await snapshot in cache.snapshots() where snapshot.partitionsToHandOver(from: brokerID).isEmpty { return true }
                return false
            }
            group.addTask {
                // A bound, not synchronisation: the hand-over is waited for above.
                try? await Task.sleep(for: bound)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        if moved {
            logger.notice("handed over the leadership of \(leading.count) partition(s) before stopping", metadata: ["partitions": "\(leading.joined(separator: ","))"])
        } else {
            let left = metadata.snapshot.partitionsToHandOver(from: brokerID)
            logger.warning("the leadership of \(left.count) partition(s) was not handed over within \(bound); stopping anyway", metadata: ["partitions": "\(left.joined(separator: ","))"])
        }
    }
}

/// Why `sluice serve` stops.
enum ServeEnding: Sendable {
    case signal(String)
    /// The registration ended for good while serving: another broker took the id.
    case expelled(String)

    /// Whichever comes first: a shutdown signal, or the end of the cluster registration.
    /// An expulsion raises SIGTERM at this process, so the one wait for a signal (which
    /// also guards the shutdown against a second signal) ends either way.
    static func first(of signal: ShutdownSignal, membership: ClusterMembership?) async -> ServeEnding {
        guard let registration = membership?.registration else { return .signal(await signal.wait()) }
        let expulsion = Mutex<String?>(nil)
        Task {
            // Ends by itself when the broker deregisters.
            guard let error = await registration.ended() else { return }
            expulsion.withLock { $0 = "\(error)" }
            kill(getpid(), SIGTERM)
        }
        let name = await signal.wait()
        if let reason = expulsion.withLock({ $0 }) { return .expelled(reason) }
        return .signal(name)
    }
}

struct ClusterJoinError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
