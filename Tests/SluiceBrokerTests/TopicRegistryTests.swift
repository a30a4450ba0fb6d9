import Foundation
import Logging
import SluiceBroker
import SluiceTestSupport
import Testing

private func openRegistry(_ directory: TemporaryDirectory,
                          configuration: TopicRegistry.Configuration = .init()) throws -> TopicRegistry {
    try TopicRegistry(directory: DataDirectory.open(directory.path), configuration: configuration,
                      logger: Logger(label: "test"))
}

/// A registry in a new temporary directory, which the test removes.
private func newRegistry() throws -> (directory: TemporaryDirectory, registry: TopicRegistry) {
    let (directory, registry) = try TemporaryDirectory.holding { try openRegistry($0) }
    return (directory, registry)
}

@Suite(.timeLimit(.minutes(1))) struct TopicNameTests {
    @Test(arguments: ["a", "orders", "Orders.v2", "a_b-c.d", "...", "-", String(repeating: "x", count: 249)])
    func acceptsValidNames(_ name: String) throws {
        try TopicName.validate(name)
    }

    @Test(arguments: ["", ".", "..", "a b", "a/b", "ä", "a\u{0}", "topic!", String(repeating: "x", count: 250)])
    func rejectsInvalidNames(_ name: String) {
        expectBrokerError(.invalidTopicName) { try TopicName.validate(name) }
    }
}

@Suite(.timeLimit(.minutes(1))) struct TopicRegistryTests {
    @Test func createDescribeListDelete() throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }

        let created = try registry.createTopic(named: "orders", partitions: 3, configs: ["retention.ms": "86400000"])
        #expect(created.partitionCount == 3)
        #expect(created.replicationFactor == 1)
        #expect(created.topicID.count == 36)
        #expect(created.config.retentionMs == 86_400_000)
        #expect(created.effectiveConfigs["retention.ms"] == "86400000")
        #expect(created.effectiveConfigs["segment.bytes"] == "1073741824")
        #expect(created.effectiveConfigs.count == TopicSetting.allCases.count)

        _ = try registry.createTopic(named: "audit", partitions: 1)
        #expect(registry.topics().map(\.name) == ["audit", "orders"])

        let details = try registry.describeTopic(named: "orders")
        #expect(details.partitions.map(\.partition) == [0, 1, 2])
        #expect(details.partitions.allSatisfy { $0.offsets == .empty && $0.leader == 1 && $0.replicas == [1] })

        let deleted = try registry.deleteTopic(named: "orders")
        #expect(deleted.topicID == created.topicID)
        #expect(registry.topics().map(\.name) == ["audit"])
        expectBrokerError(.topicNotFound, containing: "orders") { _ = try registry.describeTopic(named: "orders") }
        expectBrokerError(.topicNotFound) { try registry.deleteTopic(named: "orders") }

        let recreated = try registry.createTopic(named: "orders", partitions: 1)
        #expect(recreated.topicID != created.topicID)
    }

    @Test func rejectsBadCreations() throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        _ = try registry.createTopic(named: "orders", partitions: 1)

        expectBrokerError(.topicAlreadyExists, containing: "orders") { _ = try registry.createTopic(named: "orders", partitions: 2) }
        expectBrokerError(.topicAlreadyExists) { _ = try registry.createTopic(named: "orders", partitions: 2, validateOnly: true) }
        expectBrokerError(.invalidTopicName) { _ = try registry.createTopic(named: "..", partitions: 1) }
        expectBrokerError(.invalidPartitionCount) { _ = try registry.createTopic(named: "zero", partitions: 0) }
        expectBrokerError(.invalidPartitionCount) { _ = try registry.createTopic(named: "huge", partitions: 10_001) }
        expectBrokerError(.invalidReplicationFactor, containing: "3") {
            _ = try registry.createTopic(named: "replicated", partitions: 1, replicationFactor: 3)
        }
        expectBrokerError(.invalidConfig, containing: "retention.msx") {
            _ = try registry.createTopic(named: "typo", partitions: 1, configs: ["retention.msx": "1"])
        }
        expectBrokerError(.invalidConfig, containing: "min.insync.replicas") {
            _ = try registry.createTopic(named: "isr", partitions: 1, configs: ["min.insync.replicas": "2"])
        }
        #expect(registry.topics().map(\.name) == ["orders"])
    }

    @Test func validateOnlyStoresNothing() throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        let answer = try registry.createTopic(named: "dry", partitions: 4, validateOnly: true)
        #expect(answer.partitionCount == 4)
        #expect(registry.topics().isEmpty)
        #expect(!directory.exists("topics.json"))
    }

    @Test(arguments: [
        ("retention.ms", "-2"), ("retention.ms", "1.5"), ("retention.ms", ""), ("retention.ms", " 1"),
        ("retention.bytes", "-2"), ("retention.bytes", "abc"),
        ("segment.bytes", "1023"), ("segment.bytes", "2147483648"),
        ("segment.ms", "0"), ("max.message.bytes", "0"), ("max.message.bytes", "4193281"),
        ("message.timestamp.type", "createtime"), ("cleanup.policy", "compact"),
        ("min.insync.replicas", "0"), ("retention.ms", "99999999999999999999"),
    ])
    func rejectsBadSettingValues(_ key: String, _ value: String) throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        expectBrokerError(.invalidConfig, containing: key) {
            _ = try registry.createTopic(named: "t", partitions: 1, configs: [key: value])
        }
    }

    @Test func acceptsEdgeSettingValues() throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        let topic = try registry.createTopic(named: "t", partitions: 1, configs: [
            "retention.ms": "-1", "retention.bytes": "0", "segment.bytes": "1024", "segment.ms": "1",
            "max.message.bytes": "4193280", "message.timestamp.type": "LogAppendTime",
            "cleanup.policy": "delete", "min.insync.replicas": "1",
        ])
        #expect(topic.config.retentionMs == nil)
        #expect(topic.config.retentionBytes == 0)
        #expect(topic.config.segmentBytes == 1024)
        #expect(topic.config.maxMessageBytes == 4_193_280)
        #expect(topic.config.messageTimestampType == .logAppendTime)
        #expect(topic.effectiveConfigs["retention.ms"] == "-1")
    }

    @Test func valuesAreStoredCanonically() throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        let topic = try registry.createTopic(named: "t", partitions: 1, configs: ["retention.ms": "+0042"])
        #expect(topic.configOverrides == ["retention.ms": "42"])
    }

    @Test func maxMessageBytesIsCappedByTheBrokerCeiling() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var configuration = TopicRegistry.Configuration()
        configuration.maxMessageBytesCeiling = 2_000_000
        let registry = try openRegistry(directory, configuration: configuration)
        expectBrokerError(.invalidConfig, containing: "2000000") {
            _ = try registry.createTopic(named: "t", partitions: 1, configs: ["max.message.bytes": "2000001"])
        }
        _ = try registry.createTopic(named: "t", partitions: 1, configs: ["max.message.bytes": "2000000"])
    }

    @Test func alterSetsAndResetsAllOrNothing() throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        _ = try registry.createTopic(named: "t", partitions: 1, configs: ["retention.ms": "1000", "segment.ms": "5000"])

        let altered = try registry.alterTopicConfig(named: "t", set: ["retention.bytes": "4096"], reset: ["retention.ms"])
        #expect(altered.configOverrides == ["segment.ms": "5000", "retention.bytes": "4096"])
        #expect(altered.config.retentionMs == 604_800_000)

        expectBrokerError(.invalidConfig, containing: "nope") {
            _ = try registry.alterTopicConfig(named: "t", set: ["segment.ms": "1"], reset: ["nope"])
        }
        expectBrokerError(.invalidConfig, containing: "both") {
            _ = try registry.alterTopicConfig(named: "t", set: ["segment.ms": "1"], reset: ["segment.ms"])
        }
        expectBrokerError(.invalidConfig) {
            _ = try registry.alterTopicConfig(named: "t", set: ["segment.ms": "1", "segment.bytes": "1"], reset: [])
        }
        expectBrokerError(.topicNotFound) { _ = try registry.alterTopicConfig(named: "missing", set: [:], reset: []) }
        // Nothing of the failed changes landed.
        #expect(try registry.topic(named: "t").configOverrides == ["segment.ms": "5000", "retention.bytes": "4096"])
    }

    @Test func partitionsOnlyGrow() throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        _ = try registry.createTopic(named: "t", partitions: 2)
        expectBrokerError(.invalidPartitionCount, containing: "larger") { _ = try registry.createPartitions(named: "t", totalCount: 2) }
        expectBrokerError(.invalidPartitionCount) { _ = try registry.createPartitions(named: "t", totalCount: 1) }
        expectBrokerError(.invalidPartitionCount) { _ = try registry.createPartitions(named: "t", totalCount: 10_001) }
        expectBrokerError(.topicNotFound) { _ = try registry.createPartitions(named: "u", totalCount: 3) }
        #expect(try registry.createPartitions(named: "t", totalCount: 5).partitionCount == 5)
        #expect(try registry.describeTopic(named: "t").partitions.count == 5)
    }

    @Test func survivesReopen() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var expected: [TopicMetadata] = []
        do {
            let registry = try openRegistry(directory)
            _ = try registry.createTopic(named: "a", partitions: 2, configs: ["max.message.bytes": "2048"])
            _ = try registry.createTopic(named: "b", partitions: 1)
            _ = try registry.createTopic(named: "c", partitions: 1)
            try registry.deleteTopic(named: "b")
            _ = try registry.alterTopicConfig(named: "c", set: ["cleanup.policy": "delete"], reset: [])
            _ = try registry.createPartitions(named: "c", totalCount: 3)
            expected = registry.topics()
            registry.directory.close()
        }
        let reopened = try openRegistry(directory)
        #expect(reopened.topics() == expected)
        #expect(reopened.topics().map(\.partitionCount) == [2, 3])
        #expect(try reopened.topic(named: "a").config.maxMessageBytes == 2048)
    }

    @Test func tornTemporaryFileIsIgnoredAndRemoved() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let before: [TopicMetadata]
        do {
            let registry = try openRegistry(directory)
            _ = try registry.createTopic(named: "kept", partitions: 1)
            before = registry.topics()
            registry.directory.close()
        }
        // A write cut off by a crash before its rename.
        try directory.write("{\"format\" : 1, \"topics\" : [ {\"name\" : \"lost", to: "topics.json.tmp")
        let reopened = try openRegistry(directory)
        #expect(reopened.topics() == before)
        #expect(!directory.exists("topics.json.tmp"))
    }

    @Test func corruptMetadataRefusesToOpen() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try directory.write("{\"format\" : 1, \"topics\" : [", to: "topics.json")
        expectBrokerError(.metadataCorrupt, containing: "topics.json") { _ = try openRegistry(directory) }
        try directory.write("{\"format\" : 2, \"topics\" : []}", to: "topics.json")
        expectBrokerError(.metadataCorrupt, containing: "format 2") { _ = try openRegistry(directory) }
        try directory.write("""
            {"format": 1, "topics": [{"name": "a", "id": "x", "partitions": 1, "replication_factor": 1,
             "configs": {"segment.ms": "0"}, "created_ms": 0}]}
            """, to: "topics.json")
        expectBrokerError(.metadataCorrupt, containing: "segment.ms") { _ = try openRegistry(directory) }
    }

    @Test func fileIsTheDocumentedJSON() throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        let topic = try registry.createTopic(named: "orders", partitions: 3, configs: ["retention.ms": "1000"])
        let text = try directory.read("topics.json")
        #expect(text.hasPrefix("{\n"))
        #expect(text.hasSuffix("}\n"))
        for fragment in ["\"format\" : 1", "\"name\" : \"orders\"", "\"id\" : \"\(topic.topicID)\"",
                         "\"partitions\" : 3", "\"replication_factor\" : 1", "\"retention.ms\" : \"1000\"", "\"created_ms\" : "] {
            #expect(text.contains(fragment), "missing \(fragment) in \(text)")
        }
        #expect(!directory.exists("topics.json.tmp"))
    }

    @Test func aFailedWriteChangesNothing() throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        _ = try registry.createTopic(named: "kept", partitions: 1)
        let before = try directory.read("topics.json")
        // A directory where the temporary file goes makes its creation fail (EISDIR).
        try FileManager.default.createDirectory(atPath: directory.path + "/topics.json.tmp", withIntermediateDirectories: false)

        expectBrokerError(.metadataWriteFailed, containing: "topics.json.tmp") { _ = try registry.createTopic(named: "lost", partitions: 1) }
        expectBrokerError(.metadataWriteFailed) { try registry.deleteTopic(named: "kept") }
        expectBrokerError(.metadataWriteFailed) { _ = try registry.createPartitions(named: "kept", totalCount: 2) }
        #expect(registry.topics().map(\.name) == ["kept"])
        #expect(try registry.topic(named: "kept").partitionCount == 1)
        #expect(try directory.read("topics.json") == before)

        try FileManager.default.removeItem(atPath: directory.path + "/topics.json.tmp")
        _ = try registry.createTopic(named: "later", partitions: 1)
        #expect(registry.topics().map(\.name) == ["kept", "later"])
    }

    @Test func noChangesAfterTheDirectoryIsReleased() throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        _ = try registry.createTopic(named: "kept", partitions: 1)
        registry.directory.close()
        expectBrokerError(.shuttingDown) { _ = try registry.createTopic(named: "late", partitions: 1) }
        expectBrokerError(.shuttingDown) { try registry.deleteTopic(named: "kept") }
        // Reading still works.
        #expect(registry.topics().map(\.name) == ["kept"])
    }

    @Test func concurrentChangesAreAllKept() async throws {
        let (directory, registry) = try newRegistry()
        defer { directory.remove() }
        let count = 64
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask { _ = try registry.createTopic(named: "topic-\(index)", partitions: 1) }
            }
            try await group.waitForAll()
        }
        #expect(registry.topics().count == count)
        registry.directory.close()
        #expect(try openRegistry(directory).topics().count == count)
    }

    @Test func dataDirectoryIsExclusive() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let first = try DataDirectory.open(directory.path)
        expectBrokerError(.dataDirectoryLocked, containing: "in use") { _ = try DataDirectory.open(directory.path) }
        first.close()
        let second = try DataDirectory.open(directory.path)
        #expect(second.isOpen)
        second.close()
    }

    @Test func createsMissingParentDirectories() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let nested = try DataDirectory.open(directory.path + "/a/b/c")
        let registry = try TopicRegistry(directory: nested, logger: Logger(label: "test"))
        _ = try registry.createTopic(named: "t", partitions: 1)
        #expect(directory.exists("a/b/c/topics.json"))
        #expect(directory.exists("a/b/c/.lock"))
    }
}
