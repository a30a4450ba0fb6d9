import Foundation
import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceCluster
import SluiceTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What a fault test's cluster is: three brokers in network namespaces on a private
/// bridge, a 3-member etcd on the bridge's address, and a topic of `partitions`
/// partitions, replication factor 3 and `min.insync.replicas=2`.
struct FaultSettings: Sendable {
    /// `--fsync`: "always", or nil for the broker's default.
    var fsync: String? = "always"
    var partitions = 3
    /// Rounds of a fault per test: 1, or $SLUICE_FAULT_ROUNDS for a soak.
    static var rounds: Int {
        max(1, ProcessInfo.processInfo.environment["SLUICE_FAULT_ROUNDS"].flatMap { Int($0) } ?? 1)
    }
}

/// A running fault cluster: the brokers, etcd, a watcher of the cluster's metadata (the
/// test waits on its snapshots), and the directory every log and report goes to.
final class FaultCluster: @unchecked Sendable {
    // @unchecked: fixed after `run` builds it; a fault test drives it from one task.
    static let topic = "faults"
    /// The `/NAME` of `--cluster`: every key is under /sluice/faults/.
    static let clusterName = "faults"
    let settings: FaultSettings
    /// The bridge and namespaces; `isolate` and `heal` cut and restore a broker.
    let network: FaultNetwork
    /// The members, for the etcd faults; `client` lists them all.
    let etcd: [EtcdProcess]
    let client: EtcdClient
    /// Feeds `snapshot(_:where:)`: every wait of a fault test is on its snapshots.
    let watcher: ClusterMetadataWatcher
    let brokers: [UInt32: FaultBroker]
    /// Logs, reports and (until the end of a passing test) the brokers' data.
    let directory: TemporaryDirectory
    let ids: [UInt32] = [1, 2, 3]

    private init(
        settings: FaultSettings, network: FaultNetwork, etcd: [EtcdProcess], client: EtcdClient, watcher: ClusterMetadataWatcher,
        brokers: [UInt32: FaultBroker], directory: TemporaryDirectory
    ) {
        self.settings = settings
        self.network = network
        self.etcd = etcd
        self.client = client
        self.watcher = watcher
        self.brokers = brokers
        self.directory = directory
    }

    var bootstrap: [BrokerAddress] { ids.compactMap { brokers[$0]?.address } }
    func broker(_ id: UInt32) -> FaultBroker { brokers[id]! }

    /// Builds the network, etcd, the brokers and the topic, runs `body`, and always stops
    /// every process and removes the network (the directory stays when `body` failed, for
    /// its logs).
    static func run(_ settings: FaultSettings = FaultSettings(), _ body: (FaultCluster) async throws -> Void) async throws {
        let network = try FaultNetwork(brokers: [1, 2, 3])
        defer { network.remove() }
        try await withEtcdCluster(host: network.bridgeAddress) { members, client in
            let directory = TemporaryDirectory("sluice-fault")
            let keys = ClusterKeys(clusterName: clusterName)
            let watcher = try await ClusterMetadataWatcher.start(client: client, keys: keys, logger: etcdTestLogger)
            var flags = ["--cluster", "etcd://" + members.map(\.endpoint).joined(separator: ",") + "/" + clusterName,
                         "--lease-ttl", "2",
                         // $SLUICE_FAULT_LOG_LEVEL (e.g. info) to see ISR changes in the kept logs.
                         "--log-level", ProcessInfo.processInfo.environment["SLUICE_FAULT_LOG_LEVEL"] ?? "notice"]
            if let fsync = settings.fsync { flags += ["--fsync", fsync] }
            var brokers: [UInt32: FaultBroker] = [:]
            for id in network.brokers {
                brokers[id] = FaultBroker(
                    id: id, host: network.address(id), launcher: network.launcher(id), logs: directory.url, flags: flags)
            }
            let cluster = FaultCluster(
                settings: settings, network: network, etcd: members, client: client, watcher: watcher, brokers: brokers,
                directory: directory)
            do {
                try await cluster.startBrokersAndTopic()
                try await body(cluster)
            } catch {
                await cluster.stopBrokers()
                await watcher.stop()
                print("fault cluster logs kept in \(directory.path)")
                throw error
            }
            await cluster.stopBrokers()
            await watcher.stop()
            // The logs and reports stay (a few kilobytes); the brokers' data goes, unless
            // $SLUICE_FAULT_KEEP_DATA=1 (to look at the segments after a failed check).
            if ProcessInfo.processInfo.environment["SLUICE_FAULT_KEEP_DATA"] != "1" {
                for id in network.brokers { try? FileManager.default.removeItem(atPath: cluster.broker(id).dataDirectory) }
            }
        }
    }

    private func startBrokersAndTopic() async throws {
        for id in ids { try await broker(id).start() }
        _ = try await snapshot("three brokers and a controller") { $0.brokers.count == 3 && $0.controller != nil }
        let admin = try await SluiceAdminClient(bootstrap: bootstrap)
        do {
            _ = try await admin.createTopic(CreateTopicRequest(
                name: Self.topic, partitions: UInt32(settings.partitions), replicationFactor: 3, configs: ["min.insync.replicas": "2"]))
        } catch {
            await admin.close()
            throw error
        }
        await admin.close()
        _ = try await fullyReplicated("the topic placed with every replica in sync")
    }

    /// SIGCONT (a paused one), heal every link, then stop every broker.
    func stopBrokers() async {
        for id in ids {
            _ = try? network.heal(id)
            await broker(id).stop()
        }
    }

    /// The first metadata snapshot for which `condition` holds (bounded: a hang guard).
    func snapshot(
        _ what: String, within bound: Duration = .seconds(60), where condition: @escaping @Sendable (ClusterSnapshot) -> Bool
    ) async throws -> ClusterSnapshot {
        try await firstSnapshot(of: watcher.cache, within: bound, what, where: condition)
    }

    /// A snapshot where every partition of the topic has a leader and all three replicas
    /// in its ISR.
    func fullyReplicated(_ what: String, within bound: Duration = .seconds(60)) async throws -> ClusterSnapshot {
        let count = settings.partitions
        return try await snapshot(what, within: bound) { snapshot in
            guard let partitions = snapshot.topics[Self.topic]?.partitions, partitions.count == count else { return false }
            return partitions.allSatisfy { $0.leader != nil && Set($0.isr) == [1, 2, 3] }
        }
    }

    /// A snapshot where `partition` has a leader other than `previous`.
    func newLeader(of partition: UInt32, replacing previous: UInt32) async throws -> ClusterSnapshot {
        try await snapshot("partition \(partition) led by a broker other than \(previous)") { snapshot in
            guard let leader = snapshot.partition(Self.topic, partition)?.leader else { return false }
            return leader != previous
        }
    }

    var current: ClusterSnapshot { watcher.cache.snapshot }

    func leader(of partition: UInt32) -> UInt32? { current.partition(Self.topic, partition)?.leader }
}
