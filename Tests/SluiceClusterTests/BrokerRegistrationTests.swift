import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceTestSupport
import Testing

/// `BrokerRegistration` and `BrokerRegistry` in one process against a real etcd: one
/// registration per id, leaving at once, registering again after a lost lease, and the
/// registry's view following every change.
@Suite("Broker registration", .timeLimit(.minutes(1)), .enabled(if: EtcdProcess.binary != nil, Comment(rawValue: etcdMissing)))
struct BrokerRegistrationTests {
    let keys = ClusterKeys(clusterName: "reg")

    /// The next change, or a failure if the stream ended.
    func next(_ changes: inout AsyncStream<BrokerRegistry.Change>.AsyncIterator) async throws -> BrokerRegistry.Change {
        try #require(await changes.next())
    }

    @Test("a registered broker is in etcd and in the registry; the same id again is refused; leaving deletes the key at once")
    func registerRefuseLeave() async throws {
        try await withEtcdClient { _, etcd in
            let registry = try await BrokerRegistry.start(client: etcd, keys: keys, logger: etcdTestLogger)
            var changes = registry.changes().makeAsyncIterator()
            let info = BrokerInfo(id: 1, address: "127.0.0.1:9101", rack: "r1")
            let first = try await BrokerRegistration.register(info, keys: keys, client: etcd, leaseTTLSeconds: 2, logger: etcdTestLogger)

            let stored = try #require(try await etcd.kv.range(key: keys.broker(1)).kvs.first)
            #expect(stored.value.text == #"{"address":"127.0.0.1:9101","id":1,"rack":"r1"}"#)
            #expect(stored.lease == first.lease.id)
            guard case .joined(let joined, _) = try await next(&changes) else { Issue.record("expected joined"); return }
            #expect(joined.info == info)
            #expect(joined.registrationRevision == stored.createRevision)

            let impostor = BrokerInfo(id: 1, address: "127.0.0.1:9102")
            await #expect(throws: BrokerRegistrationError.idInUse(id: 1, key: "/sluice/reg/brokers/1", holder: info, lease: first.lease.id)) {
                _ = try await BrokerRegistration.register(impostor, keys: keys, client: etcd, leaseTTLSeconds: 2, logger: etcdTestLogger)
            }
            // The refused attempt left its own lease revoked, and the holder untouched.
            #expect(try await etcd.kv.range(key: keys.broker(1)).kvs.first?.value == stored.value)

            try await first.deregister()
            let after = try await etcd.kv.range(key: keys.broker(1))
            #expect(after.kvs.isEmpty)
            #expect(try await next(&changes) == .left(id: 1, revision: try #require(after.header?.revision)))
            #expect(registry.snapshot.brokers.isEmpty)
            #expect(await first.ended() == nil)
            await registry.stop()
        }
    }

    @Test("a broker whose lease is lost registers again with a new lease; the registry sees it leave and join")
    func reregistersAfterLostLease() async throws {
        try await withEtcdClient { _, etcd in
            let registry = try await BrokerRegistry.start(client: etcd, keys: keys, logger: etcdTestLogger)
            var changes = registry.changes().makeAsyncIterator()
            let info = BrokerInfo(id: 2, address: "127.0.0.1:9103")
            let registration = try await BrokerRegistration.register(info, keys: keys, client: etcd, leaseTTLSeconds: 2, logger: etcdTestLogger)
            let firstLease = registration.lease
            guard case .joined(let before, _) = try await next(&changes) else { Issue.record("expected joined"); return }

            // Someone (an operator, etcd's expiry) ends the lease behind the broker's back.
            try await etcd.lease.revoke(firstLease.id)
            guard case .left(id: 2, _) = try await next(&changes) else { Issue.record("expected left"); return }
            guard case .joined(let after, _) = try await next(&changes) else { Issue.record("expected joined again"); return }
            #expect(after.info == info)
            #expect(after.registrationRevision > before.registrationRevision)
            #expect(after.lease != firstLease.id)
            // The registry may see the new key before `register` has handed back its lease.
            try await eventually("the registration holds the new lease") { registration.lease.id == after.lease }
            #expect(registry.snapshot.brokers[2] == after)

            try await registration.deregister()
            #expect(try await etcd.kv.range(key: keys.broker(2)).kvs.isEmpty)
            await registry.stop()
        }
    }

    @Test("a broker whose id was taken while its lease was lost ends its registration with idInUse")
    func idTakenWhileLeaseLost() async throws {
        try await withEtcdClient { _, etcd in
            let info = BrokerInfo(id: 5, address: "127.0.0.1:9105")
            let registration = try await BrokerRegistration.register(info, keys: keys, client: etcd, leaseTTLSeconds: 2, logger: etcdTestLogger)
            // Another broker's registration replaces the key (value and lease in one put),
            // then the first lease ends: the key stays, held by the other lease.
            let impostor = BrokerInfo(id: 5, address: "127.0.0.1:9106")
            let otherLease = try await etcd.lease.grant(ttlSeconds: 30)
            try await etcd.kv.put(key: keys.broker(5), value: impostor.encoded(), lease: otherLease.id)
            try await etcd.lease.revoke(registration.lease.id)

            let ended = await registration.ended()
            #expect(ended == .idInUse(id: 5, key: "/sluice/reg/brokers/5", holder: impostor, lease: otherLease.id))
            #expect(try await etcd.kv.range(key: keys.broker(5)).kvs.first?.lease == otherLease.id)
            try await registration.deregister()
            try await etcd.lease.revoke(otherLease.id)
        }
    }

    @Test("a registry cut off while brokers change and history is compacted reports exactly the difference when back")
    func registryCatchesUpAfterOutage() async throws {
        try await withEtcdCluster { members, _ in
            // The registry reaches etcd through member 0 only; the brokers through the others.
            let watcherClient = testClient([members[0]])
            let brokersClient = testClient([members[1], members[2]])
            try await waitUntilAnswering(watcherClient, members)
            let one = try await BrokerRegistration.register(
                BrokerInfo(id: 1, address: "h:1"), keys: keys, client: brokersClient, leaseTTLSeconds: 5, logger: etcdTestLogger)
            let registry = try await BrokerRegistry.start(client: watcherClient, keys: keys, logger: etcdTestLogger)
            var changes = registry.changes().makeAsyncIterator()
            #expect(registry.snapshot.brokers.keys.sorted() == [1])

            await members[0].crash()
            // If member 0 led, the others elect a leader first.
            try await waitUntilAnswering(brokersClient, Array(members[1...]))
            try await one.deregister()
            let two = try await BrokerRegistration.register(
                BrokerInfo(id: 2, address: "h:2"), keys: keys, client: brokersClient, leaseTTLSeconds: 5, logger: etcdTestLogger)
            let last = try await brokersClient.kv.put(key: ByteBuffer(string: "/sluice/other"), value: ByteBuffer(string: "x"))
            try await brokersClient.kv.compact(revision: try #require(last.header?.revision))
            try members[0].restart()

            // Back: broker 1 left and broker 2 joined, nothing else (read again after the
            // compaction, or watched if member 0 rejoined before applying it).
            guard case .left(id: 1, _)? = await changes.next() else { Issue.record("expected 1 to leave"); return }
            guard case .joined(let joined, _)? = await changes.next() else { Issue.record("expected 2 to join"); return }
            #expect(joined.info == BrokerInfo(id: 2, address: "h:2"))
            #expect(registry.snapshot.brokers.keys.sorted() == [2])
            await registry.stop()
            #expect(await changes.next() == nil, "no further change")
            try await two.deregister()
            await watcherClient.close()
            await brokersClient.close()
        }
    }

    @Test("the registry starts from what is registered and ignores keys that name no broker")
    func registryStartsFromRegistered() async throws {
        try await withEtcdClient { _, etcd in
            let one = try await BrokerRegistration.register(
                BrokerInfo(id: 1, address: "h:1"), keys: keys, client: etcd, leaseTTLSeconds: 2, logger: etcdTestLogger)
            let registry = try await BrokerRegistry.start(client: etcd, keys: keys, logger: etcdTestLogger)
            #expect(registry.snapshot.brokers.keys.sorted() == [1])
            // Keys that are not brokers are ignored.
            try await etcd.kv.put(key: ByteBuffer(string: "/sluice/reg/brokers/01"), value: ByteBuffer(string: "{}"))
            try await etcd.kv.put(key: ByteBuffer(string: "/sluice/reg/brokers/9"), value: ByteBuffer(string: "junk"))
            var changes = registry.changes().makeAsyncIterator()
            let two = try await BrokerRegistration.register(
                BrokerInfo(id: 2, address: "h:2"), keys: keys, client: etcd, leaseTTLSeconds: 2, logger: etcdTestLogger)
            guard case .joined(let joined, _) = try await next(&changes) else { Issue.record("expected joined"); return }
            #expect(joined.id == 2)
            #expect(registry.snapshot.brokers.keys.sorted() == [1, 2])
            await registry.stop()
            try await two.deregister()
            try await one.deregister()
        }
    }
}

/// The value and key formats, without etcd.
@Suite("Cluster keys and addresses")
struct ClusterKeysTests {
    @Test("BrokerInfo encodes as sorted compact JSON; rack absent when none; decodes back, ignoring unknown fields")
    func brokerInfoEncoding() throws {
        #expect(BrokerInfo(id: 3, address: "10.0.0.5:9092", rack: "eu-1a").encoded().text == #"{"address":"10.0.0.5:9092","id":3,"rack":"eu-1a"}"#)
        #expect(BrokerInfo(id: 4, address: "[::1]:9092").encoded().text == #"{"address":"[::1]:9092","id":4}"#)
        let decoded = BrokerInfo(decoding: ByteBuffer(string: #"{"id":5,"address":"h:1","later":true}"#))
        #expect(decoded == BrokerInfo(id: 5, address: "h:1"))
        #expect(BrokerInfo(decoding: ByteBuffer(string: "junk")) == nil)
    }

    @Test("broker keys are /sluice/<cluster>/brokers/<decimal id>; other keys name no broker")
    func brokerKeys() {
        let keys = ClusterKeys(clusterName: "prod")
        #expect(keys.broker(12).text == "/sluice/prod/brokers/12")
        #expect(keys.brokerID(of: keys.broker(12)) == 12)
        #expect(keys.brokerID(of: keys.broker(UInt32.max)) == UInt32.max)
        for other in ["/sluice/prod/brokers/", "/sluice/prod/brokers/012", "/sluice/prod/brokers/1x",
                      "/sluice/prod/brokers/-1", "/sluice/other/brokers/1", "/sluice/prod/brokers/4294967296"] {
            #expect(keys.brokerID(of: ByteBuffer(string: other)) == nil, "\(other)")
        }
    }

    @Test("etcd://HOST:PORT[,HOST:PORT...][/NAME] parses; anything else is refused with a reason")
    func clusterAddress() throws {
        let one = try EtcdClusterAddress(parsing: "etcd://127.0.0.1:2379")
        #expect(one.endpoints == [EtcdEndpoint(host: "127.0.0.1", port: 2379)])
        #expect(one.clusterName == "default")
        let three = try EtcdClusterAddress(parsing: "etcd://a:1,[::1]:2,c:3/prod-eu")
        #expect(three.endpoints.map(\.description) == ["a:1", "[::1]:2", "c:3"])
        #expect(three.clusterName == "prod-eu")
        #expect(three.description == "etcd://a:1,[::1]:2,c:3/prod-eu")
        for bad in ["127.0.0.1:2379", "http://a:1", "etcd://", "etcd://a", "etcd://a:0", "etcd://a:1,", "etcd://a:1,a:1",
                    "etcd://a:1/", "etcd://a:1/x/y", "etcd://a:1/..", "etcd://::1:2"] {
            #expect(throws: EtcdAddressError.self, "\(bad)") { try EtcdClusterAddress(parsing: bad) }
        }
    }
}
