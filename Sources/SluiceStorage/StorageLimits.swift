/// Every size, count and time limit of the partition log, with its default and why it is
/// that value: the one place they are stated (the way TigerBeetle keeps `constants.zig`).
/// `LogConfig` takes its defaults from here, a topic's defaults (`TopicConfig`) are these,
/// and docs/limits.md shows this table (`LimitsDocumentTests` checks it, row by row).
///
/// Each limit is `(value, why)`; read the value as `StorageLimits.defaults.NAME.value`. The
/// limits are stored properties of one value so that a test can list them all by name.
public struct StorageLimits: Sendable {
    public static let defaults = StorageLimits()
    private init() {}

    // MARK: Segments and batches

    public let segmentBytes = (value: Int64(1 << 30), why: "Kafka's segment.bytes: retention deletes whole segments, so a segment is the unit of deletion; a 32-bit index position caps it below 4 GiB")
    public let segmentMs = (value: Int64(7 * 24 * 3600 * 1000), why: "Kafka's segment.ms: a quiet partition still rolls weekly, so retention by age can delete its old data")
    public let maxBatchBytes = (value: 1 << 20, why: "the brief's max.message.bytes (1 MiB, Kafka's): messages are kilobytes, and a batch never spans segments")
    public let indexIntervalBytes = (value: 4096, why: "Kafka's index.interval.bytes: one offset-index entry per page of log, so a lookup reads at most about a page past its entry")
    public let retentionMs = (value: Int64?.some(7 * 24 * 3600 * 1000), why: "Kafka's retention.ms: a week of history by default; -1 (nil) keeps everything")
    public let retentionBytes = (value: Int64?.none, why: "no size limit unless a topic sets one, as in Kafka: a size that suits one topic is wrong for another")
    public let groupCommitWindow = (value: Duration.zero, why: "the flusher syncs as soon as the previous sync ends, which already groups appends under load; a window costs every durable answer that much latency")
    public let syncThreads = (value: 8, why: "threads running the group-commit fdatasyncs of all partitions (SyncThreads): this many partitions sync at once, which a disk takes in parallel (fio: 8 writers syncing per MiB beat 2 by 1.8x on a loaded 2-core machine); each sleeps in the kernel, not on a core")

    // MARK: Files and reads

    public let maxOpenSealedSegments = (value: 16, why: "a log opened alone keeps this many sealed segments open (one descriptor each, indexes in memory); the broker sets its own, lower, per-partition bound")
    public let readWindowBytes = (value: 1 << 20, why: "a segment is read through a window this big while recovery checks it, so scanning many small batches costs one pread per window, not two per batch")
    public let maxWatermarkWaits = (value: 65_536, why: "waits for a log's watermarks at once: a Produce stream holds at most 256 durable waits and a Subscribe stream one per partition it reads, so this is 256 producer streams with full pipelines on one partition, about 100 bytes each")
    public let scanReadBytes = (value: 1 << 20, why: "a whole-log scan (rebuilding producer state, loading the offsets log) reads this many bytes of batches per step, so its memory does not grow with the log")

    // MARK: Idempotent producers

    public let producerRetainedBatches = (value: 5, why: "Kafka's bound on in-flight requests with idempotence: the last five batches of each producer are remembered, so a retry of any of them is recognised")
    public let retainedProducerSnapshots = (value: 2, why: "so that a newest snapshot found unusable still leaves a recent one to start from")
}
