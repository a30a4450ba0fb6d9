import Foundation
import Logging
import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceCluster
@testable import SluiceService
import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Testing

/// A broker acting on cluster metadata a test feeds by hand (`ClusterMetadataCache`):
/// the Metadata RPC, NOT_LEADER for Produce and Subscribe, local topics following the
/// metadata, and admin calls going to the controller.
@Suite(.timeLimit(.minutes(2))) struct ClusterBrokerTests {
    @Test func metadataOfASingleNode() async throws {
        let broker = try await InProcessBroker.start { $0.brokerID = 7 }
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "orders", partitions: 3))

        let all = try await broker.metadata()
        #expect(all.brokers == [MetadataBroker(id: 7, address: broker.address)])
        #expect(all.hasController && all.controllerId == 7 && all.answeredBy == 7)
        #expect(all.cluster == "" && all.metadataRevision == 0)
        // The consumer offsets topic is the broker's own, not a client's.
        #expect(all.topics.map(\.name) == ["orders"])
        #expect(all.topics[0].partitions == (0..<3).map {
            MetadataPartition(partition: $0, leaderId: 7, hasLeader: true, leaderEpoch: 0, replicas: [7], inSyncReplicas: [7])
        })

        let asked = try await broker.metadata(["nope", "orders"])
        #expect(asked.topics.map(\.name) == ["nope", "orders"])
        #expect(asked.topics[0].error == .unknownTopic && asked.topics[0].partitions.isEmpty)
        #expect(asked.topics[0].errorMessage.contains("does not exist"))
        #expect(asked.topics[1].error == ErrorCode.none && asked.topics[1].partitions.count == 3)
        await broker.stopAndRemove()
    }

    @Test func metadataInAClusterIsTheSnapshot() async throws {
        let (broker, metadata) = try await brokerOne()
        metadata.update(withBrokerTwo(broker, revision: 42, t: [
            PartitionState(replicas: [2, 1], leader: 2, leaderEpoch: 5, isr: [2, 1]),
            // Led by a broker that is gone (its lease expired): no leader a client can reach.
            PartitionState(replicas: [3, 1], leader: 3, leaderEpoch: 1, isr: [3]),
        ]))

        let answer = try await broker.metadata(["t", "gone"])
        #expect(answer.brokers == [MetadataBroker(id: 1, address: broker.address), MetadataBroker(id: 2, address: "10.0.0.2:9092")])
        #expect(answer.hasController && answer.controllerId == 2 && answer.answeredBy == 1)
        #expect(answer.cluster == "test" && answer.metadataRevision == 42)
        #expect(answer.topics[0].partitions == [
            MetadataPartition(partition: 0, leaderId: 2, hasLeader: true, leaderEpoch: 5, replicas: [2, 1], inSyncReplicas: [2, 1]),
            MetadataPartition(partition: 1, leaderId: 0, hasLeader: false, leaderEpoch: 1, replicas: [3, 1], inSyncReplicas: [3]),
        ])
        #expect(answer.topics[1].name == "gone" && answer.topics[1].error == .unknownTopic)
        await broker.stopAndRemove()
    }

    /// Broker 1 of a cluster whose metadata the test feeds; nothing read from etcd yet.
    private func brokerOne() async throws -> (InProcessBroker, ClusterMetadataCache) {
        let metadata = ClusterMetadataCache(emptyClusterSnapshot)
        return (try await InProcessBroker.inCluster(id: 1, metadata: metadata), metadata)
    }

    /// `broker` as broker 1 and a broker 2 elsewhere, the controller; topic "t" with `t`'s partitions.
    private func withBrokerTwo(_ broker: InProcessBroker, revision: Int64, t: [PartitionState]) -> ClusterSnapshot {
        clusterSnapshot(revision: revision, brokers: [1: broker.address, 2: "10.0.0.2:9092"], controller: 2, topics: ["t": t])
    }

    /// Broker 1 holds both partitions of "t" and leads only partition 1.
    private func followerOfPartitionZero() async throws -> (InProcessBroker, ClusterMetadataCache) {
        let (broker, metadata) = try await brokerOne()
        metadata.update(withBrokerTwo(broker, revision: 10, t: [
            PartitionState(replicas: [2, 1], leader: 2, leaderEpoch: 4, isr: [2, 1]),
            PartitionState(replicas: [1, 2], leader: 1, leaderEpoch: 0, isr: [1, 2]),
        ]))
        // The registry knows a topic a moment before its logs are open.
        try await eventually("the local logs of t are open") {
            (try? broker.server.broker.partitionLog(topic: "t", partition: 1)) != nil
                && (try? broker.server.broker.partitionLog(topic: "t", partition: 0)) != nil
        }
        return (broker, metadata)
    }

    @Test func produceToAFollowerAnswersNotLeaderWithTheLeaderAndAppendsNothing() async throws {
        let (broker, metadata) = try await followerOfPartitionZero()
        var stream = try await ProduceStream(broker.connection)
        let refused = try await stream.produce("t", partition: 0, correlationID: 9, TestBatches.batch(["x"]))
        #expect(refused.error == .notLeader && refused.correlationId == 9)
        #expect(refused.errorMessage.hasPrefix("not leader for t/0:"))
        #expect(refused.leader == LeaderHint(brokerId: 2, address: "10.0.0.2:9092", leaderEpoch: 4))
        #expect(try broker.server.broker.partitionLog(topic: "t", partition: 0).logEndOffset == 0)

        // The partition it leads takes batches on the same stream.
        let accepted = try await stream.produce("t", partition: 1, TestBatches.batch(["y"]))
        #expect(accepted.error == ErrorCode.none && accepted.baseOffset == 0)

        // The leader gone: still refused, now with no hint.
        metadata.update(clusterSnapshot(
            revision: 11, brokers: [1: broker.address], controller: 1,
            topics: ["t": [
                PartitionState(replicas: [2, 1], leader: nil, leaderEpoch: 4, isr: [2, 1]),
                PartitionState(replicas: [1, 2], leader: 1, leaderEpoch: 0, isr: [1, 2]),
            ]]))
        let leaderless = try await stream.produce("t", partition: 0, TestBatches.batch(["z"]))
        #expect(leaderless.error == .notLeader && leaderless.leader == nil)
        #expect(leaderless.errorMessage.contains("no leader"))
        #expect(try broker.server.broker.partitionLog(topic: "t", partition: 0).logEndOffset == 0)
        try await stream.close()
        await broker.stopAndRemove()
    }

    @Test func storedBatchesCarryTheLeaderEpochTheyWereAppendedAt() async throws {
        let (broker, metadata) = try await followerOfPartitionZero()
        try await produce(broker, "t", partition: 1, ["at epoch 0"])
        // The same leader, a later term (it lost and won the partition back).
        metadata.update(withBrokerTwo(broker, revision: 11, t: [
            PartitionState(replicas: [2, 1], leader: 2, leaderEpoch: 4, isr: [2, 1]),
            PartitionState(replicas: [1, 2], leader: 1, leaderEpoch: 3, isr: [1, 2]),
        ]))
        try await produce(broker, "t", partition: 1, ["at epoch 3"])

        let log = try broker.server.broker.partitionLog(topic: "t", partition: 1)
        let stored = Array(StoredBatches(try log.read(from: 0, maxBytes: 1 << 20).batches))
        #expect(stored.map(\.header.leaderEpoch) == [0, 3])
        #expect(log.latestLeaderEpoch == 3)
        let described: DescribeTopicResponse = try await broker.unary("/sluice.v1.Broker/DescribeTopic", DescribeTopicRequest(name: "t"))
        #expect(described.topic?.partitions.map(\.leaderEpoch) == [4, 3])
        await broker.stopAndRemove()
    }

    @Test func aSingleNodeAppendsAtTheEpochOfALogAClusterWrote() async throws {
        let metadata = ClusterMetadataCache(emptyClusterSnapshot)
        let directory = TemporaryDirectory()
        let member = try await InProcessBroker.inCluster(id: 1, metadata: metadata, directory: directory)
        metadata.update(clusterSnapshot(
            revision: 3, brokers: [1: member.address], topics: ["t": [PartitionState(replicas: [1], leader: 1, leaderEpoch: 3, isr: [1])]]))
        try await eventually("the local log of t is open") { (try? member.server.broker.partitionLog(topic: "t", partition: 0)) != nil }
        try await produce(member, "t", partition: 0, ["in the cluster"])
        await member.stop()

        // The same data directory without --cluster: no leader changes any more, and the
        // log's epoch does not go back.
        let single = try await InProcessBroker.start(directory: directory)
        try await produce(single, "t", partition: 0, ["on a single node"])
        let log = try single.server.broker.partitionLog(topic: "t", partition: 0)
        // One read per batch: the restart may have started a new segment.
        let epochs = try [0, 1].flatMap { offset in
            Array(StoredBatches(try log.read(from: offset, maxBytes: 1 << 20).batches).prefix(1)).map(\.header.leaderEpoch)
        }
        #expect(epochs == [3, 3])
        await single.stopAndRemove()
    }

    @Test func subscribeEndsNotLeaderWhenLeadershipMovesAway() async throws {
        let (broker, metadata) = try await followerOfPartitionZero()
        await expectStatus(.unavailable, containing: "not leader for t/0: the leader is broker 2 at 10.0.0.2:9092") {
            var follower = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "t", partitions: [.init(partition: 0)]))
            _ = try await follower.next()
        }

        var subscriber = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "t", partitions: [.init(partition: 1)]))
        try await produce(broker, "t", partition: 1, ["before"])
        #expect(try await subscriber.records(1).map(\.value) == ["before"])
        // Leadership of partition 1 moves to broker 2: the running stream ends.
        metadata.update(withBrokerTwo(broker, revision: 12, t: [
            PartitionState(replicas: [2, 1], leader: 2, leaderEpoch: 4, isr: [2, 1]),
            PartitionState(replicas: [1, 2], leader: 2, leaderEpoch: 1, isr: [1, 2]),
        ]))
        await expectStatus(.unavailable, containing: "not leader for t/1: the leader is broker 2 at 10.0.0.2:9092 (leader epoch 1)") {
            while try await subscriber.next() != nil {}
        }
        await broker.stopAndRemove()
    }

    @Test func localTopicsFollowTheMetadata() async throws {
        let metadata = ClusterMetadataCache(emptyClusterSnapshot)
        let directory = TemporaryDirectory()
        var broker = try await InProcessBroker.inCluster(id: 1, metadata: metadata, directory: directory)
        let placed = clusterSnapshot(
            revision: 3, brokers: [1: broker.address, 2: "10.0.0.2:9092"],
            topics: [
                "mine": [PartitionState(newOn: [2, 1]), PartitionState(newOn: [1, 2]), PartitionState(newOn: [2])],
                "theirs": [PartitionState(newOn: [2])],
            ],
            configs: ["mine": ["retention.ms": "60000"]])
        metadata.update(placed)
        try await eventually("the local logs of mine are open") {
            (try? broker.server.broker.partitionLog(topic: "mine", partition: 0)) != nil
                && (try? broker.server.broker.partitionLog(topic: "mine", partition: 1)) != nil
        }
        let mine = try broker.server.registry.topic(named: "mine")
        #expect(mine.partitionCount == 3 && mine.configOverrides == ["retention.ms": "60000"])
        try expectLogs(broker, "mine", held: [0, 1], notHeld: [2])
        #expect((try? broker.server.registry.topic(named: "theirs")) == nil)

        // After a restart, neither the placeholder before the first read of etcd nor the
        // same snapshot again changes the topic (it is the same one, not a new one).
        await broker.stop()
        let restarted = ClusterMetadataCache(emptyClusterSnapshot)
        broker = try await InProcessBroker.inCluster(id: 1, metadata: restarted, directory: directory)
        let follower = LocalTopicFollower(broker: broker.server.broker, brokerID: 1, logger: Logger(label: "follower-test"))
        for snapshot in [emptyClusterSnapshot, placed, placed] {
            await follower.apply(snapshot)
            #expect(try broker.server.registry.topic(named: "mine").topicID == mine.topicID)
            try expectLogs(broker, "mine", held: [0, 1], notHeld: [2])
        }
        // "mine" gone from the cluster: its local copy and logs go.
        restarted.update(clusterSnapshot(revision: 4, brokers: [1: broker.address, 2: "10.0.0.2:9092"], topics: ["theirs": [PartitionState(newOn: [2])]]))
        let logs = DataDirectory.logsPath(of: directory.path + "/data")
        try await eventually("the local copy of mine and its logs are deleted") {
            let directories = try FileManager.default.contentsOfDirectory(atPath: logs)
            return (try? broker.server.registry.topic(named: "mine")) == nil && !directories.contains { $0.hasPrefix("mine-") }
        }
        #expect(broker.server.registry.topics().allSatisfy { InternalTopics.isInternal($0.name) })
        await broker.stopAndRemove()
    }

    @Test func localTopicsFollowChangedSettingsAndNewPartitions() async throws {
        let (broker, metadata) = try await brokerOne()
        let brokers: [UInt32: String] = [1: broker.address, 2: "10.0.0.2:9092"]
        metadata.update(clusterSnapshot(
            revision: 3, brokers: brokers, topics: ["g": [PartitionState(newOn: [1, 2])]], configs: ["g": ["retention.ms": "60000"]]))
        try await eventually("the local log of g is open") { (try? broker.server.broker.partitionLog(topic: "g", partition: 0)) != nil }
        var stream = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "g", defaultStart: .latest))
        try await produce(broker, "g", partition: 0, ["p0"])
        #expect(try await stream.records(1).map(\.value) == ["p0"])

        // AlterTopicConfig and CreatePartitions reached the metadata: a setting changed,
        // one reset, and two partitions more, one of them on this broker.
        // (A setting that needs the topic's replication factor: the cluster's, 2, not 1.)
        metadata.update(clusterSnapshot(
            revision: 4, brokers: brokers,
            topics: ["g": [PartitionState(newOn: [1, 2]), PartitionState(newOn: [1, 2]), PartitionState(newOn: [2])]],
            configs: ["g": ["segment.bytes": "1048576", "min.insync.replicas": "2"]]))
        try await eventually("the local copy of g has grown") {
            (try? broker.server.broker.partitionLog(topic: "g", partition: 1)) != nil
        }
        let local = try broker.server.registry.topic(named: "g")
        #expect(local.partitionCount == 3 && local.configOverrides == ["segment.bytes": "1048576", "min.insync.replicas": "2"])
        #expect(local.replicationFactor == 2)
        try expectLogs(broker, "g", held: [0, 1], notHeld: [2])
        // The running whole-topic Subscribe reads the new partition this broker leads.
        try await produce(broker, "g", partition: 1, ["p1"])
        let next = try await stream.next()
        #expect(next?.partition == 1)
        #expect(try next.map { try $0.batches.flatMap(TestBatches.values) } == ["p1"])
        stream.call.cancel()
        await broker.stopAndRemove()
    }

    @Test func aTopicCreatedAgainReplacesTheStaleLocalCopy() async throws {
        let (broker, metadata) = try await brokerOne()
        let brokers: [UInt32: String] = [1: broker.address]
        let oldID = "00000000-0000-4000-8000-000000000001", newID = "00000000-0000-4000-8000-000000000002"
        metadata.update(clusterSnapshot(revision: 3, brokers: brokers, topics: ["t": [PartitionState(newOn: [1])]], ids: ["t": oldID]))
        try await eventually("the local log of t is open") { (try? broker.server.broker.partitionLog(topic: "t", partition: 0)) != nil }
        #expect(try broker.server.registry.topic(named: "t").topicID == oldID)
        try await produce(broker, "t", partition: 0, ["old topic's"])

        // Deleted and created again between two snapshots this broker saw.
        metadata.update(clusterSnapshot(revision: 9, brokers: brokers, topics: ["t": [PartitionState(newOn: [1])]], ids: ["t": newID]))
        try await eventually("the local copy of t is the new topic") {
            (try? broker.server.registry.topic(named: "t").topicID) == newID
                && (try? broker.server.broker.partitionLog(topic: "t", partition: 0).logEndOffset) == 0
        }
        let described: DescribeTopicResponse = try await broker.unary("/sluice.v1.Broker/DescribeTopic", DescribeTopicRequest(name: "t"))
        #expect(described.topic?.topicId == newID)
        let listed: ListTopicsResponse = try await broker.unary("/sluice.v1.Broker/ListTopics", ListTopicsRequest())
        #expect(listed.topics.map(\.topicId) == [newID])
        await broker.stopAndRemove()
    }

    /// `topic` has logs of partitions `held` on `broker` and none of `notHeld`.
    private func expectLogs(
        _ broker: InProcessBroker, _ topic: String, held: [UInt32], notHeld: [UInt32], sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        for partition in held {
            #expect(throws: Never.self, sourceLocation: sourceLocation) { try broker.server.broker.partitionLog(topic: topic, partition: partition) }
        }
        for partition in notHeld {
            #expect(throws: BrokerError.self, sourceLocation: sourceLocation) { try broker.server.broker.partitionLog(topic: topic, partition: partition) }
        }
    }

    @Test func adminCallsGoToTheController() async throws {
        let metadata = ClusterMetadataCache(emptyClusterSnapshot)
        let controller = RecordingController(existing: ["taken"])
        let elected = try await InProcessBroker.inCluster(id: 2, metadata: metadata, controller: controller)
        let other = try await InProcessBroker.inCluster(id: 1, metadata: metadata)
        metadata.update(clusterSnapshot(
            revision: 5, brokers: [1: other.address, 2: elected.address], controller: 2,
            topics: ["listed": [PartitionState(newOn: [2, 1])]]))

        let created = try await other.admin.createTopic(CreateTopicRequest(
            name: "fresh", partitions: 2, replicationFactor: 2, configs: ["min.insync.replicas": "2"]))
        #expect(created.name == "fresh" && created.partitionCount == 2 && created.replicationFactor == 2)
        await expectStatus(.alreadyExists, containing: "already exists") {
            try await other.admin.createTopic(CreateTopicRequest(name: "taken", partitions: 1))
        }
        let altered: AlterTopicConfigResponse = try await other.unary(
            "/sluice.v1.Broker/AlterTopicConfig", AlterTopicConfigRequest(name: "taken", set: ["retention.ms": "60000"], reset: ["segment.bytes"]))
        #expect(altered.topic?.configs["retention.ms"] == "60000")
        let grown: CreatePartitionsResponse = try await other.unary(
            "/sluice.v1.Broker/CreatePartitions", CreatePartitionsRequest(name: "taken", totalCount: 4))
        #expect(grown.topic?.partitionCount == 4)
        let _: DeleteTopicResponse = try await other.unary("/sluice.v1.Broker/DeleteTopic", DeleteTopicRequest(name: "taken"))
        // "taken" asked for no replication factor: the cluster's default, min(3, live brokers) = 2.
        #expect(controller.received == [
            "create fresh 2x2", "create taken 1x2", "alter taken set [\"retention.ms=60000\"] reset [\"segment.bytes\"]",
            "grow taken to 4", "delete taken",
        ])

        // Bad input is refused before any controller is asked.
        await expectStatus(.invalidArgument) {
            try await other.admin.createTopic(CreateTopicRequest(name: "bad name!", partitions: 1))
        }
        await expectStatus(.invalidArgument) {
            let _: AlterTopicConfigResponse = try await other.unary(
                "/sluice.v1.Broker/AlterTopicConfig", AlterTopicConfigRequest(name: "taken", set: ["retention.ms": "soon"]))
        }
        // "listed" has two replicas per partition.
        await expectStatus(.invalidArgument, containing: "larger than the replication factor 2") {
            let _: AlterTopicConfigResponse = try await other.unary(
                "/sluice.v1.Broker/AlterTopicConfig", AlterTopicConfigRequest(name: "listed", set: ["min.insync.replicas": "3"]))
        }
        // A forwarded request that lands on a broker that is not the controller is not forwarded again.
        await expectStatus(.unavailable, containing: "the controller is broker 2") {
            _ = try await other.connection.unary(
                path: "/sluice.v1.Broker/CreateTopic", request: CreateTopicRequest(name: "loop", partitions: 1).protobufBytes(),
                metadata: ["sluice-forwarded-by": "3"], timeout: .seconds(30))
        }
        #expect(controller.received.count == 5)
        // Between a controller's loss and the next election there is no one to ask.
        metadata.update(clusterSnapshot(
            revision: 6, brokers: [1: other.address, 2: elected.address], topics: ["listed": [PartitionState(newOn: [2, 1])]]))
        await expectStatus(.unavailable, containing: "no controller is elected") {
            try await other.admin.createTopic(CreateTopicRequest(name: "leaderless", partitions: 1))
        }

        // Reads answer from the metadata on any broker.
        let listed: ListTopicsResponse = try await other.unary("/sluice.v1.Broker/ListTopics", ListTopicsRequest())
        #expect(listed.topics.map(\.name) == ["listed"])
        let described: DescribeTopicResponse = try await other.unary("/sluice.v1.Broker/DescribeTopic", DescribeTopicRequest(name: "listed"))
        let partitions = try #require(described.topic?.partitions)
        #expect(partitions.map(\.replicas) == [[2, 1]] && partitions[0].leader == 2)
        await other.stopAndRemove()
        await elected.stopAndRemove()
    }
}
