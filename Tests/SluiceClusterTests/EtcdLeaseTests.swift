import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceTestSupport
import Testing

/// `EtcdLeaseClient` and `EtcdLeaseKeepAlive` against a real etcd, with 2-second leases
/// (etcd's minimum with default election settings). Expiry is awaited as etcd's DELETE
/// event on a watch, never by sleeping.
@Suite("etcd Lease", .timeLimit(.minutes(1)), .enabled(if: EtcdProcess.binary != nil, Comment(rawValue: etcdMissing)))
struct EtcdLeaseTests {
    @Test("a lease nobody renews expires: its key is deleted (a DELETE event) and etcd no longer knows it")
    func expiry() async throws {
        try await withEtcdClient { _, etcd in
            let lease = try await etcd.lease.grant(ttlSeconds: 2)
            #expect(lease.ttlSeconds == 2)
            let key = ByteBuffer(string: "/sluice/t/brokers/7")
            let put = try await etcd.kv.put(key: key, value: ByteBuffer(string: "x"), lease: lease.id)
            let alive = try await etcd.lease.timeToLive(lease.id, keys: true)
            #expect(alive.ttl > 0)
            #expect(alive.keys == [key])

            var events = etcd.watch(key, from: try #require(put.header?.revision) + 1).makeAsyncIterator()
            let deleted = try #require(try await events.next())
            #expect(deleted.type == .delete)
            #expect(deleted.kv?.key == key)
            #expect(try await etcd.kv.range(key: key).kvs.isEmpty)
            #expect(try await etcd.lease.timeToLive(lease.id).ttl == -1)
            // Keeping it alive now: the holder's own view is already past its deadline...
            #expect(await etcd.lease.keepAlive(lease).lost().reason == .unconfirmed)
            // ...and one that believed it fresh hears from etcd at the first renewal.
            let believedFresh = EtcdLease(id: lease.id, ttlSeconds: lease.ttlSeconds, requestedAt: .now)
            #expect(await etcd.lease.keepAlive(believedFresh).lost().reason == .expired)
        }
    }

    @Test("a kept-alive lease outlives its time to live several times over; its key stays")
    func keepAlive() async throws {
        try await withEtcdClient { _, etcd in
            let lease = try await etcd.lease.grant(ttlSeconds: 2)
            let key = ByteBuffer(string: "/sluice/t/brokers/8")
            try await etcd.kv.put(key: key, value: ByteBuffer(string: "x"), lease: lease.id)
            let keepAlive = etcd.lease.keepAlive(lease)
            // Renewals come every third of the TTL; twelve of them span four TTLs, past
            // which an unrenewed lease would long be gone.
            try await eventually("twelve renewals", within: .seconds(40)) { keepAlive.renewals >= 12 }
            #expect(ContinuousClock.now > lease.requestedAt + lease.ttl * 2)
            #expect(try await etcd.kv.range(key: key).kvs.first?.lease == lease.id)
            #expect(try await etcd.lease.timeToLive(lease.id).ttl > 0)
            #expect(keepAlive.confirmedUntil > ContinuousClock.now)
            await keepAlive.stop()
            #expect(await keepAlive.lost().reason == .stopped)
            try await etcd.lease.revoke(lease.id)
        }
    }

    @Test("revoking a kept-alive lease deletes its keys at once and the keep-alive reports the loss")
    func revoke() async throws {
        try await withEtcdClient { _, etcd in
            let lease = try await etcd.lease.grant(ttlSeconds: 2)
            let keys = (0..<2).map { ByteBuffer(string: "/sluice/t/revoked/\($0)") }
            for key in keys { try await etcd.kv.put(key: key, value: ByteBuffer(string: "x"), lease: lease.id) }
            let keepAlive = etcd.lease.keepAlive(lease)
            try await eventually("a first renewal") { keepAlive.renewals >= 1 }

            #expect(try await etcd.lease.revoke(lease.id))
            for key in keys { #expect(try await etcd.kv.range(key: key).kvs.isEmpty) }
            let loss = await keepAlive.lost()
            #expect(loss.reason == .expired)
            #expect(try await !etcd.lease.revoke(lease.id), "a second revoke finds no lease")
        }
    }

    @Test("a keep-alive whose etcd is gone reports the lease unconfirmed by the time it would expire")
    func unconfirmedWhenEtcdIsGone() async throws {
        try await withEtcdClient { process, etcd in
            let lease = try await etcd.lease.grant(ttlSeconds: 2)
            let keepAlive = etcd.lease.keepAlive(lease)
            try await eventually("a first renewal") { keepAlive.renewals >= 1 }
            await process.crash()
            let loss = await keepAlive.lost()
            #expect(loss.reason == .unconfirmed)
            // It gave up no later than the last confirmed renewal's deadline (plus scheduling).
            #expect(ContinuousClock.now >= keepAlive.confirmedUntil)
        }
    }
}
