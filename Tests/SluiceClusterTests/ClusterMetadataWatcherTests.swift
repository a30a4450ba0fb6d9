import Foundation
import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceTestSupport
import Testing

/// The watcher across etcd failures: a watch resumed on another member misses nothing and
/// reads nothing again; a watch whose history was compacted meanwhile reads everything again.
@Suite("Cluster metadata watcher", .timeLimit(.minutes(1)), .enabled(if: EtcdProcess.binary != nil, Comment(rawValue: etcdMissing)))
struct ClusterMetadataWatcherTests {
    let keys = ClusterKeys(clusterName: "watch")

    /// Writes a one-partition topic as the controller's Txn would, trying again (bounded)
    /// while etcd elects a new leader; returns once the topic key exists.
    func putTopic(_ name: String, _ client: EtcdClient) async throws {
        for _ in 0..<50 {
            _ = try? await client.kv.txn(
                compare: [.absent(keys.topic(name))],
                success: [.put(keys.partition(name, 0), PartitionState(newOn: [1]).encoded()),
                          .put(keys.topic(name), TopicRecord(configs: [:], partitions: 1).encoded())])
            if let exists = try? await client.kv.range(key: keys.topic(name)).count, exists == 1 { return }
            // Back-off while etcd elects a leader: an external process's readiness.
            try await Task.sleep(for: .milliseconds(100))
        }
        throw NotObserved(description: "topic \(name) could not be written")
    }

    @Test("its member killed, the watcher resumes on the next without a re-read; after a compaction it reads everything again")
    func resumesThenRereads() async throws {
        try await withEtcdCluster { members, client in
            // The watcher's own client knows members 0 and 1 only, so once 0 is killed its
            // watch is on 1 (with all three it could land on 2 under load, and then freezing 1
            // below would not touch it: CI saw that once).
            let watching = testClient([members[0], members[1]])
            // Into a cache made before the broker joined, as `sluice serve` configures its server.
            let placeholder = ClusterMetadataCache(ClusterKeyspace(keys: keys, revision: 0).snapshot)
            let watcher = try await ClusterMetadataWatcher.start(client: watching, keys: keys, into: placeholder, logger: etcdTestLogger)
            #expect(watcher.cache === placeholder && placeholder.snapshot.revision > 0)
            try await putBroker(1, keys: keys, client: client)
            _ = try await firstSnapshot(of: watcher.cache, "broker 1") { $0.brokers[1] != nil }

            await members[0].crash()
            let others = testClient([members[1], members[2]])
            try await putTopic("a", others)
            _ = try await firstSnapshot(of: watcher.cache, "topic a, after the watch moved to member 1") { $0.topics["a"] != nil }
            #expect(watcher.fullReads == 1, "resumed from the next revision: nothing read again")

            try members[0].restart()
            let survivors = testClient([members[0], members[2]])
            try await waitUntilAnswering(survivors, [members[0], members[2]])
            // The watch's member frozen: its stream stays open and silent while the history
            // it would resume from is compacted away.
            members[1].signal(SIGSTOP)
            try await putTopic("b", survivors)
            try await putTopic("c", survivors)
            let latest = try #require(try await survivors.kv.range(key: keys.topic("c")).header?.revision)
            try await survivors.kv.compact(revision: latest)
            await members[1].crash()
            let caughtUp = try await firstSnapshot(of: watcher.cache, "topics b and c after a full read") {
                $0.topics["b"] != nil && $0.topics["c"] != nil
            }
            #expect(watcher.fullReads == 2)
            #expect(Set(caughtUp.topics.keys) == ["a", "b", "c"] && caughtUp.brokers.keys.sorted() == [1])

            await watcher.stop()
            for extra in [watching, others, survivors] { await extra.close() }
        }
    }

    @Test("a watch tells when a response's events are all handed out, so a Txn's changes are published together")
    func wholeTransactions() async throws {
        try await withEtcdClient { _, client in
            let start = try #require(try await client.kv.range(key: keys.controller).header?.revision)
            let written = try await client.kv.txn(
                compare: [], success: (0..<3).map { .put(keys.partition("t", UInt32($0)), PartitionState(newOn: [1]).encoded()) })
            try await client.kv.put(key: keys.topic("t"), value: TopicRecord(configs: [:], partitions: 3).encoded())
            var events = client.watch(prefix: ByteBuffer(string: keys.root), from: start + 1).makeAsyncIterator()
            var buffered: [Bool] = []
            for _ in 0..<4 {
                _ = try #require(try await events.next())
                buffered.append(events.hasBufferedEvents)
            }
            // Never done in the middle of the Txn; done after the last event. (A watch from a
            // past revision gets both revisions in one response, a live one in two.)
            #expect(Array(buffered.prefix(2)) == [true, true] && buffered.last == false,
                    "\(buffered) for the Txn at revision \(written.header?.revision ?? 0) and the put after it")
        }
    }
}
