import Foundation
import SluiceAPI
import SluiceBroker
import SluiceClient
import SluiceService
import SluiceStorage
import SluiceTestSupport
import SluiceWire
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A partition whose log cannot be opened is reported offline with the reason, reads of
/// it fail with that reason, and the rest of the broker serves; a broker whose consumer
/// offsets log cannot be opened starts anyway and answers group calls UNAVAILABLE until
/// the log opens (docs/operations.md).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct OfflinePartitionTests {
    static let groups = "/sluice.v1.Groups/"

    /// Partition `index`'s log directory of `topic` under a broker's data directory.
    static func partitionDirectory(_ dataDirectory: String, topic: TopicDescription, index: UInt32) -> String {
        "\(dataDirectory)/topics/\(topic.name)-\(topic.topicId)/\(index)"
    }

    /// Topic "orders" with two partitions, holding a0 a1 and b0 b1 b2.
    func ordersWithTwoPartitions(_ broker: InProcessBroker) async throws -> TopicDescription {
        let topic = try await broker.admin.createTopic(CreateTopicRequest(name: "orders", partitions: 2))
        try await produce(broker, "orders", partition: 0, ["a0", "a1"])
        try await produce(broker, "orders", partition: 1, ["b0", "b1", "b2"])
        return topic
    }

    /// Overwrites partition 1's checkpoint with bytes that fail its checks, as a damaged
    /// disk would, while no broker has the directory open.
    static func corruptCheckpoint(of topic: TopicDescription, in directory: TemporaryDirectory) throws {
        let checkpoint = partitionDirectory(directory.path + "/data", topic: topic, index: 1) + "/" + LogCheckpoint.fileName
        try Data(repeating: 0x5A, count: 28).write(to: URL(fileURLWithPath: checkpoint))
    }

    /// Starts a broker in `directory`, lets `prepare` write through it, stops it, lets
    /// `damage` change the files while no broker has them open, and starts a broker on
    /// them again.
    func restartedAfterDamage<Prepared>(
        in directory: TemporaryDirectory, prepare: (InProcessBroker) async throws -> Prepared,
        damage: (Prepared) throws -> Void
    ) async throws -> InProcessBroker {
        let broker = try await InProcessBroker.start(directory: directory)
        let prepared = try await prepare(broker)
        await broker.stop()
        try damage(prepared)
        return try await InProcessBroker.start(directory: directory)
    }

    @Test("a corrupt checkpoint: describe says offline and why, subscribe fails UNAVAILABLE with it, other partitions serve")
    func corruptCheckpointIsOfflineNotEmpty() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let broker = try await restartedAfterDamage(in: directory, prepare: ordersWithTwoPartitions) {
            try Self.corruptCheckpoint(of: $0, in: directory)
        }
        let described = try await broker.admin.describeTopic(named: "orders")
        let offline = try #require(described.partitions.first { $0.partition == 1 })
        #expect(offline.offline)
        #expect(offline.offlineReason.contains("corrupt checkpoint"), "\(offline.offlineReason)")
        let online = try #require(described.partitions.first { $0.partition == 0 })
        #expect(!online.offline && online.offlineReason.isEmpty)
        #expect(online.logEndOffset == 2)

        for partitions in [[], [PartitionSubscription(partition: 1, start: .earliest)]] {
            await expectStatus(.unavailable, containing: "corrupt checkpoint") {
                var stream = try await SubscribeStream(
                    broker.connection, SubscribeRequest(topic: "orders", partitions: partitions, defaultStart: .earliest))
                _ = try await stream.next()
            }
        }
        await expectStatus(.unavailable, containing: "partition 1 of topic \"orders\" is offline") {
            var stream = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "orders", defaultStart: .earliest))
            _ = try await stream.next()
        }

        var healthy = try await SubscribeStream(broker.connection, SubscribeRequest(
            topic: "orders", partitions: [PartitionSubscription(partition: 0, start: .earliest)]))
        #expect(try await healthy.records(2).map(\.value) == ["a0", "a1"])
        healthy.call.cancel()
        try await produce(broker, "orders", partition: 0, ["a2"])
        await broker.stop()
    }

    @Test("a group's describe marks an offline partition's lag unknown with the reason; a reset of it is UNAVAILABLE, a commit to it STORAGE_ERROR, both with the reason")
    func groupsNameOfflinePartitions() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let broker = try await restartedAfterDamage(in: directory) { broker in
            let topic = try await ordersWithTwoPartitions(broker)
            let _: CommitOffsetsResponse = try await broker.unary(Self.groups + "CommitOffsets", CommitOffsetsRequest(
                group: "g", memberId: "", generation: -1,
                offsets: [OffsetCommit(topic: "orders", partition: 0, offset: 1), OffsetCommit(topic: "orders", partition: 1, offset: 1)]))
            return topic
        } damage: {
            try Self.corruptCheckpoint(of: $0, in: directory)
        }
        let described: DescribeGroupResponse = try await broker.unary(Self.groups + "DescribeGroup", DescribeGroupRequest(group: "g"))
        let lags = try #require(described.group).partitions
        let offline = try #require(lags.first { $0.partition == 1 })
        #expect(offline.offline && offline.offlineReason.contains("corrupt checkpoint"), "\(offline)")
        #expect(offline.committedOffset == 1)
        let online = try #require(lags.first { $0.partition == 0 })
        #expect(!online.offline && online.lag == 1)
        await expectStatus(.unavailable, containing: "partition 1 of topic \"orders\" is offline: corrupt checkpoint") {
            let _: ResetOffsetsResponse = try await broker.unary(Self.groups + "ResetOffsets", ResetOffsetsRequest(
                group: "g", topic: "orders", target: .earliest(true)))
        }
        // A commit to it is refused for that partition alone, in the same words and with
        // the per-partition code Produce answers for an offline partition.
        let committed: CommitOffsetsResponse = try await broker.unary(Self.groups + "CommitOffsets", CommitOffsetsRequest(
            group: "g", memberId: "", generation: -1,
            offsets: [OffsetCommit(topic: "orders", partition: 0, offset: 2), OffsetCommit(topic: "orders", partition: 1, offset: 2)]))
        #expect(committed.results.map(\.error) == [ErrorCode.none, .storageError], "\(committed.results)")
        #expect(committed.results.last?.errorMessage.contains("partition 1 of topic \"orders\" is offline: corrupt checkpoint") == true,
                "\(committed.results)")
        await broker.stop()
    }

    @Test("a segment cut short after a clean shutdown is offline with the reason")
    func cutSegmentIsOffline() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let broker = try await restartedAfterDamage(in: directory) { broker in
            let topic = try await broker.admin.createTopic(CreateTopicRequest(name: "cut", partitions: 2))
            try await produce(broker, "cut", partition: 1, ["x0", "x1", "x2"])
            return topic
        } damage: { topic in
            let partition = Self.partitionDirectory(directory.path + "/data", topic: topic, index: 1)
            let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: partition).first { $0.hasSuffix(".log") })
            let path = partition + "/" + segment
            let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            #expect(truncate(path, off_t(size - 5)) == 0)
        }
        let described = try await broker.admin.describeTopic(named: "cut")
        let offline = try #require(described.partitions.first { $0.partition == 1 })
        #expect(offline.offline)
        #expect(!offline.offlineReason.isEmpty)
        await expectStatus(.unavailable, containing: offline.offlineReason) {
            var stream = try await SubscribeStream(broker.connection, SubscribeRequest(
                topic: "cut", partitions: [PartitionSubscription(partition: 1, start: .earliest)]))
            _ = try await stream.next()
        }
        #expect(described.partitions.first { $0.partition == 0 }?.offline == false)
        await broker.stop()
    }

    @Test("an offsets log that cannot open: the broker starts and serves, groups answer UNAVAILABLE, then recover")
    func offsetsLogOnAFullDisk() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let disk = OffsetsDiskFullFileSystem()
        func configure(_ configuration: inout BrokerServer.Configuration) {
            configuration.storage.fileSystem = disk
            // Every group call may try the log again, so the test needs no waiting.
            configuration.groups.offsetsLogRetryMs = 0
            configuration.groups.offsetsLogMaxRetryMs = 0
        }
        var broker = try await InProcessBroker.start(directory: directory, configure: configure)
        _ = try await broker.admin.createTopic(CreateTopicRequest(name: "orders", partitions: 1))
        try await produce(broker, "orders", partition: 0, ["a0", "a1", "a2"])
        let _: CommitOffsetsResponse = try await broker.unary(Self.groups + "CommitOffsets", CommitOffsetsRequest(
            group: "g", memberId: "", generation: -1, offsets: [OffsetCommit(topic: "orders", partition: 0, offset: 2)]))
        await broker.stop()

        disk.full.store(true, ordering: .sequentiallyConsistent)
        broker = try await InProcessBroker.start(directory: directory, configure: configure)

        // Topics serve.
        try await produce(broker, "orders", partition: 0, ["a3"])
        var stream = try await SubscribeStream(broker.connection, SubscribeRequest(topic: "orders", defaultStart: .earliest))
        #expect(try await stream.records(4).map(\.value) == ["a0", "a1", "a2", "a3"])
        stream.call.cancel()

        // Every group call names the cause.
        let reason = "the consumer offsets log cannot be opened"
        await expectStatus(.unavailable, containing: reason) {
            let _: ListGroupsResponse = try await broker.unary(Self.groups + "ListGroups", ListGroupsRequest())
        }
        await expectStatus(.unavailable, containing: "disk full") {
            let _: FetchOffsetsResponse = try await broker.unary(Self.groups + "FetchOffsets", FetchOffsetsRequest(group: "g"))
        }
        await expectStatus(.unavailable, containing: reason) {
            let _: CommitOffsetsResponse = try await broker.unary(Self.groups + "CommitOffsets", CommitOffsetsRequest(
                group: "g", memberId: "", generation: -1, offsets: [OffsetCommit(topic: "orders", partition: 0, offset: 3)]))
        }
        await expectStatus(.unavailable, containing: reason) {
            let _: DescribeGroupResponse = try await broker.unary(Self.groups + "DescribeGroup", DescribeGroupRequest(group: "g"))
        }
        await expectStatus(.unavailable, containing: reason) {
            var member = try await GroupMemberStream.join(broker.connection, topics: ["orders"])
            _ = try await member.next()
        }

        // Space is freed: the next group call opens the log, with the offsets committed before.
        disk.full.store(false, ordering: .sequentiallyConsistent)
        let fetched: FetchOffsetsResponse = try await broker.unary(Self.groups + "FetchOffsets", FetchOffsetsRequest(group: "g"))
        #expect(fetched.offsets.map(\.offset) == [2])
        let committed: CommitOffsetsResponse = try await broker.unary(Self.groups + "CommitOffsets", CommitOffsetsRequest(
            group: "g", memberId: "", generation: -1, offsets: [OffsetCommit(topic: "orders", partition: 0, offset: 4)]))
        #expect(committed.results.map(\.error) == [ErrorCode.none])
        let listed: ListGroupsResponse = try await broker.unary(Self.groups + "ListGroups", ListGroupsRequest())
        #expect(listed.groups.map(\.group) == ["g"])
        await broker.stop()
    }
}

/// The real file system, except that while `full` is set everything that would write or
/// sync under `__consumer_offsets` fails with ENOSPC: a disk that filled up, seen only
/// by the offsets log (other partitions' files were already allocated).
final class OffsetsDiskFullFileSystem: StorageFileSystem {
    let inner = PosixFileSystem()
    let full = Atomic<Bool>(false)

    private func refuse(_ operation: String, _ path: String) throws(StorageIOError) {
        guard full.load(ordering: .sequentiallyConsistent), path.contains(InternalTopics.consumerOffsets) else { return }
        throw StorageIOError(errno: ENOSPC, operation: operation, path: path)
    }

    func open(_ path: String, mode: StorageOpenMode) throws(StorageIOError) -> any StorageFile {
        if mode != .readOnly { try refuse("open", path) }
        return try inner.open(path, mode: mode)
    }
    func listDirectory(_ path: String) throws(StorageIOError) -> [String] { try inner.listDirectory(path) }
    func createDirectory(_ path: String) throws(StorageIOError) {
        try refuse("mkdir", path)
        try inner.createDirectory(path)
    }
    func rename(_ source: String, to destination: String) throws(StorageIOError) {
        try refuse("rename", destination)
        try inner.rename(source, to: destination)
    }
    func remove(_ path: String) throws(StorageIOError) { try inner.remove(path) }
    func syncDirectory(_ path: String) throws(StorageIOError) {
        try refuse("fsync", path)
        try inner.syncDirectory(path)
    }
    func fileExists(_ path: String) -> Bool { inner.fileExists(path) }
}
