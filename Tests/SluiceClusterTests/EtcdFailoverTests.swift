import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceTestSupport
import SluiceWire
import Testing

/// `EtcdConnector`'s failover between the endpoints of its list, against real etcd members.
@Suite("etcd failover", .timeLimit(.minutes(2)), .enabled(if: EtcdProcess.binary != nil, Comment(rawValue: etcdMissing)))
struct EtcdFailoverTests {
    @Test("an endpoint list whose first endpoint is down connects to the next")
    func firstEndpointDown() async throws {
        try await withEtcdClient { etcd, _ in
            let nothing = EtcdProcess.freePorts(1)[0]
            let client = EtcdClient(
                endpoints: [EtcdEndpoint(host: "127.0.0.1", port: nothing), EtcdEndpoint(host: "127.0.0.1", port: etcd.clientPort)],
                logger: etcdTestLogger)
            let key = ByteBuffer(string: "/sluice/f/1")
            try await client.kv.put(key: key, value: ByteBuffer(string: "x"))
            #expect(try await client.kv.range(key: key).kvs.first?.version == 1)
            #expect(try await client.connector.connection().configuration.port == etcd.clientPort)
            await client.close()
        }
    }

    @Test("a lease keep-alive on a 3-member cluster survives the death of the member it renews through")
    func keepAliveFailsOver() async throws {
        try await withEtcdCluster { members, etcd in
            // 5 s, so that a leader election (about a second) fits within the lease.
            let lease = try await etcd.lease.grant(ttlSeconds: 5)
            let keepAlive = etcd.lease.keepAlive(lease)
            try await eventually("a first renewal") { keepAlive.renewals >= 1 }

            let connected = try await etcd.connector.connection()
            let victim = try #require(members.first { connected.configuration.port == $0.clientPort })
            await victim.crash()
            let before = keepAlive.renewals
            try await eventually("renewals through another member", within: .seconds(60)) { keepAlive.renewals >= before + 3 }
            #expect(try await etcd.connector.connection().configuration.port != victim.clientPort)
            #expect(try await etcd.lease.timeToLive(lease.id).ttl > 0)
            await keepAlive.stop()
            #expect(await keepAlive.lost().reason == .stopped)
        }
    }
}
