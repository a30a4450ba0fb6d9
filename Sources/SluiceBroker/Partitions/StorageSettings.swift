public import SluiceStorage
import Synchronization

/// Broker-wide storage choices: where partition logs live and how they sync. The
/// defaults, and why each is what it is, are `BrokerLimits`'s (docs/limits.md).
public struct StorageSettings: Sendable {
    /// The file layer under every partition log (`PosixFileSystem` in production; the
    /// simulated or sync-recording ones in tests).
    public var fileSystem: any StorageFileSystem = PosixFileSystem()
    /// When logs fdatasync (`sluice serve --fsync`). `ACKS_DURABLE` forces a sync
    /// covering its batch whatever this is.
    public var fsyncPolicy: FsyncPolicy = .always
    /// `LogConfig.groupCommitWindow` for every partition (`sluice serve --group-commit-window-ms`).
    public var groupCommitWindow: Duration = StorageLimits.defaults.groupCommitWindow.value
    /// Wall clock for rolling and retention by age (injectable for tests).
    public var clock: any LogClock = SystemLogClock()
    /// Sealed segments each partition keeps open (one descriptor each) besides its
    /// active segment's three: a broker with P partitions holds at most about
    /// P * (3 + this) descriptors for logs.
    public var maxOpenSealedSegmentsPerPartition: Int = BrokerLimits.defaults.maxOpenSealedSegmentsPerPartition.value
    /// How often the background maintenance (retention, rolling idle segments by age)
    /// runs; nil runs none (tests call `Broker.runMaintenance()` themselves).
    public var maintenanceInterval: Duration? = BrokerLimits.defaults.maintenanceInterval.value
    /// A partition forgets an idempotent producer that has not appended to it for this
    /// long (`sluice serve --producer-id-expiry-ms`; 7 days, like Kafka's
    /// transactional.id.expiration.ms). Its next batch there then needs sequence 0
    /// (else UNKNOWN_PRODUCER_ID). Checked by each maintenance pass and at startup.
    public var producerIdExpiryMs: Int64 = BrokerLimits.defaults.producerIdExpiryMs.value

    /// Every log is a replica of a partition in a cluster (`sluice serve --cluster`): its
    /// high watermark follows `HighWatermarkRule.replicated` (the replication layer sets
    /// its floor) instead of the fsync policy. False on a single node.
    public var replicated = false

    public init() {}

    /// The log settings for a topic's partitions.
    func logConfig(for topic: TopicConfig) -> LogConfig {
        var config = LogConfig()
        config.segmentBytes = topic.segmentBytes
        config.segmentMs = topic.segmentMs
        // The log needs room for its 64-byte header and refuses batches larger than a
        // segment; the broker checks `max.message.bytes` itself first (see Produce), so
        // this only keeps the log's own bound consistent.
        config.maxBatchBytes = Int(min(Int64(max(topic.maxMessageBytes, BatchHeader.size + 1)), topic.segmentBytes))
        config.retentionMs = topic.retentionMs
        config.retentionBytes = topic.retentionBytes
        config.fsyncPolicy = fsyncPolicy
        config.groupCommitWindow = groupCommitWindow
        config.maxOpenSealedSegments = maxOpenSealedSegmentsPerPartition
        config.replicated = replicated
        return config
    }
}

/// Counters of the broker's long-lived work, for tests and operators: a stream or
/// task that never ends shows up here.
public final class BrokerCounters: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var produceStreamsActive = 0
        public var subscribeStreamsActive = 0
        public var batchesAppended = 0
        public var batchesRefused = 0
        /// Idempotent retries answered with the original offsets, appending nothing.
        public var batchesDeduplicated = 0
    }

    private let values = Mutex(Snapshot())

    public init() {}

    public var snapshot: Snapshot { values.withLock { $0 } }

    func produceStream(started: Bool) { values.withLock { $0.produceStreamsActive += started ? 1 : -1 } }
    func subscribeStream(started: Bool) { values.withLock { $0.subscribeStreamsActive += started ? 1 : -1 } }
    func batchAppended() { values.withLock { $0.batchesAppended += 1 } }
    func batchRefused() { values.withLock { $0.batchesRefused += 1 } }
    func batchDeduplicated() { values.withLock { $0.batchesDeduplicated += 1 } }
}
