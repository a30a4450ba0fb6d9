import NIOCore
import SluiceAPI
import SluiceCluster
import SluiceTestSupport
import Synchronization
import Testing

/// The controller changing a topic that exists, against a real etcd: settings rewritten in
/// the topic key, partitions added in fenced Txns that a watcher sees all of or none of.
@Suite("Controller topic changes", .timeLimit(.minutes(1)), .enabled(if: EtcdProcess.binary != nil, Comment(rawValue: etcdMissing)))
struct ControllerTopicChangeTests {
    let keys = ClusterKeys(clusterName: "change")

    @Test("AlterTopicConfig rewrites the topic's settings; CreatePartitions adds placed partitions, seen whole, over leftovers of an unfinished growth; the id stays, and a re-created topic gets a new one")
    func alterAndGrow() async throws {
        try await withEtcdClient { _, client in
            for id in UInt32(1)...3 { try await putBroker(id, keys: keys, client: client) }
            let watcher = try await ClusterMetadataWatcher.start(client: client, keys: keys, logger: etcdTestLogger)
            let (term, controller) = try await elect(BrokerInfo(id: 1, address: "127.0.0.1:9101"), keys: keys, client: client)
            let created = try await controller.createTopic(name: "g", partitions: 2, replicationFactor: 2, configs: ["retention.ms": "1000"])
            #expect(created.id.count == 36 && created.id == created.id.lowercased() && created.id.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12])

            let altered = try await controller.alterTopicConfig(name: "g", set: ["segment.bytes": "1048576"], reset: ["retention.ms"])
            #expect(altered.configs == ["segment.bytes": "1048576"] && altered.partitions == created.partitions)
            let seenAltered = try await firstSnapshot(of: watcher.cache, "g's new settings") { $0.topics["g"]?.configs["segment.bytes"] != nil }
            #expect(seenAltered.topics["g"] == altered)

            // A growth that stopped after its first Txn left a key past the count.
            try await client.kv.put(key: keys.partition("g", 2), value: PartitionState(newOn: [3]).encoded())
            let partial = Mutex<[Int]>([])
            let observer = Task {
                for await snapshot in watcher.cache.snapshots() {
                    if let count = snapshot.topics["g"]?.partitions.count, count != 2, count != 250 { partial.withLock { $0.append(count) } }
                }
            }
            // More new partitions than one Txn holds.
            let grown = try await controller.createPartitions(name: "g", totalCount: 250)
            #expect(grown.configs == altered.configs && Array(grown.partitions.prefix(2)) == created.partitions)
            #expect(grown.partitions.allSatisfy { $0.replicas.count == 2 && $0.leaderEpoch == 0 })
            var leads: [UInt32: Int] = [:]
            for state in grown.partitions { leads[state.leader!, default: 0] += 1 }
            #expect(leads.values.max()! - leads.values.min()! <= 1, "leaders spread: \(leads)")
            let seenGrown = try await firstSnapshot(of: watcher.cache, "g grown") { $0.topics["g"]?.partitions.count == 250 }
            #expect(seenGrown.topics["g"] == grown)

            #expect(grown.id == created.id && altered.id == created.id)

            await #expect(throws: ControllerError.partitionCountNotLarger(topic: "g", current: 250, requested: 250)) {
                _ = try await controller.createPartitions(name: "g", totalCount: 250)
            }
            await #expect(throws: ControllerError.unknownTopic("nope")) {
                _ = try await controller.createPartitions(name: "nope", totalCount: 2)
            }
            await #expect(throws: ControllerError.unknownTopic("nope")) {
                _ = try await controller.alterTopicConfig(name: "nope", set: [:], reset: ["retention.ms"])
            }
            observer.cancel()
            #expect(partial.withLock { $0 }.isEmpty, "partial topics seen: \(partial.withLock { $0 })")

            // Deleted and created again under its name: a new id.
            try await controller.deleteTopic(name: "g")
            let again = try await controller.createTopic(name: "g", partitions: 1, replicationFactor: 1, configs: [:])
            #expect(again.id != created.id && again.id.count == 36)
            let seenAgain = try await firstSnapshot(of: watcher.cache, "g created again") { $0.topics["g"]?.id == again.id }
            #expect(seenAgain.topics["g"] == again)
            await watcher.stop()
            await term.keepAlive.stop()
        }
    }
}
