import Foundation
import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceTestSupport
import Testing

/// `sluice serve --cluster` processes against a real etcd: registration, a duplicate id
/// refused, a SIGKILLed broker gone after its lease, a stopped broker gone at once. The
/// `sluice` binary is the one `swift build --build-tests` put next to this bundle.
@Suite("sluice serve --cluster", .timeLimit(.minutes(1)), .enabled(if: EtcdProcess.binary != nil, Comment(rawValue: etcdMissing)))
struct ServeClusterTests {
    let keys = ClusterKeys(clusterName: "serve")

    func clusterFlags(_ etcd: EtcdProcess, id: UInt32, rack: String? = nil, leaseTTL: Int = 2) -> [String] {
        ["--cluster", "etcd://\(etcd.endpoint)/serve", "--broker-id", "\(id)", "--lease-ttl", "\(leaseTTL)"]
            + (rack.map { ["--rack", $0] } ?? [])
    }

    /// Starts `sluice serve` with `flags` in a fresh directory (it prints its port only
    /// once registered), runs `body`, and stops it (if still running) whatever happened.
    func withServed(_ flags: [String], _ body: (ServedBroker) async throws -> Void) async throws {
        try await withStarted(
            { try await ServedBroker(flags, label: "sluice-serve-cluster") }, open: { $0 }, close: { _ in },
            stop: { await $0.stop() }, { _, broker in try await body(broker) })
    }

    @Test("a broker registers its advertised address and rack; a second with the same id exits 1 saying so")
    func duplicateIDRefused() async throws {
        try await withEtcdClient { etcd, client in
            try await withServed(clusterFlags(etcd, id: 1, rack: "r1")) { first in
                let stored = try #require(try await client.kv.range(key: keys.broker(1)).kvs.first)
                #expect(BrokerInfo(decoding: stored.value) == BrokerInfo(id: 1, address: first.argument, rack: "r1"))

                let directory = TemporaryDirectory("sluice-serve-duplicate")
                defer { directory.remove() }
                let second = try SluiceProcess(
                    ["serve", "--listen", "127.0.0.1:0", "--data-dir", directory.path("data"), "--log-level", "warning"]
                        + clusterFlags(etcd, id: 1), in: directory.url)
                // Bounded: a second broker that wrongly registered would serve forever.
                try await eventually("the second broker exits") { !second.isRunning }
                #expect(await second.exitStatus() == 1)
                #expect(second.stderr.contains("broker id 1 is already registered"), "\(second.stderr)")
                #expect(second.stderr.contains(first.argument), "names the holder: \(second.stderr)")
                #expect(!second.stdout.contains("sluice listening"))
                // The first is untouched.
                #expect(try await client.kv.range(key: keys.broker(1)).kvs.first?.value == stored.value)
                #expect(await first.stop() == 0)
            }
        }
    }

    @Test("a SIGKILLed broker's key is deleted when its lease expires, and the registry reports it gone")
    func killedBrokerExpires() async throws {
        try await withEtcdClient { etcd, client in
            let registry = try await BrokerRegistry.start(client: client, keys: keys, logger: etcdTestLogger)
            var changes = registry.changes().makeAsyncIterator()
            try await withServed(clusterFlags(etcd, id: 2)) { (broker: ServedBroker) async throws in
                guard case .joined(let joined, _)? = await changes.next() else { Issue.record("expected joined"); return }
                #expect(joined.info.address == broker.argument)

                await broker.server.crash()
                // No renewal after the kill: etcd expires the lease and deletes the key.
                guard case .left(id: 2, _)? = await changes.next() else { Issue.record("expected left"); return }
                #expect(try await client.kv.range(key: keys.broker(2)).kvs.isEmpty)
                #expect(try await client.lease.timeToLive(joined.lease).ttl == -1)
            }
            await registry.stop()
        }
    }

    @Test("a broker stopped with SIGTERM revokes its lease: its key is gone when the process has exited")
    func stoppedBrokerLeavesAtOnce() async throws {
        try await withEtcdClient { etcd, client in
            try await withServed(clusterFlags(etcd, id: 3, leaseTTL: 60) + ["--advertised-address", "broker3.example:9092"]) { broker in
                let stored = try #require(try await client.kv.range(key: keys.broker(3)).kvs.first)
                #expect(BrokerInfo(decoding: stored.value) == BrokerInfo(id: 3, address: "broker3.example:9092"))
                // A lease of 60 s: if the key were left to expire, the check below would see it.
                #expect(stored.lease != 0)

                #expect(await broker.stop() == 0)
                #expect(try await client.kv.range(key: keys.broker(3)).kvs.isEmpty)
                #expect(try await client.lease.timeToLive(stored.lease).ttl == -1)
            }
        }
    }

    @Test("a broker whose id is taken while its lease is lost shuts down and exits 1 saying so")
    func expelledBrokerExits() async throws {
        try await withEtcdClient { etcd, client in
            try await withServed(clusterFlags(etcd, id: 5)) { (broker: ServedBroker) async throws in
                let held = try #require(try await client.kv.range(key: keys.broker(5)).kvs.first)
                // Another broker's registration replaces the key, then the first lease ends.
                let otherLease = try await client.lease.grant(ttlSeconds: 30)
                try await client.kv.put(key: keys.broker(5), value: BrokerInfo(id: 5, address: "elsewhere:1").encoded(), lease: otherLease.id)
                try await client.lease.revoke(held.lease)

                try await eventually("the expelled broker exits") { !broker.server.isRunning }
                #expect(await broker.server.exitStatus() == 1)
                #expect(broker.server.stderr.contains("broker id 5 is already registered"), "\(broker.server.stderr)")
                #expect(try await client.kv.range(key: keys.broker(5)).kvs.first?.lease == otherLease.id, "the other broker's key stays")
            }
        }
    }

    @Test("serve refuses --cluster with an unreachable etcd, with the endpoint in the message")
    func unreachableEtcd() async throws {
        let directory = TemporaryDirectory("sluice-serve-no-etcd")
        defer { directory.remove() }
        let port = EtcdProcess.freePorts(1)[0]
        let result = try await runSluice(
            ["serve", "--listen", "127.0.0.1:0", "--data-dir", directory.path("data"),
             "--cluster", "etcd://127.0.0.1:\(port)", "--broker-id", "4"], in: directory.url)
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot register broker 4 in etcd://127.0.0.1:\(port)"), "\(result.stderr)")
    }
}
