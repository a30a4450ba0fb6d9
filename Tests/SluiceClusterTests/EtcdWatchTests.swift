import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceTestSupport
import SluiceWire
import Testing

/// `EtcdWatch` against a real etcd: order, resumption across a lost connection and an etcd
/// restart (nothing missed, nothing repeated: the exact sequence is asserted), compaction,
/// and failover between the members of a 3-member cluster.
@Suite("etcd Watch", .timeLimit(.minutes(2)), .enabled(if: EtcdProcess.binary != nil, Comment(rawValue: etcdMissing)))
struct EtcdWatchTests {
    /// What a test compares: the kind, the key and the revision of each event.
    struct Seen: Equatable, CustomStringConvertible {
        var type: EtcdEvent.EventType
        var key: String
        var value: String
        var revision: Int64
        init(_ event: EtcdEvent) {
            type = event.type
            key = event.kv?.key.text ?? ""
            value = event.kv?.value.text ?? ""
            revision = event.kv?.modRevision ?? 0
        }
        init(_ type: EtcdEvent.EventType, _ key: String, _ value: String, _ revision: Int64) {
            (self.type, self.key, self.value, self.revision) = (type, key, value, revision)
        }
        var description: String { "\(type == .put ? "PUT" : "DELETE") \(key)=\(value)@\(revision)" }
    }

    static let prefix = ByteBuffer(string: "/sluice/w/")

    /// Puts `/sluice/w/<name>` and returns the event a watcher must see for it.
    func put(_ etcd: EtcdClient, _ name: String, _ value: String) async throws -> Seen {
        let response = try await etcd.kv.put(key: ByteBuffer(string: "/sluice/w/\(name)"), value: ByteBuffer(string: value))
        return Seen(.put, "/sluice/w/\(name)", value, try #require(response.header?.revision))
    }

    func next(_ events: inout EtcdWatch.AsyncIterator, _ count: Int) async throws -> [Seen] {
        var seen: [Seen] = []
        for _ in 0..<count {
            guard let event = try await events.next() else { break }
            seen.append(Seen(event))
        }
        return seen
    }

    @Test("a watch from a past revision sees every event since, in order: puts, deletes, a transaction's events")
    func everyEventInOrder() async throws {
        try await withEtcdClient { _, etcd in
            var expected: [Seen] = []
            for index in 0..<5 { expected.append(try await put(etcd, "k\(index)", "v\(index)")) }
            let deleted = try await etcd.kv.delete(key: ByteBuffer(string: "/sluice/w/k1"))
            expected.append(Seen(.delete, "/sluice/w/k1", "", try #require(deleted.header?.revision)))
            // Outside the prefix: not seen.
            try await etcd.kv.put(key: ByteBuffer(string: "/sluice/x"), value: ByteBuffer(string: "no"))
            let txn = try await etcd.kv.txn(
                compare: [], success: [.put(ByteBuffer(string: "/sluice/w/t1"), ByteBuffer(string: "a")),
                                       .put(ByteBuffer(string: "/sluice/w/t2"), ByteBuffer(string: "b"))])
            let txnRevision = try #require(txn.header?.revision)
            expected += [Seen(.put, "/sluice/w/t1", "a", txnRevision), Seen(.put, "/sluice/w/t2", "b", txnRevision)]

            var events = etcd.watch(prefix: Self.prefix, from: expected[0].revision).makeAsyncIterator()
            #expect(try await next(&events, expected.count) == expected)
            // And live events after the history.
            let live = try await put(etcd, "k9", "live")
            #expect(try await next(&events, 1) == [live])
            #expect(events.nextRevision == live.revision + 1)
        }
    }

    @Test("a watch resumes after etcd is killed and restarted: the exact sequence, none missed, none repeated")
    func resumesAcrossRestart() async throws {
        try await withEtcdClient { process, etcd in
            var expected: [Seen] = []
            for index in 0..<6 { expected.append(try await put(etcd, "before\(index)", "\(index)")) }
            var events = etcd.watch(prefix: Self.prefix, from: expected[0].revision).makeAsyncIterator()
            // Half read: the rest is either buffered in the iterator or not yet sent.
            var seen = try await next(&events, 3)

            await process.crash()
            try process.restart()
            try await waitUntilAnswering(etcd, [process])
            for index in 0..<6 { expected.append(try await put(etcd, "after\(index)", "\(index)")) }
            seen += try await next(&events, expected.count - seen.count)
            #expect(seen == expected)
            // Nothing more than that: a new put is the very next event.
            let last = try await put(etcd, "last", "x")
            #expect(try await next(&events, 1) == [last])
        }
    }

    @Test("a watch resumes after its connection is cut between events, from the last seen revision + 1")
    func resumesAfterConnectionCut() async throws {
        try await withEtcdClient { _, etcd in
            var expected: [Seen] = []
            for index in 0..<4 { expected.append(try await put(etcd, "a\(index)", "\(index)")) }
            var events = etcd.watch(prefix: Self.prefix, from: expected[0].revision).makeAsyncIterator()
            var seen = try await next(&events, 2)
            for round in 0..<3 {
                // Cut the connection the watch uses (as a dead member would), then write more.
                await etcd.connector.failed(try await etcd.connector.connection())
                for index in 0..<3 { expected.append(try await put(etcd, "r\(round)-\(index)", "\(index)")) }
                seen += try await next(&events, 3)
            }
            seen += try await next(&events, expected.count - seen.count)
            #expect(seen == expected)
        }
    }

    @Test("a watch from a compacted revision fails with .compacted naming the revision that is gone")
    func compaction() async throws {
        try await withEtcdClient { _, etcd in
            var written: [Seen] = []
            for index in 0..<5 { written.append(try await put(etcd, "c\(index)", "\(index)")) }
            try await etcd.kv.compact(revision: written[3].revision)

            var events = etcd.watch(prefix: Self.prefix, from: written[1].revision).makeAsyncIterator()
            await #expect(throws: EtcdWatchError.compacted(requested: written[1].revision, oldestKept: written[3].revision)) {
                _ = try await events.next()
            }
            // The error ends the iteration.
            #expect(try await events.next() == nil)
            // From the compaction revision on, the history is still there.
            var kept = etcd.watch(prefix: Self.prefix, from: written[3].revision).makeAsyncIterator()
            #expect(try await next(&kept, 2) == Array(written[3...]))
        }
    }

    @Test("a watch on a 3-member cluster moves to another member when its member is killed, missing nothing")
    func failsOverBetweenMembers() async throws {
        try await withEtcdCluster { members, etcd in
            var expected: [Seen] = []
            for index in 0..<3 { expected.append(try await put(etcd, "m\(index)", "\(index)")) }
            var events = etcd.watch(prefix: Self.prefix, from: expected[0].revision).makeAsyncIterator()
            var seen = try await next(&events, 2)

            // Kill the member the client is connected to (the first endpoint it tries).
            let connected = try await etcd.connector.connection()
            let victim = try #require(members.first { connected.configuration.port == $0.clientPort })
            await victim.crash()
            for index in 0..<3 { expected.append(try await putRetrying(etcd, "n\(index)", "\(index)")) }
            seen += try await next(&events, expected.count - seen.count)
            #expect(seen == expected)
        }
    }

    /// A put while the cluster elects a new leader may fail UNAVAILABLE (and is then not
    /// applied or applied: the check below reads it back); bounded retries.
    func putRetrying(_ etcd: EtcdClient, _ name: String, _ value: String) async throws -> Seen {
        var lastError: any Error = EtcdStartError("no attempt")
        for _ in 0..<50 {
            do {
                return try await put(etcd, name, value)
            } catch {
                lastError = error
                let key = ByteBuffer(string: "/sluice/w/\(name)")
                if let kv = try? await etcd.kv.range(key: key).kvs.first, kv.value.text == value {
                    return Seen(.put, "/sluice/w/\(name)", value, kv.modRevision)
                }
            }
            // Between attempts at a cluster that is electing a leader; bounded above.
            try await Task.sleep(for: .milliseconds(100))
        }
        throw lastError
    }
}
