import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceTestSupport
import Testing

/// `EtcdKVClient.txn` and its builders against a real etcd: every comparison kind, both
/// branches, and the operations' answers.
@Suite("etcd Txn", .timeLimit(.minutes(1)), .enabled(if: EtcdProcess.binary != nil, Comment(rawValue: etcdMissing)))
struct EtcdTxnTests {
    @Test("create if absent: the first succeeds, the second runs the failure branch and reads the holder")
    func createIfAbsent() async throws {
        try await withEtcdClient { _, etcd in
            let key = ByteBuffer(string: "/sluice/t/brokers/1")
            let first = try await etcd.kv.txn(
                compare: [.absent(key)], success: [.put(key, ByteBuffer(string: "first"))], failure: [.range(key)])
            #expect(first.succeeded)
            #expect(first.responses.count == 1)
            #expect(first.responses.first?.put != nil)

            let second = try await etcd.kv.txn(
                compare: [.absent(key)], success: [.put(key, ByteBuffer(string: "second"))], failure: [.range(key)])
            #expect(!second.succeeded)
            let holder = try #require(second.responses.first?.range?.kvs.first)
            #expect(holder.value.text == "first")
            #expect(holder.createRevision == first.header?.revision)
            #expect(try await etcd.kv.range(key: key).kvs.first?.value.text == "first")
        }
    }

    @Test("compare-and-swap on the mod revision: the revision read wins once, a stale one fails")
    func modRevisionSwap() async throws {
        try await withEtcdClient { _, etcd in
            let key = ByteBuffer(string: "/sluice/t/topics/orders")
            let read = try await etcd.kv.put(key: key, value: ByteBuffer(string: "v1"))
            let seen = try #require(read.header?.revision)

            let swapped = try await etcd.kv.txn(
                compare: [.modRevision(key, .equal, seen)], success: [.put(key, ByteBuffer(string: "v2"))])
            #expect(swapped.succeeded)
            // Someone holding the old revision must lose.
            let stale = try await etcd.kv.txn(
                compare: [.modRevision(key, .equal, seen)], success: [.put(key, ByteBuffer(string: "v3"))])
            #expect(!stale.succeeded)
            #expect(stale.responses.isEmpty)
            let now = try #require(try await etcd.kv.range(key: key).kvs.first)
            #expect(now.value.text == "v2")
            #expect(now.modRevision == swapped.header?.revision)
            // GREATER and LESS compare the key's field with the given value.
            #expect(try await etcd.kv.txn(compare: [.modRevision(key, .greater, seen)], success: []).succeeded)
            #expect(try await !etcd.kv.txn(compare: [.modRevision(key, .less, seen)], success: []).succeeded)
        }
    }

    @Test("compare on version, create revision and value; a failed comparison anywhere runs the failure branch")
    func versionAndValue() async throws {
        try await withEtcdClient { _, etcd in
            let key = ByteBuffer(string: "/sluice/t/leaders/orders/0")
            let other = ByteBuffer(string: "/sluice/t/epochs/orders/0")
            let created = try await etcd.kv.put(key: key, value: ByteBuffer(string: "broker-1"))
            try await etcd.kv.put(key: key, value: ByteBuffer(string: "broker-2"))

            let all = try await etcd.kv.txn(
                compare: [
                    .version(key, .equal, 2), .createRevision(key, .equal, try #require(created.header?.revision)),
                    .value(key, .equal, ByteBuffer(string: "broker-2")), .value(key, .notEqual, ByteBuffer(string: "broker-1")),
                ],
                success: [.put(other, ByteBuffer(string: "1")), .range(key)])
            #expect(all.succeeded)
            #expect(all.responses.count == 2)
            #expect(all.responses.last?.range?.kvs.first?.value.text == "broker-2")

            let oneFails = try await etcd.kv.txn(
                compare: [.version(key, .equal, 2), .value(key, .equal, ByteBuffer(string: "broker-1"))],
                success: [.delete(key)], failure: [.delete(other)])
            #expect(!oneFails.succeeded)
            #expect(oneFails.responses.first?.delete?.deleted == 1)
            #expect(try await etcd.kv.range(key: other).kvs.isEmpty)
            #expect(try await etcd.kv.range(key: key).count == 1)

            // A missing key has version 0 and fails every value comparison.
            let missing = ByteBuffer(string: "/sluice/t/none")
            #expect(try await etcd.kv.txn(compare: [.version(missing, .equal, 0)], success: []).succeeded)
            #expect(try await !etcd.kv.txn(compare: [.value(missing, .notEqual, ByteBuffer(string: "x"))], success: []).succeeded)
        }
    }

    @Test("a transaction writes as one revision: every put of the success branch has the same mod revision")
    func oneRevision() async throws {
        try await withEtcdClient { _, etcd in
            let keys = (0..<3).map { ByteBuffer(string: "/sluice/t/replicas/orders/\($0)") }
            let txn = try await etcd.kv.txn(compare: [], success: keys.map { .put($0, ByteBuffer(string: "1,2,3")) })
            #expect(txn.succeeded)
            let prefix = ByteBuffer(string: "/sluice/t/replicas/")
            let range = try await etcd.kv.range(key: prefix, rangeEnd: EtcdKVClient.prefixEnd(of: prefix))
            #expect(range.kvs.count == 3)
            #expect(Set(range.kvs.map(\.modRevision)) == [try #require(txn.header?.revision)])
        }
    }
}
