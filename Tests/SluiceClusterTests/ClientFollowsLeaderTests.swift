import Logging
import NIOCore
import SluiceAPI
import SluiceClient
import SluiceCluster
import SluiceTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 14's end-to-end check of the client side, on real processes: three `sluice serve
/// --cluster` brokers on a 3-member etcd, a topic created through whichever broker the admin
/// client reaches (forwarded to the controller), and a producer and a consumer holding only
/// a bootstrap list while the leader of their partition is SIGKILLed and the controller
/// moves it. Data is not replicated yet (issue 15): the new leader starts from an empty log,
/// so what is checked is that every record sent after the move is acknowledged, in order, at
/// the offset where the new leader serves it.
@Suite("a client with a bootstrap list follows a moved leader", .timeLimit(.minutes(3)), .enabled(if: EtcdProcess.binary != nil))
struct ClientFollowsLeaderTests {
    let keys = ClusterKeys(clusterName: "follow")

    @Test("a producer keeps producing and a consumer keeps reading while the partition's leader is killed and moved")
    func keepsProducingWhileTheLeaderMoves() async throws {
        try await withEtcdCluster { members, client in
            let watcher = try await ClusterMetadataWatcher.start(client: client, keys: keys, logger: etcdTestLogger)
            var brokers: [UInt32: ServedBroker] = [:]
            do {
                for id in UInt32(1)...3 {
                    brokers[id] = try await ServedBroker(
                        ["--cluster", "etcd://" + members.map(\.endpoint).joined(separator: ",") + "/follow", "--broker-id", "\(id)",
                         "--lease-ttl", "2", "--log-level", "notice"], label: "sluice-follow-\(id)")
                }
                _ = try await firstSnapshot(of: watcher.cache, "three brokers and a controller") { $0.brokers.count == 3 && $0.controller != nil }
                let bootstrap = (UInt32(1)...3).compactMap { brokers[$0] }.map { BrokerAddress(host: "127.0.0.1", port: $0.port) }

                // Created through the first broker of the list, which forwards it unless it
                // is the controller itself.
                let admin = try await SluiceAdminClient(bootstrap: bootstrap)
                let created = try await admin.createTopic(CreateTopicRequest(name: "orders", partitions: 3, replicationFactor: 3))
                #expect(created.partitionCount == 3)
                let ready = try await firstSnapshot(of: watcher.cache, "orders placed") { $0.topics["orders"]?.partitions.count == 3 }
                let controller = try #require(ready.controller)
                // A partition led by a broker that is not the controller, so the move is the
                // controller's work and the controller survives it.
                let partition = try #require((UInt32(0)..<3).first { ready.partition("orders", $0)?.leader != controller })
                let victim = try #require(ready.partition("orders", partition)?.leader)

                var configuration = ProducerConfiguration()
                configuration.deliveryTimeout = .seconds(60)
                configuration.linger = .milliseconds(1)
                let producer = Producer(bootstrap: bootstrap, configuration: configuration)
                for index in 0..<40 {
                    _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "a\(index)"), partition: Int(partition))
                }
                let refreshesBefore = producer.metadataRefreshCount

                try await #require(brokers[victim]).server.crash()
                var deliveries: [Delivery] = []
                for index in 0..<200 {
                    deliveries.append(try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "b\(index)"), partition: Int(partition)))
                }
                var offsets: [Int64] = []
                for delivery in deliveries { offsets.append(try await delivery.result().offset) }
                #expect(producer.metadataRefreshCount > refreshesBefore, "the move was found through metadata")
                #expect(offsets == offsets.sorted() && Set(offsets).count == offsets.count, "acknowledged in order, each at its own offset")
                await producer.close()

                let moved = try await firstSnapshot(of: watcher.cache, "orders/\(partition) moved") {
                    guard let leader = $0.partition("orders", partition)?.leader else { return false }
                    return leader != victim
                }
                #expect(try #require(moved.partition("orders", partition)).leaderEpoch > ready.partition("orders", partition)!.leaderEpoch)

                // Every live broker describes the partition with its leader's positions, the
                // one that does not lead it included (`sluice consume` stops at that end).
                let newLeader = try #require(moved.partition("orders", partition)?.leader)
                for id in UInt32(1)...3 where id != victim {
                    let asked = try await SluiceAdminClient(bootstrap: [BrokerAddress(host: "127.0.0.1", port: try #require(brokers[id]).port)])
                    let described = try await asked.describeTopic(named: "orders").partitions[Int(partition)]
                    #expect(described.highWatermark == offsets.max()! + 1, "broker \(id) (leader \(newLeader)) describes orders/\(partition)")
                    await asked.close()
                }

                // A consumer given the whole list, the dead broker included, reads the new
                // leader's log: each acknowledged record at the offset it was acknowledged at.
                let consumer = Consumer(bootstrap: bootstrap, topic: "orders", partitions: [Int(partition): .earliest])
                var stored: [Int64: String] = [:]
                for try await record in consumer {
                    stored[record.offset] = String(buffer: record.value)
                    if stored.count == Int(offsets.max()! + 1) { break }
                }
                for (index, offset) in offsets.enumerated() {
                    #expect(stored[offset] == "b\(index)", "offset \(offset)")
                }
                await admin.close()
            } catch {
                for broker in brokers.values { await broker.stop() }
                await watcher.stop()
                throw error
            }
            for broker in brokers.values { await broker.stop() }
            await watcher.stop()
        }
    }
}
