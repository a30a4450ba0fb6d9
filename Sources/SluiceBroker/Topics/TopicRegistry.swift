#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Logging
import Synchronization

/// The durable set of topics of one broker: names, ids, partition counts and settings.
///
/// Every change is validated in full, written to `topics.json` (see
/// `TopicMetadataFile`) and only then made visible, so a failed write changes nothing
/// and a restart finds exactly the acknowledged changes. Changes are serialised by one
/// lock held across the write; they are rare admin operations, while lookups on the
/// produce path (`topic(named:)`) only copy a value under the lock.
///
/// Partition data is not this type's business: describe asks a `PartitionOffsetsSource`
/// for offsets (all zero until the storage engine supplies them).
public final class TopicRegistry: Sendable {
    public struct Configuration: Sendable {
        /// This broker's id: the leader and only replica of every partition on a single node.
        public var brokerID: UInt32 = 1
        /// How many brokers can hold replicas (1 on a single node).
        public var availableBrokers: UInt32 = 1
        /// Upper bound of `max.message.bytes`: a batch must fit in one wire message, so
        /// this is the transport's message limit less room for the request around the batch.
        public var maxMessageBytesCeiling: Int = BrokerLimits.defaults.maxMessageBytesCeiling.value
        /// Upper bound of a topic's partition count (each partition costs files and memory).
        public var maxPartitionsPerTopic: UInt32 = BrokerLimits.defaults.maxPartitionsPerTopic.value

        public init() {}
    }

    public let directory: DataDirectory
    public let configuration: Configuration
    private let partitionOffsets: any PartitionOffsetsSource
    private let logger: Logger
    private let topicsByName: Mutex<[String: TopicMetadata]>
    private let metadataPath: String

    /// Loads the registry from `directory`, removing a torn temporary file left by a crash.
    public init(directory: DataDirectory, configuration: Configuration = Configuration(),
                partitionOffsets: any PartitionOffsetsSource = NoPartitionLogs(), logger: Logger) throws(BrokerError) {
        precondition(directory.isOpen, "the data directory must be open (locked)")
        precondition(configuration.maxMessageBytesCeiling >= 1, "max.message.bytes ceiling must be positive")
        self.directory = directory
        self.configuration = configuration
        self.partitionOffsets = partitionOffsets
        self.logger = logger
        let metadataPath = directory.file(TopicMetadataFile.fileName)
        self.metadataPath = metadataPath

        let temporary = DurableFiles.temporaryPath(for: metadataPath)
        if DurableFiles.exists(temporary) {
            // A crash interrupted a write before its rename: the change was never
            // acknowledged, and topics.json still holds the last acknowledged state.
            logger.warning("removing an unfinished metadata write", metadata: ["file": "\(temporary)"])
            DurableFiles.remove(temporary)
        }
        var loaded: [String: TopicMetadata] = [:]
        if let bytes = try DurableFiles.readFile(metadataPath) {
            loaded = try TopicMetadataFile.decode(bytes, path: metadataPath)
        }
        for topic in loaded.values where topic.config.maxMessageBytes > configuration.maxMessageBytesCeiling {
            logger.warning(
                "topic accepts batches larger than the broker's message limit allows; such batches will be refused by the transport",
                metadata: ["topic": "\(topic.name)", "max.message.bytes": "\(topic.config.maxMessageBytes)",
                           "ceiling": "\(configuration.maxMessageBytesCeiling)"])
        }
        topicsByName = Mutex(loaded)
        logger.info("topic registry loaded", metadata: ["topics": "\(loaded.count)", "file": "\(metadataPath)"])
    }

    // MARK: Reading

    /// All topics, sorted by name.
    public func topics() -> [TopicMetadata] {
        topicsByName.withLock { Array($0.values) }.sorted { $0.name < $1.name }
    }

    public func topic(named name: String) throws(BrokerError) -> TopicMetadata {
        guard let topic = topicsByName.withLock({ $0[name] }) else { throw .topicNotFound(name) }
        return topic
    }

    /// The topic with its partitions and their offsets.
    public func describeTopic(named name: String) throws(BrokerError) -> TopicDetails {
        let topic = try topic(named: name)
        return TopicDetails(metadata: topic, partitions: partitions(of: topic))
    }

    public func partitions(of topic: TopicMetadata) -> [PartitionDetails] {
        (0..<topic.partitionCount).map { partition in
            PartitionDetails(
                partition: partition, leader: configuration.brokerID,
                replicas: [configuration.brokerID], inSyncReplicas: [configuration.brokerID],
                offsets: partitionOffsets.offsets(topicID: topic.topicID, partition: partition))
        }
    }

    // MARK: Changing

    /// Creates a topic. `replicationFactor` 0 means the default (1). With `validateOnly`
    /// everything is checked and the would-be topic returned, but nothing is stored.
    /// `localPartitions`: in a cluster, the partitions this broker holds a log of (nil: all;
    /// given, the replication factor is the cluster's, not checked against this broker);
    /// `topicID`: in a cluster, the id the controller gave the topic (nil: a new one).
    public func createTopic(named name: String, partitions: UInt32, replicationFactor: UInt32 = 0,
                            configs: [String: String] = [:], validateOnly: Bool = false,
                            localPartitions: Set<UInt32>? = nil, topicID: String? = nil) throws(BrokerError) -> TopicMetadata {
        if InternalTopics.isInternal(name) {
            throw BrokerError(
                .invalidTopicName,
                "topic names starting with \"\(InternalTopics.reservedPrefix)\" are reserved for the broker's internal topics")
        }
        return try create(named: name, partitions: partitions, replicationFactor: replicationFactor, configs: configs,
                          validateOnly: validateOnly, localPartitions: localPartitions, topicID: topicID)
    }

    /// The internal topic `name` (see `InternalTopics`), created with these settings if
    /// it does not exist yet.
    public func ensureInternalTopic(named name: String, partitions: UInt32, configs: [String: String]) throws(BrokerError) -> TopicMetadata {
        precondition(InternalTopics.isInternal(name), "\(name) is not an internal topic name")
        if let existing = topicsByName.withLock({ $0[name] }) { return existing }
        return try create(named: name, partitions: partitions, replicationFactor: 0, configs: configs, validateOnly: false)
    }

    private func create(named name: String, partitions: UInt32, replicationFactor: UInt32,
                        configs: [String: String], validateOnly: Bool,
                        localPartitions: Set<UInt32>? = nil, topicID: String? = nil) throws(BrokerError) -> TopicMetadata {
        try TopicName.validate(name)
        try checkPartitionCount(partitions, topic: name)
        if let local = localPartitions, let past = local.first(where: { $0 >= partitions }) {
            throw BrokerError(.invalidPartitionCount, "local partition \(past) is not below the partition count \(partitions)")
        }
        let replicas = replicationFactor == 0 ? 1 : replicationFactor
        // A cluster's topic (`localPartitions` given) was placed by its controller on live
        // brokers; this broker's count of brokers is its own only.
        guard localPartitions != nil || replicas <= configuration.availableBrokers else {
            throw BrokerError(
                .invalidReplicationFactor,
                "replication factor \(replicas) is larger than the \(configuration.availableBrokers) broker(s) available")
        }
        var overrides: [String: String] = [:]
        for (key, value) in configs {
            overrides[key] = try TopicSetting.named(key).normalize(value, maxMessageBytesCeiling: configuration.maxMessageBytesCeiling)
        }
        let topic = TopicMetadata(
            name: name, topicID: topicID ?? UUID().uuidString.lowercased(), partitionCount: partitions,
            replicationFactor: replicas, configOverrides: overrides, createdAtMs: Self.nowMs(), localPartitions: localPartitions)
        try checkRelations(topic)
        if validateOnly {
            guard topicsByName.withLock({ $0[name] }) == nil else { throw Self.alreadyExists(name) }
            return topic
        }
        try change { topics throws(BrokerError) in
            guard topics[name] == nil else { throw Self.alreadyExists(name) }
            topics[name] = topic
        }
        logger.info("topic created", metadata: ["topic": "\(name)", "id": "\(topic.topicID)", "partitions": "\(partitions)"])
        return topic
    }

    /// Deletes a topic and returns what it was.
    @discardableResult
    public func deleteTopic(named name: String) throws(BrokerError) -> TopicMetadata {
        let deleted = try change { topics throws(BrokerError) -> TopicMetadata in
            guard let topic = topics.removeValue(forKey: name) else { throw .topicNotFound(name) }
            return topic
        }
        logger.info("topic deleted", metadata: ["topic": "\(name)", "id": "\(deleted.topicID)"])
        return deleted
    }

    /// Sets some settings and returns others to their defaults, all or nothing.
    public func alterTopicConfig(named name: String, set: [String: String], reset: [String]) throws(BrokerError) -> TopicMetadata {
        let normalized = try normalizedChange(set: set, reset: reset)
        let altered = try change { topics throws(BrokerError) -> TopicMetadata in
            guard var topic = topics[name] else { throw .topicNotFound(name) }
            var overrides = topic.configOverrides
            for key in reset { overrides.removeValue(forKey: key) }
            overrides.merge(normalized) { _, new in new }
            topic.replaceConfigOverrides(overrides)
            try checkRelations(topic)
            topics[name] = topic
            return topic
        }
        logger.info("topic settings changed", metadata: ["topic": "\(name)", "set": "\(normalized)", "reset": "\(reset)"])
        return altered
    }

    /// The settings of an AlterTopicConfig, checked: `set` in canonical text, every name
    /// in `set` and `reset` known, none in both. (In a cluster the controller applies them.)
    public func normalizedChange(set: [String: String], reset: [String]) throws(BrokerError) -> [String: String] {
        var normalized: [String: String] = [:]
        for (key, value) in set {
            normalized[key] = try TopicSetting.named(key).normalize(value, maxMessageBytesCeiling: configuration.maxMessageBytesCeiling)
        }
        for key in reset {
            _ = try TopicSetting.named(key)
            if normalized[key] != nil {
                throw BrokerError(.invalidConfig, "setting \(key) is both set and reset")
            }
        }
        return normalized
    }

    /// Grows a topic to `totalCount` partitions; partitions are never removed.
    /// `localPartitions`: in a cluster, the partitions this broker holds a log of from now
    /// on (those it held and the new ones it is a replica of); nil keeps them as they are.
    public func createPartitions(
        named name: String, totalCount: UInt32, localPartitions: Set<UInt32>? = nil
    ) throws(BrokerError) -> TopicMetadata {
        let grown = try change { topics throws(BrokerError) -> TopicMetadata in
            guard var topic = topics[name] else { throw .topicNotFound(name) }
            guard totalCount > topic.partitionCount else {
                throw BrokerError(
                    .invalidPartitionCount,
                    "topic \"\(name)\" has \(topic.partitionCount) partition(s); the new total \(totalCount) must be larger (partitions are never removed)")
            }
            try checkPartitionCount(totalCount, topic: name)
            if let local = localPartitions {
                guard local.allSatisfy({ $0 < totalCount }), local.isSuperset(of: topic.localPartitions ?? []) else {
                    throw BrokerError(.invalidPartitionCount, "local partitions \(local.sorted()) must hold those held and lie below \(totalCount)")
                }
                topic.localPartitions = local
            }
            topic.partitionCount = totalCount
            topics[name] = topic
            return topic
        }
        logger.info("partitions added", metadata: ["topic": "\(name)", "partitions": "\(totalCount)"])
        return grown
    }

    // MARK: Internals

    /// Applies `body` to a copy of the topics, writes the copy durably, then publishes
    /// it. Any error leaves the registry unchanged. Refused once the data directory has
    /// been released (shutdown).
    private func change<Result: Sendable>(
        _ body: (inout [String: TopicMetadata]) throws(BrokerError) -> Result
    ) throws(BrokerError) -> Result {
        try topicsByName.withLock { current throws(BrokerError) -> Result in
            // Without the directory lock another broker may own the files now.
            guard directory.isOpen else {
                throw BrokerError(.shuttingDown, "the broker is shutting down; topics cannot be changed")
            }
            var next = current
            let result = try body(&next)
            guard next != current else { return result }
            try DurableFiles.replace(metadataPath, with: TopicMetadataFile.encode(next))
            current = next
            return result
        }
    }

    private func checkPartitionCount(_ count: UInt32, topic: String) throws(BrokerError) {
        guard count >= 1 else {
            throw BrokerError(.invalidPartitionCount, "topic \(BrokerError.quoting(topic)) needs at least 1 partition")
        }
        guard count <= configuration.maxPartitionsPerTopic else {
            throw BrokerError(
                .invalidPartitionCount,
                "\(count) partitions is above this broker's limit of \(configuration.maxPartitionsPerTopic) per topic")
        }
    }

    /// Checks that hold between settings and the topic's shape.
    private func checkRelations(_ topic: TopicMetadata) throws(BrokerError) {
        if topic.config.minInsyncReplicas > Int(topic.replicationFactor) {
            throw BrokerError(
                .invalidConfig,
                "min.insync.replicas \(topic.config.minInsyncReplicas) is larger than the replication factor \(topic.replicationFactor); writes with acks=all could never succeed")
        }
    }

    private static func alreadyExists(_ name: String) -> BrokerError {
        BrokerError(.topicAlreadyExists, "topic \(BrokerError.quoting(name)) already exists")
    }

    private static func nowMs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }
}
