public import Logging
public import SluiceStorage
import Synchronization

/// A single-node broker's state: the topic registry (durable metadata) and the
/// partition logs, kept in step, plus background maintenance. Produce and subscribe
/// are in `Broker+Produce.swift` and `Broker+Subscribe.swift`; the transport
/// (SluiceService) only decodes requests and calls these.
///
/// Admin changes go metadata first, logs second: a topic exists once `topics.json`
/// says so; its logs are then created (and re-created at startup if a crash came in
/// between). Deletion forgets the topic first and removes its logs after, so a crash
/// midway leaves a directory that startup removes, never a topic without data.
public final class Broker: Sendable {
    public let registry: TopicRegistry
    public let counters: BrokerCounters
    /// Consumer groups and their committed offsets (Groups/).
    public let groups: GroupCoordinator
    /// Idempotent producers' ids and epochs (`producers.json`).
    public let producerIDs: ProducerIDRegistry
    /// In a cluster, who leads each partition: Produce and Subscribe serve only the
    /// partitions this broker leads. Nil on a single node, which leads all it has.
    public let leadership: (any PartitionLeadership)?
    /// In a cluster, the leader's side of replication (Replication/): followers'
    /// progress, replica floors, ISR changes. Nil on a single node.
    let replicas: LeaderReplication?
    /// How this broker leads replication (`sluice serve --cluster`'s flags).
    public let replicationSettings: ReplicationSettings
    let partitions: PartitionManager
    /// Whole-topic Subscribe streams, woken when partitions are added.
    let topicDoorbells = TopicDoorbells()
    let logger: Logger
    private let maintenance = Mutex<Task<Void, Never>?>(nil)
    private let groupExpiry = Mutex<Task<Void, Never>?>(nil)
    private let replicaChecks = Mutex<Task<Void, Never>?>(nil)
    private let nextStreamID = Atomic<UInt64>(1)
    private let shuttingDown = Atomic<Bool>(false)

    /// Loads the topics from `directory`, opens (recovering) every partition log, and
    /// loads the committed offsets of consumer groups from `__consumer_offsets` (created
    /// on first start).
    public init(
        directory: DataDirectory, registryConfiguration: TopicRegistry.Configuration = .init(),
        storage: StorageSettings = StorageSettings(), groupSettings: GroupSettings = GroupSettings(),
        groupClock: any GroupClock = SystemGroupClock(), leadership: (any PartitionLeadership)? = nil,
        replication: ReplicationSettings = ReplicationSettings(), logger: Logger
    ) throws(BrokerError) {
        self.leadership = leadership
        let counters = BrokerCounters()
        let partitions = PartitionManager(dataDirectory: directory.path, settings: storage, logger: logger)
        replicationSettings = replication
        replicas = leadership.map { LeaderReplication(settings: replication, leadership: $0, partitions: partitions, logger: logger) }
        registry = try TopicRegistry(
            directory: directory, configuration: registryConfiguration, partitionOffsets: partitions, logger: logger)
        producerIDs = try ProducerIDRegistry(
            directory: directory, space: leadership.map { ProducerIDSpace(brokerID: $0.localBrokerID) } ?? .singleNode)
        self.partitions = partitions
        self.counters = counters
        self.logger = logger
        try partitions.openAll(registry.topics())
        // A broker whose offsets log cannot open still starts (docs/operations.md): topics
        // serve, group calls answer UNAVAILABLE with the reason until the log opens.
        groups = GroupCoordinator(
            settings: groupSettings, clock: groupClock, topics: BrokerTopicSource(registry: registry, partitions: partitions),
            openJournal: { [registry, partitions] (attempt: Int) throws(BrokerError) -> any OffsetJournal in
                try Self.openOffsetLog(
                    registry: registry, partitions: partitions, settings: groupSettings, clock: groupClock, logger: logger,
                    retrying: attempt > 0)
            })
        if let reason = groups.offsetsUnavailableReason {
            logger.error("consumer groups are unavailable until the consumer offsets log opens; topics serve meanwhile", metadata: [
                "reason": "\(reason)"])
        }
    }

    /// The offsets log: partition 0 of `__consumer_offsets`, without time retention
    /// (OffsetLog compacts it). Called again by the coordinator while it fails; each
    /// retry gives the offline log another chance to open (the first call follows the
    /// startup's own attempt, so it does not repeat it).
    private static func openOffsetLog(
        registry: TopicRegistry, partitions: PartitionManager, settings: GroupSettings, clock: any GroupClock, logger: Logger,
        retrying: Bool
    ) throws(BrokerError) -> OffsetLog {
        let topic = try registry.ensureInternalTopic(
            named: InternalTopics.consumerOffsets, partitions: 1,
            configs: ["retention.ms": "-1", "segment.bytes": "\(settings.offsetsSegmentBytes)"])
        if retrying { partitions.reopenIfOffline(topic, index: 0) }
        partitions.createPartitions(of: topic, range: 0..<1)
        switch partitions.slot(topicID: topic.topicID, partition: 0) {
        case .online(let partition)?:
            return OffsetLog(
                log: partition.log, compactionBytes: settings.offsetsCompactionBytes, clock: clock, logger: logger)
        case .offline(let reason)?:
            throw BrokerError(.offline, reason)
        case nil:
            throw BrokerError(.offline, "its partition was not created")
        }
    }

    public var storage: StorageSettings { partitions.settings }

    /// Starts the expiry of silent group members (always) and the periodic maintenance
    /// task (retention, rolling by age), if the storage settings ask for one.
    public func startMaintenance() {
        let expiry = Task { [groups] in
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: groups.settings.expiryCheckInterval)
                } catch {
                    return
                }
                groups.expireSilentMembers()
            }
        }
        groupExpiry.withLock { $0 = expiry }
        if let replicas {
            let ringID = makeStreamID()
            replicaChecks.withLock { $0 = Task { await replicas.run(ringID: ringID) } }
        }
        guard let interval = storage.maintenanceInterval else { return }
        let task = Task { [partitions] in
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return
                }
                _ = partitions.runMaintenance()
            }
        }
        maintenance.withLock { $0 = task }
    }

    /// One maintenance pass now.
    @discardableResult
    public func runMaintenance() -> MaintenanceReport { partitions.runMaintenance() }

    /// Shutdown has begun: Subscribe streams end with `.shuttingDown` (UNAVAILABLE) at
    /// once instead of holding the transport's grace period (a subscriber waits for new
    /// data indefinitely); Produce streams carry on, so answers in flight are delivered.
    public func beginShutdown() {
        shuttingDown.store(true, ordering: .sequentiallyConsistent)
        groups.shutdown()
        for partition in partitions.allPartitions() { partition.interruptSubscribers() }
    }

    public var isShuttingDown: Bool { shuttingDown.load(ordering: .sequentiallyConsistent) }

    /// Stops maintenance and closes every log cleanly. Streams still open find their
    /// partitions closed and end.
    public func close() async {
        let task = maintenance.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
        let expiry = groupExpiry.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        expiry?.cancel()
        await expiry?.value
        let checks = replicaChecks.withLock { $0.take() }
        checks?.cancel()
        await checks?.value
        groups.shutdown()
        await partitions.closeAll()
    }

    // MARK: Topics

    /// `localPartitions`: in a cluster, the partitions this broker is a replica of, the
    /// only ones that get a log here (nil: all); `topicID`, the id the cluster gave the
    /// topic (nil: a new one).
    public func createTopic(
        named name: String, partitions count: UInt32, replicationFactor: UInt32 = 0,
        configs: [String: String] = [:], validateOnly: Bool = false, localPartitions: Set<UInt32>? = nil,
        topicID: String? = nil
    ) throws(BrokerError) -> TopicMetadata {
        let topic = try registry.createTopic(
            named: name, partitions: count, replicationFactor: replicationFactor, configs: configs,
            validateOnly: validateOnly, localPartitions: localPartitions, topicID: topicID)
        if !validateOnly { partitions.createPartitions(of: topic, range: 0..<topic.partitionCount) }
        return topic
    }

    public func deleteTopic(named name: String) async throws(BrokerError) {
        try InternalTopics.refuseChange(name, "deleted")
        let topic = try registry.deleteTopic(named: name)
        await partitions.removeTopic(topic)
    }

    public func alterTopicConfig(named name: String, set: [String: String], reset: [String]) throws(BrokerError) -> TopicMetadata {
        try InternalTopics.refuseChange(name, "altered")
        let topic = try registry.alterTopicConfig(named: name, set: set, reset: reset)
        partitions.reconfigure(topic)
        return topic
    }

    /// `localPartitions`: in a cluster, the partitions this broker holds a log of from now
    /// on (see `TopicRegistry.createPartitions`).
    public func createPartitions(
        named name: String, totalCount: UInt32, localPartitions: Set<UInt32>? = nil
    ) throws(BrokerError) -> TopicMetadata {
        try InternalTopics.refuseChange(name, "grown")
        let before = try registry.topic(named: name).partitionCount
        let topic = try registry.createPartitions(named: name, totalCount: totalCount, localPartitions: localPartitions)
        partitions.createPartitions(of: topic, range: min(before, topic.partitionCount)..<topic.partitionCount)
        // After the logs exist, so a woken stream finds them open.
        topicDoorbells.ring(topicID: topic.topicID)
        return topic
    }

    // MARK: Idempotent producers

    /// InitProducerId: a fresh id, or for a known name its id with the epoch bumped
    /// (fencing the older incarnation). Durable when it returns.
    public func initProducerID(name: String) throws(BrokerError) -> ProducerIDRegistry.Identity {
        guard !isShuttingDown else { throw BrokerError(.shuttingDown, "the broker is shutting down") }
        return try producerIDs.initProducerID(name: name)
    }

    // MARK: Partitions

    /// The open partition `index` of topic `name`.
    func partition(topic name: String, index: UInt32) throws(BrokerError) -> Partition {
        try partitionAndTopic(topic: name, index: index).partition
    }

    /// The open partition `index` of topic `name`, with the topic's metadata as of the
    /// lookup; or why it cannot be used (`BrokerError+Lookups.swift`).
    func partitionAndTopic(topic name: String, index: UInt32) throws(BrokerError) -> (partition: Partition, topic: TopicMetadata) {
        let topic = try registry.topic(named: name)
        guard index < topic.partitionCount else {
            throw .unknownPartition(index, topic: name, partitionCount: topic.partitionCount)
        }
        guard topic.holdsLog(of: index) else { throw .noReplicaHere(partition: index, topic: name) }
        switch partitions.slot(topicID: topic.topicID, partition: index) {
        case .online(let partition)?:
            return (partition, topic)
        case .offline(let reason)?:
            throw .offline(partition: index, topic: name, reason: reason)
        case nil:
            // Created in the registry a moment ago, log not open yet (or deleted meanwhile).
            throw .notOpenYet(partition: index, topic: name)
        }
    }

    /// Refuses a partition this broker does not lead (in a cluster); the broker's own
    /// lookup answers for one the cluster does not know.
    func checkLeads(topic: String, partition: UInt32) throws(BrokerError) {
        guard let leadership, case .elsewhere(let leader) = leadership.verdict(topic: topic, partition: partition) else { return }
        throw .notLeader(topic: topic, partition: partition, leader: leader)
    }

    func makeStreamID() -> UInt64 { nextStreamID.wrappingAdd(1, ordering: .relaxed).oldValue }
}

extension Broker {
    /// The idempotent-producer state of a partition (for tests and tools).
    public func producerState(topic: String, partition index: UInt32) throws(BrokerError) -> ProducerState {
        try partition(topic: topic, index: index).producerState
    }

    /// The open log of a partition (for tests and tools that inspect stored bytes).
    public func partitionLog(topic: String, partition index: UInt32) throws(BrokerError) -> PartitionLog {
        try partition(topic: topic, index: index).log
    }
}
