import Foundation
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

/// Issue 15's end-to-end checks of replication on real processes: three `sluice serve
/// --cluster` brokers on a 3-member etcd, a topic with replication factor 3 and
/// `min.insync.replicas=2`, records produced with acks=all through the Swift client
/// holding the whole bootstrap list. Each broker keeps its data directory across a
/// restart, so the replicas' segment files can be compared byte for byte.
@Suite("replication: followers copy the leader's log", .serialized, .timeLimit(.minutes(4)), .enabled(if: EtcdProcess.binary != nil))
struct ReplicationTests {
    let keys = ClusterKeys(clusterName: "replicate")

    @Test("records acknowledged with acks=all are on every replica: the same log end, byte-identical segment files")
    func everyReplicaHoldsTheSameBytes() async throws {
        try await withReplicatedCluster { cluster in
            // A topic created without a replication factor gets the cluster's default: three.
            let created = try await runSluice(
                ["topic", "create", "plain", "--partitions", "2", "--broker", cluster.bootstrap.map { "\($0.host):\($0.port)" }.joined(separator: ",")],
                in: try #require(cluster.directories[1]).url)
            #expect(created.status == 0, "\(created.stderr)")
            let plain = try await firstSnapshot(of: cluster.watcher.cache, "plain placed") { $0.topics["plain"]?.partitions.count == 2 }
            #expect(plain.topics["plain"]?.partitions.allSatisfy { $0.replicas.count == 3 } == true, "\(String(describing: plain.topics["plain"]))")
            let ready = try await cluster.createTopic("orders")
            let producer = cluster.producer()
            var offsets: [Int64] = []
            for index in 0..<300 {
                offsets.append(try await producer.send(topic: "orders", value: ByteBuffer(string: "r\(index)"), partition: 0).offset)
            }
            await producer.close()
            #expect(offsets == Array(0..<300), "acknowledged in order, each at its own offset")
            let isr = try #require(ready.partition("orders", 0)).isr
            #expect(Set(isr) == [1, 2, 3], "every replica in sync from the start")

            // The followers' files grow as they append; once all three hold the same bytes
            // (read through the page cache while they run), each is stopped cleanly.
            do {
                try await eventually("every replica's log holds what the leader's does", within: .seconds(60)) {
                    let copies = (UInt32(1)...3).map { cluster.segments(of: $0, topic: "orders") }
                    return copies[0].values.reduce(0) { $0 + $1.count } > 0 && copies.allSatisfy { $0 == copies[0] }
                }
            } catch {
                for id in UInt32(1)...3 { print("broker \(id): \(cluster.segments(of: id, topic: "orders").mapValues(\.count))") }
                throw error
            }
            for id in UInt32(1)...3 { #expect(await cluster.brokers[id]?.process.stop() == 0, "broker \(id) stops cleanly") }
            let copies = (UInt32(1)...3).map { cluster.segments(of: $0, topic: "orders") }
            #expect(copies[0].count >= 1)
            for id in 1..<3 {
                #expect(copies[id].keys == copies[0].keys, "broker \(id + 1) has the same segment files")
                for (name, bytes) in copies[0] { #expect(copies[id][name] == bytes, "broker \(id + 1): \(name) differs") }
            }
        }
    }

    @Test("SIGKILL the leader mid-produce: every acknowledged record is read back from the new leader, in order")
    func killedLeaderLosesNoAcknowledgedRecord() async throws {
        try await withReplicatedCluster { cluster in
            let ready = try await cluster.createTopic("orders")
            let victim = try #require(ready.partition("orders", 0)?.leader)
            let producer = cluster.producer()
            var deliveries: [Delivery] = []
            for index in 0..<100 {
                deliveries.append(try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "k\(index)"), partition: 0))
            }
            // Some acknowledged before the kill, the rest in flight or after it.
            _ = try await deliveries[49].result()
            try await #require(cluster.brokers[victim]).process.crash()
            for index in 100..<300 {
                deliveries.append(try await producer.enqueue(topic: "orders", value: ByteBuffer(string: "k\(index)"), partition: 0))
            }
            var acknowledged: [(index: Int, offset: Int64)] = []
            for (index, delivery) in deliveries.enumerated() {
                if let offset = try? await delivery.result().offset { acknowledged.append((index, offset)) }
            }
            await producer.close()
            #expect(acknowledged.count >= 50)
            #expect(acknowledged.map(\.offset) == acknowledged.map(\.offset).sorted(), "acknowledged in send order")

            let moved = try await firstSnapshot(of: cluster.watcher.cache, "orders/0 led by another broker") {
                guard let leader = $0.partition("orders", 0)?.leader else { return false }
                return leader != victim
            }
            let newLeader = try #require(moved.partition("orders", 0)?.leader)
            // Read from the new leader alone: each acknowledged record at its offset.
            let last = try #require(acknowledged.last?.offset)
            let consumer = Consumer(
                bootstrap: [BrokerAddress(host: "127.0.0.1", port: try #require(cluster.brokers[newLeader]).port)], topic: "orders",
                partitions: [0: .earliest])
            var stored: [Int64: String] = [:]
            for try await record in consumer {
                stored[record.offset] = String(buffer: record.value)
                if record.offset >= last { break }
            }
            for (index, offset) in acknowledged {
                #expect(stored[offset] == "k\(index)", "offset \(offset), acknowledged as record \(index)")
            }

            // The old leader, back, follows the new one: whatever it had appended past
            // what the new leader holds (a tail no one acknowledged) is cut off (KIP-279).
            try await cluster.restart(victim)
            _ = try await cluster.inSync(victim)
            try await cluster.sameSegments(victim, as: newLeader, "the old leader's copy is the new leader's")
        }
    }

    @Test("a killed follower restarted catches up from its own log and rejoins the ISR")
    func restartedFollowerRejoins() async throws {
        try await withReplicatedCluster { cluster in
            let ready = try await cluster.createTopic("orders")
            let state = try #require(ready.partition("orders", 0))
            let follower = try #require(state.replicas.first { $0 != state.leader && $0 != ready.controller })
            let producer = cluster.producer()
            for index in 0..<100 { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "a\(index)"), partition: 0) }

            try await #require(cluster.brokers[follower]).process.crash()
            _ = try await firstSnapshot(of: cluster.watcher.cache, "broker \(follower) out of the ISR") {
                $0.brokers[follower] == nil && $0.partition("orders", 0)?.isr.contains(follower) == false
            }
            // Acknowledged by the two left (min.insync.replicas=2).
            for index in 0..<200 { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "b\(index)"), partition: 0) }
            // What an operator sees meanwhile: the partition under-replicated, and --check says so.
            let degraded = try await cluster.status()
            #expect(degraded.status == 3, "\(degraded.stdout)\(degraded.stderr)")
            #expect(degraded.stdout.contains("under-replicated: 1"), "\(degraded.stdout)")

            try await cluster.restart(follower)
            let rejoined = try await cluster.inSync(follower)
            #expect(rejoined.partition("orders", 0)?.leader == state.leader, "leadership stayed")
            let healed = try await cluster.status()
            #expect(healed.status == 0 && healed.stdout.contains("under-replicated: 0"), "\(healed.stdout)\(healed.stderr)")
            for index in 0..<50 { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "c\(index)"), partition: 0) }
            await producer.close()

            try await cluster.sameSegments(follower, as: try #require(state.leader), "the restarted follower holds what the leader does")
        }
    }

    @Test("a killed leader restarted gets its leadership back once in sync (preferred-leader election)")
    func restartedPreferredLeaderLeadsAgain() async throws {
        try await withReplicatedCluster(extraFlags: ["--leader-rebalance-interval-seconds", "1"]) { cluster in
            let ready = try await cluster.createTopic("orders")
            let state = try #require(ready.partition("orders", 0))
            let preferred = try #require(state.replicas.first)
            #expect(state.leader == preferred, "placement makes the first replica the leader")
            let producer = cluster.producer()
            for index in 0..<50 { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "a\(index)"), partition: 0) }

            try await #require(cluster.brokers[preferred]).process.crash()
            let failedOver = try await firstSnapshot(of: cluster.watcher.cache, "orders/0 led by another broker") {
                $0.partition("orders", 0).map { $0.leader != nil && $0.leader != preferred } ?? false
            }
            for index in 0..<50 { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "b\(index)"), partition: 0) }
            try await cluster.restart(preferred)
            // Back in the ISR first (its leader writes that), then the controller's next
            // rebalance moves the leadership home at a new epoch.
            let home = try await firstSnapshot(of: cluster.watcher.cache, within: .seconds(60), "orders/0 led by broker \(preferred) again") {
                $0.partition("orders", 0)?.leader == preferred
            }
            let after = try #require(home.partition("orders", 0))
            let before = try #require(failedOver.partition("orders", 0))
            #expect(after.leaderEpoch > before.leaderEpoch && after.isr.contains(preferred), "\(after)")
            for index in 0..<50 { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "c\(index)"), partition: 0) }
            await producer.close()
            let records = try await readAll(cluster, expected: 150)
            #expect(records == (0..<50).map { "a\($0)" } + (0..<50).map { "b\($0)" } + (0..<50).map { "c\($0)" })
        }
    }

    @Test("a follower restarted with a flipped bit in a stored batch finds it, cuts its log below it and fetches it again")
    func damagedCopyIsScrubbedAndRefetched() async throws {
        try await withReplicatedCluster { cluster in
            let ready = try await cluster.createTopic("orders")
            let state = try #require(ready.partition("orders", 0))
            let leader = try #require(state.leader)
            let follower = try #require(state.replicas.first { $0 != leader && $0 != ready.controller })
            let producer = cluster.producer()
            for index in 0..<200 { _ = try await producer.send(topic: "orders", value: ByteBuffer(string: "d\(index)"), partition: 0) }
            try await cluster.sameSegments(follower, as: leader, "the follower holds what the leader does")
            #expect(await cluster.brokers[follower]?.process.stop() == 0)

            // One bit of the middle of the follower's segment, inside some batch.
            let (name, bytes) = try #require(cluster.segments(of: follower, topic: "orders").max { $0.value.count < $1.value.count })
            var damaged = bytes
            damaged[damaged.count / 2] ^= 0x10
            let path = try #require(cluster.directories[follower]).path("data/topics/" + name)
            try damaged.write(to: URL(fileURLWithPath: path))

            try await cluster.restart(follower)
            let restarted = try #require(cluster.brokers[follower]).process
            try await eventually("the follower reports the damaged batch, naming its file", within: .seconds(60)) {
                restarted.stderr.contains("a stored batch of the follower's copy fails its check") && restarted.stderr.contains(path)
            }
            _ = try await cluster.inSync(follower)
            try await cluster.sameSegments(follower, as: leader, "the follower fetched the damaged batch again")
            await producer.close()
        }
    }

    // MARK: The cluster

    /// Three brokers on a 3-member etcd, each with a data directory kept across restarts.
    final class ReplicatedCluster: @unchecked Sendable {
        // @unchecked: used by one test task at a time.
        let members: [EtcdProcess]
        let watcher: ClusterMetadataWatcher
        let directories: [UInt32: TemporaryDirectory]
        var brokers: [UInt32: (process: SluiceProcess, port: Int)] = [:]
        private var starts = 0
        /// Flags every broker gets besides the cluster's.
        let extraFlags: [String]

        init(members: [EtcdProcess], watcher: ClusterMetadataWatcher, extraFlags: [String]) {
            self.members = members
            self.watcher = watcher
            self.extraFlags = extraFlags
            directories = Dictionary(uniqueKeysWithValues: (UInt32(1)...3).map { ($0, TemporaryDirectory("sluice-replicate-\($0)")) })
        }

        var bootstrap: [BrokerAddress] {
            (UInt32(1)...3).compactMap { brokers[$0] }.map { BrokerAddress(host: "127.0.0.1", port: $0.port) }
        }

        func start(_ id: UInt32) async throws {
            let directory = try #require(directories[id])
            starts += 1
            let endpoints = members.map(\.endpoint).joined(separator: ",")
            brokers[id] = try await SluiceProcess.serve(
                ["--cluster", "etcd://\(endpoints)/replicate", "--broker-id", "\(id)", "--lease-ttl", "2",
                 "--log-level", "notice"] + extraFlags,
                dataDirectory: directory.path("data"), logsIn: directory.url, logName: "serve-\(starts)")
        }

        /// Starts `id` again over its data directory, once its old registration is gone.
        func restart(_ id: UInt32) async throws {
            _ = try await firstSnapshot(of: watcher.cache, "broker \(id)'s registration expired") { $0.brokers[id] == nil }
            try await start(id)
        }

        /// Creates `name` (one partition, three replicas, min.insync.replicas=2) through
        /// any broker; the snapshot that shows it.
        func createTopic(_ name: String) async throws -> ClusterSnapshot {
            let admin = try await SluiceAdminClient(bootstrap: bootstrap)
            _ = try await admin.createTopic(CreateTopicRequest(
                name: name, partitions: 1, replicationFactor: 3, configs: ["min.insync.replicas": "2"]))
            await admin.close()
            return try await firstSnapshot(of: watcher.cache, "\(name) placed") { $0.topics[name]?.partitions.count == 1 }
        }

        /// `sluice cluster status --check` through the live brokers.
        func status() async throws -> CommandResult {
            let live = (UInt32(1)...3).compactMap { brokers[$0]?.port }.map { "127.0.0.1:\($0)" }.joined(separator: ",")
            return try await runSluice(["cluster", "status", "--check", "--broker", live], in: try #require(directories[1]).url)
        }

        func producer() -> Producer {
            var configuration = ProducerConfiguration()
            configuration.acks = .all
            configuration.deliveryTimeout = .seconds(60)
            configuration.linger = .milliseconds(1)
            return Producer(bootstrap: bootstrap, configuration: configuration)
        }

        /// The segment files (`*.log`) of broker `id`'s copy of `topic`, by path under its
        /// data directory.
        func segments(of id: UInt32, topic: String) -> [String: Data] {
            guard let root = directories[id]?.path("data/topics") else { return [:] }
            let files = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []
            var found: [String: Data] = [:]
            for file in files where file.hasPrefix(topic + "-") && file.hasSuffix(".log") {
                found[file] = FileManager.default.contents(atPath: root + "/" + file)
            }
            return found
        }

        /// The first snapshot with broker `id` in the ISR of `topic`/0.
        func inSync(_ id: UInt32, topic: String = "orders") async throws -> ClusterSnapshot {
            try await firstSnapshot(of: watcher.cache, within: .seconds(60), "broker \(id) in the ISR of \(topic)/0") {
                $0.partition(topic, 0)?.isr.contains(id) == true
            }
        }

        /// Waits until broker `copy` holds segment files byte-identical to broker `source`'s
        /// (read through the page cache while both run).
        func sameSegments(_ copy: UInt32, as source: UInt32, _ what: String, topic: String = "orders") async throws {
            do {
                try await eventually(what, within: .seconds(60)) {
                    let copied = segments(of: copy, topic: topic)
                    return !copied.isEmpty && copied == segments(of: source, topic: topic)
                }
            } catch {
                let sizes = { (id: UInt32) in self.segments(of: id, topic: topic).mapValues(\.count).sorted { $0.key < $1.key } }
                let (a, b) = (segments(of: copy, topic: topic), segments(of: source, topic: topic))
                let differ = a.keys.sorted().compactMap { name -> String? in
                    guard let x = a[name], let y = b[name] else { return nil }
                    return zip(x, y).enumerated().first { $0.element.0 != $0.element.1 }.map { "\(name) from byte \($0.offset)" }
                }
                throw TestProcessError("\(error): broker \(copy) holds \(sizes(copy)), broker \(source) \(sizes(source)); differing: \(differ)")
            }
        }

        func stopAll() async {
            for (_, broker) in brokers { await broker.process.stop() }
            for directory in directories.values { directory.remove() }
        }
    }

    /// The first `expected` records of orders/0, read through the bootstrap list (the
    /// consumer follows the leader).
    func readAll(_ cluster: ReplicatedCluster, expected: Int) async throws -> [String] {
        let consumer = Consumer(bootstrap: cluster.bootstrap, topic: "orders", partitions: [0: .earliest])
        var values: [String] = []
        for try await record in consumer {
            values.append(String(buffer: record.value))
            if values.count >= expected { break }
        }
        return values
    }

    func withReplicatedCluster(extraFlags: [String] = [], _ body: (ReplicatedCluster) async throws -> Void) async throws {
        try await withEtcdCluster { members, client in
            let watcher = try await ClusterMetadataWatcher.start(client: client, keys: keys, logger: etcdTestLogger)
            let cluster = ReplicatedCluster(members: members, watcher: watcher, extraFlags: extraFlags)
            do {
                for id in UInt32(1)...3 { try await cluster.start(id) }
                _ = try await firstSnapshot(of: watcher.cache, "three brokers and a controller") { $0.brokers.count == 3 && $0.controller != nil }
                try await body(cluster)
            } catch {
                // What each broker said, for the failure's report.
                for (id, broker) in cluster.brokers.sorted(by: { $0.key < $1.key }) {
                    let text = broker.process.stderr
                    let crash = text.range(of: "Fatal error") ?? text.range(of: "crashed")
                    let shown = crash.map { String(text[$0.lowerBound...].prefix(4000)) } ?? String(text.suffix(4000))
                    print("broker \(id) stderr:\n\(shown)")
                }
                await cluster.stopAll()
                await watcher.stop()
                throw error
            }
            await cluster.stopAll()
            await watcher.stop()
        }
    }
}
