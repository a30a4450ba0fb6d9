import Foundation
import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceTestSupport
import Testing

/// Three `sluice serve --cluster` processes on a 3-member etcd: a SIGKILLed leader's
/// partition moves with epoch + 1, a SIGSTOPped controller is replaced and, once
/// continued, fenced, and `sluice topic` changes a topic through any broker. Waits are on etcd's keys (a watcher's snapshots) and log lines.
@Suite("sluice serve --cluster: the controller", .timeLimit(.minutes(2)), .enabled(if: EtcdProcess.binary != nil, Comment(rawValue: etcdMissing)))
struct ServeControllerTests {
    let keys = ClusterKeys(clusterName: "ctlserve")

    func flags(_ members: [EtcdProcess], id: UInt32) -> [String] {
        ["--cluster", "etcd://" + members.map(\.endpoint).joined(separator: ",") + "/ctlserve", "--broker-id", "\(id)",
         "--lease-ttl", "2", "--log-level", "notice"]
    }

    /// Brokers 1-3 on `members`, a watcher of the cluster, a 3-partition topic "orders"
    /// (partition p led by broker p + 1, every broker a replica) written as an operator
    /// would, once a controller is elected; always stops the brokers.
    func withBrokers(
        _ members: [EtcdProcess], _ client: EtcdClient,
        _ body: ([UInt32: ServedBroker], ClusterMetadataWatcher, ClusterSnapshot) async throws -> Void
    ) async throws {
        let watcher = try await ClusterMetadataWatcher.start(client: client, keys: keys, logger: etcdTestLogger)
        var brokers: [UInt32: ServedBroker] = [:]
        do {
            for id in UInt32(1)...3 { brokers[id] = try await ServedBroker(flags(members, id: id), label: "sluice-controller-\(id)") }
            _ = try await firstSnapshot(of: watcher.cache, "three brokers and a controller") { $0.brokers.count == 3 && $0.controller != nil }
            let states = (0..<3).map { p in PartitionState(newOn: (0..<3).map { UInt32((p + $0) % 3 + 1) }) }
            _ = try await client.kv.txn(
                compare: [.absent(keys.topic("orders"))],
                success: states.enumerated().map { .put(keys.partition("orders", UInt32($0.offset)), $0.element.encoded()) }
                    + [.put(keys.topic("orders"), TopicRecord(configs: [:], partitions: 3).encoded())])
            let ready = try await firstSnapshot(of: watcher.cache, "orders") { $0.topics["orders"] != nil && $0.controller != nil }
            try await body(brokers, watcher, ready)
        } catch {
            for broker in brokers.values { broker.server.signal(SIGCONT); await broker.stop() }
            await watcher.stop()
            throw error
        }
        for broker in brokers.values { await broker.stop() }
        await watcher.stop()
    }

    /// A broker that is not the controller, and the partition of "orders" it leads
    /// (`withBrokers` makes broker p + 1 the leader of partition p).
    func leaderOtherThanController(_ ready: ClusterSnapshot) throws -> (broker: UInt32, partition: UInt32) {
        let controller = try #require(ready.controller)
        let broker = try #require((UInt32(1)...3).first { $0 != controller })
        #expect(ready.partition("orders", broker - 1)?.leader == broker)
        return (broker, broker - 1)
    }

    /// The first state of orders/`partition` that `watcher` sees led by a broker other than `previous`.
    func ledElsewhere(_ partition: UInt32, than previous: UInt32, _ watcher: ClusterMetadataWatcher) async throws -> PartitionState {
        let moved = try await firstSnapshot(of: watcher.cache, "orders/\(partition) led by another broker") { snapshot in
            snapshot.partition("orders", partition).map { $0.leader != nil && $0.leader != previous } ?? false
        }
        return try #require(moved.partition("orders", partition))
    }

    @Test("SIGKILL the broker leading a partition: a new leader at epoch + 1, logged; the controller stopped with SIGTERM steps down first")
    func killedLeaderFailsOver() async throws {
        try await withEtcdCluster { members, client in
            try await withBrokers(members, client) { brokers, watcher, ready in
                let controller = try #require(ready.controller)
                // A victim that is not the controller: the failover is the controller's work.
                let (victim, partition) = try leaderOtherThanController(ready)

                try await #require(brokers[victim]).server.crash()
                let state = try await ledElsewhere(partition, than: victim, watcher)
                #expect(state.leaderEpoch == 1, "\(state)")
                #expect(!state.isr.contains(victim), "\(state)")
                let log = try #require(brokers[controller]).server
                try await eventually("the controller logs the move") {
                    log.stderr.contains("broker \(victim) left: partitions moved:")
                        && log.stderr.contains("orders/\(partition) to broker \(state.leader ?? 0) at epoch 1")
                }

                // A controller stopped with SIGTERM steps down before it leaves: the key is
                // gone (or already a successor's) when it has exited, and the last broker
                // is elected without waiting for a lease to expire.
                let key = try #require(try await client.kv.range(key: keys.controller).kvs.first)
                #expect(await log.stop() == 0)
                #expect(log.stderr.contains("stepped down as controller (elected at revision \(key.createRevision))"), "\(log.stderr)")
                let holder = try await client.kv.range(key: keys.controller).kvs.first
                #expect(holder == nil || holder?.createRevision != key.createRevision)
                let last = try #require((UInt32(1)...3).first { $0 != controller && $0 != victim })
                _ = try await firstSnapshot(of: watcher.cache, "broker \(last) elected") { $0.controller == last }
            }
        }
    }

    @Test("SIGTERM the broker leading a partition: it leaves, and stops only once another in-sync replica leads (a controlled shutdown)")
    func stoppedLeaderHandsOver() async throws {
        try await withEtcdCluster { members, client in
            try await withBrokers(members, client) { brokers, watcher, ready in
                let (leaving, partition) = try leaderOtherThanController(ready)
                let log = try #require(brokers[leaving]).server
                #expect(await log.stop() == 0)
                // Logged only once this broker's own watcher saw the partition led elsewhere;
                // its server stops after that (`sluice serve`: leave, then shut down).
                #expect(log.stderr.contains("handed over the leadership of 1 partition(s) before stopping"), "\(log.stderr)")
                #expect(log.stderr.contains("orders/\(partition)"), "\(log.stderr)")
                // The test's own watcher may see the move a moment after the broker's did.
                let state = try await ledElsewhere(partition, than: leaving, watcher)
                #expect(state.leaderEpoch == 1, "\(state)")
            }
        }
    }

    @Test("SIGSTOP the controller past its lease: another is elected; after SIGCONT the old one's write is fenced and the new one's stand")
    func pausedControllerIsFenced() async throws {
        try await withEtcdCluster { members, client in
            try await withBrokers(members, client) { brokers, watcher, ready in
                let old = try #require(ready.controller)
                let oldKey = try #require(try await client.kv.range(key: keys.controller).kvs.first)
                let oldProcess = try #require(brokers[old]).server
                try await eventually("the old controller logs its election") {
                    oldProcess.stderr.contains("elected controller at revision \(oldKey.createRevision)")
                }

                oldProcess.signal(SIGSTOP)
                let replaced = try await firstSnapshot(of: watcher.cache, "a new controller, and the old one's partition moved") { snapshot in
                    guard let controller = snapshot.controller, controller != old else { return false }
                    return snapshot.partition("orders", old - 1)?.leader.map { $0 != old } == true
                }
                let new = try #require(replaced.controller)
                let newKey = try #require(try await client.kv.range(key: keys.controller).kvs.first)
                #expect(newKey.createRevision > oldKey.createRevision)
                #expect(replaced.partition("orders", old - 1)?.leaderEpoch == 1)

                oldProcess.signal(SIGCONT)
                try await eventually("the old controller logs that it was fenced") {
                    oldProcess.stderr.contains("fenced: this controller (elected at revision \(oldKey.createRevision)) lost its lease")
                }
                // The old broker registers again; the new controller (not the old) handles
                // its return (it leads nothing it did not lead: it is out of every ISR it
                // left until a leader adds it back), and its key is still the new term's.
                let rejoined = try await firstSnapshot(of: watcher.cache, "the old controller registered again") { snapshot in
                    snapshot.brokers[old] != nil
                }
                #expect(rejoined.partition("orders", old - 1)?.leader != old, "not elected again by the controller")
                #expect(rejoined.controller == new)
                #expect(try await client.kv.range(key: keys.controller).kvs.first?.createRevision == newKey.createRevision)
                let newProcess = try #require(brokers[new]).server
                try await eventually("the new controller logs the return") {
                    newProcess.stderr.contains("broker \(old) joined: partitions moved")
                }
            }
        }
    }

    @Test("sluice topic alter (unclean.leader.election.enable included), add-partitions and create through a broker that is not the controller: every broker's DescribeTopic shows the change and the topic's id")
    func topicChangedThroughAnyBroker() async throws {
        try await withEtcdCluster { members, client in
            try await withBrokers(members, client) { brokers, watcher, ready in
                let controller = try #require(ready.controller)
                let otherID = try #require((UInt32(1)...3).first { $0 != controller })
                let other = try #require(brokers[otherID])
                let directory = TemporaryDirectory("sluice-topic-cli")
                defer { directory.remove() }
                let altered = try await runSluice(
                    ["topic", "alter", "orders", "--broker", other.argument, "--set", "retention.ms=60000",
                     "--set", "unclean.leader.election.enable=TRUE"], in: directory.url)
                #expect(altered.status == 0, "\(altered.stderr)")
                let grown = try await runSluice(
                    ["topic", "add-partitions", "orders", "--broker", other.argument, "--total", "5"], in: directory.url)
                #expect(grown.status == 0, "\(grown.stderr)")
                #expect(grown.stdout.contains("topic orders now has 5 partitions"), "\(grown.stdout)")
                let grownSnapshot = try await firstSnapshot(of: watcher.cache, "orders with 5 partitions") { $0.topics["orders"]?.partitions.count == 5 }
                // The operator wrote "orders" without an id; a topic the controller creates has one.
                #expect(try #require(grownSnapshot.topics["orders"]).id == "")
                // In canonical text, as the controller's failover reads it.
                #expect(grownSnapshot.topics["orders"]?.configs["unclean.leader.election.enable"] == "true")
                let created = try await runSluice(["topic", "create", "ids", "--broker", other.argument], in: directory.url)
                #expect(created.status == 0, "\(created.stderr)")
                let withID = try await firstSnapshot(of: watcher.cache, "topic ids") { $0.topics["ids"] != nil }
                let topicID = try #require(withID.topics["ids"]).id
                #expect(topicID.count == 36)

                for (id, broker) in brokers.sorted(by: { $0.key < $1.key }) {
                    // Bounded: each broker's own watch brings it the change a moment apart.
                    try await eventually("broker \(id) describes orders altered and grown") {
                        let described = try await runSluice(["topic", "describe", "orders", "--broker", broker.argument], in: directory.url)
                        return described.status == 0 && described.stdout.contains("partitions: 5\n")
                            && described.stdout.contains("retention.ms=60000\n") && described.stdout.contains("\n  4  ")
                            && described.stdout.contains("unclean.leader.election.enable=true\n")
                    }
                    try await eventually("broker \(id) describes ids with its id") {
                        let described = try await runSluice(["topic", "describe", "ids", "--broker", broker.argument], in: directory.url)
                        return described.status == 0 && described.stdout.contains("  id: \(topicID)\n")
                    }
                }
            }
        }
    }
}
