/// Every size, count and time limit of the broker (topics, produce, subscribe, groups, the
/// partitions' storage settings), with its default and why it is that value: the one place
/// they are stated (the way TigerBeetle keeps `constants.zig`). A topic's storage defaults
/// are the log's (`StorageLimits`); the transport's are `WireLimits`'s. The configuration
/// types (`ProduceLimits`, `SubscribeLimits`, `ReplicationSettings`, `GroupSettings`, `StorageSettings`,
/// `TopicRegistry.Configuration`) take their defaults from here, `sluice serve`'s flags
/// their defaults and reasons, and docs/limits.md shows this table (`LimitsDocumentTests`
/// checks it, row by row).
///
/// Each limit is `(value, why)`; read the value as `BrokerLimits.defaults.NAME.value`. The
/// limits are stored properties of one value so that a test can list them all by name.
public struct BrokerLimits: Sendable {
    public static let defaults = BrokerLimits()
    private init() {}

    // MARK: Names and topics

    public let maxNameLength = (value: 249, why: "Kafka's limit on topic names, kept for group, producer and instance names too: a name plus a partition suffix stays a valid file name (255 bytes)")
    public let maxClientIDBytes = (value: 1024, why: "a member's client_id is only shown to operators; the bound keeps a join's memory small")
    public let maxPartitionsPerTopic = (value: UInt32(10_000), why: "each partition costs open files and memory; docs/profiles.md measures 10,000 on one broker")
    public let minSegmentBytes = (value: Int64(1024), why: "the smallest segment.bytes a topic may set: room for a batch header and a few records, so a segment never rolls per batch")
    public let maxSegmentBytes = (value: Int64(Int32.max), why: "the largest segment.bytes a topic may set: positions in a segment and its index are 32-bit")
    public let produceRequestOverheadBytes = (value: 1024, why: "room for the ProduceRequest around a batch (a topic name of up to 249 bytes, the scalar and header fields), so a batch of max.message.bytes fits in one gRPC message")
    public let maxMessageBytesCeiling = (value: 4 * 1024 * 1024 - 1024, why: "the largest max.message.bytes a topic may set: the transport's default message limit (4 MiB) less produceRequestOverheadBytes; a broker server sets it from its real limit")

    // MARK: Produce

    public let maxOutstandingAnswers = (value: 256, why: "answers one Produce stream may have waiting (for their fdatasync, or for earlier answers) before it stops reading; enough to keep appends flowing during a sync, and an answer holds no batch bytes")
    public let produceTimeout = (value: Duration.seconds(30), why: "the time allowed to satisfy acks when a request's timeout_ms is 0: Kafka's request.timeout.ms")
    public let produceMemoryBudgetBytes = (value: 256 * 1024 * 1024, why: "produce bytes held between arrival and answer across all producers: absorbs a surge of many producers at full window, well inside a small machine's memory")

    // MARK: Subscribe

    public let subscribeDefaultMaxBytes = (value: 1 << 20, why: "Kafka's max.partition.fetch.bytes: a push of about a megabyte spreads the cost of a response over many batches, while a subscriber that stops reading holds little")
    public let subscribeMaxMaxBytes = (value: 4 * 1024 * 1024 - 64 * 1024, why: "larger max_bytes are lowered to this, so a response stays below a stock client's 4 MiB receive limit (one batch larger than this is still sent whole)")
    public let subscribeMaxWait = (value: Duration.seconds(60), why: "larger max_wait_ms are lowered to this, so a held push is answered within a minute")

    // MARK: Replication (a partition leader's side)

    public let replicaLagTimeMaxMs = (value: Int64(10_000), why: "Kafka's replica.lag.time.max.ms: a follower not caught up with the leader's log end for this long leaves the in-sync replicas, so acks=all stops waiting for it")
    public let replicateDefaultMaxWait = (value: Duration.milliseconds(500), why: "how long a Replicate request with nothing to send is held when it says 0 (Kafka's replica.fetch.wait.max.ms); larger waits are lowered to half of replicaLagTimeMaxMs, so a caught-up follower reports often enough to stay in sync")
    public let replicateDefaultMaxBytes = (value: 8 * 1024 * 1024, why: "record bytes in one Replicate answer when the request says 0, and the most it may ask (one batch larger is still sent whole): a catching-up follower gets large answers, and a follower's stream holds at most one")
    public let replicateMaxPartitionsPerSession = (value: 20_000, why: "partitions one Replicate stream may follow: every partition a follower follows from one leader, twice the partitions docs/profiles.md measures on one broker; each costs the leader about 200 bytes")

    // MARK: Partitions' storage

    public let maxOpenSealedSegmentsPerPartition = (value: 4, why: "bounds open files to about partitions × (3 + this): 10,000 partitions stay within 70,000 descriptors")
    public let maintenanceInterval = (value: Duration?.some(.seconds(60)), why: "how late retention and rolling by segment.ms may be; a pass costs a look at each partition's oldest segments")
    public let producerIdExpiryMs = (value: Int64(7 * 24 * 3600 * 1000), why: "Kafka's transactional.id.expiration.ms: a partition forgets an idempotent producer that has not appended to it for a week")

    // MARK: Consumer groups

    public let defaultSessionTimeoutMs = (value: UInt32(10_000), why: "a member's session timeout when its join says 0: Kafka's classic session.timeout.ms, three heartbeats of slack")
    public let sessionTimeoutRangeMs = (value: UInt32(100)...UInt32(300_000), why: "the session timeouts a join may ask for: short ones for tests, and at most 5 minutes that a dead member may hold its partitions")
    public let memberQueueCapacity = (value: 64, why: "messages waiting on one member's stream; a member that lets this many pile up is not reading, and is expired rather than buffered for")
    public let expiryCheckInterval = (value: Duration.milliseconds(50), why: "how often silent members are looked for: an expiry is late by at most this")
    public let offsetsSegmentBytes = (value: Int64(1 << 20), why: "segment.bytes of __consumer_offsets: commits are small, and small segments let compaction drop old ones soon")
    public let offsetsCompactionBytes = (value: Int64(16 << 20), why: "bytes written to the offsets log since its last snapshot (beyond the snapshot's size) before a new one: bounds the replay at startup")
    public let maxMetadataBytes = (value: 4096, why: "the metadata string kept with a committed offset: Kafka's offset.metadata.max.bytes")
    public let offsetsLogRetryMs = (value: Int64(100), why: "the first wait before a group call tries again to open an offsets log that could not be opened (calls in between answer UNAVAILABLE at once)")
    public let offsetsLogMaxRetryMs = (value: Int64(5_000), why: "the longest such wait: it doubles per failure up to this, so a failing disk is not hammered and a repaired one is noticed within seconds")
}
