import Logging
public import SluiceStorage
import Synchronization

/// One partition of a topic on this broker: its `PartitionLog`, whose watermarks
/// (log end, durable end, high watermark: `Watermarks.swift` in SluiceStorage) say what
/// is stored, synced and readable, and whose waits (`PartitionLog.wait(for:toCover:notify:)`)
/// are the one way a stream waits for them to move: a Produce stream waits on the
/// durable end for each `acks=durable` batch, a Subscribe stream on the high watermark
/// for the next offset it reads. No polling, no doorbells rung on every change.
///
/// High watermark on a single node (`HighWatermarkRule`, chosen by the log from its
/// fsync policy): under `FsyncPolicy.always` it is the log's durable end (subscribers
/// only ever see batches an fdatasync covered, so a crash can never take back something
/// a consumer already saw and perhaps committed past); under `interval` and `never` it
/// is the log end (the operator chose to trade durability for latency; serving only
/// synced data would delay every read by up to the interval, or forever under `never`).
/// In a cluster (`HighWatermarkRule.replicated`) it is the end every in-sync replica holds
/// (`LeaderReplication` sets the replica floor; a follower takes its leader's), and
/// `acks=all` waits on it like a subscriber.
public final class Partition: Sendable {
    public let topicName: String
    public let topicID: String
    public let index: UInt32
    public let log: PartitionLog
    private let closed = Atomic<Bool>(false)
    /// Idempotent producers' state; its lock orders appends (`Partition+Producers.swift`).
    let producers: PartitionProducers
    let logger: Logger

    init(
        topicName: String, topicID: String, index: UInt32, log: PartitionLog, producerState: ProducerState, logger: Logger
    ) {
        self.topicName = topicName
        self.topicID = topicID
        self.index = index
        self.log = log
        self.logger = logger
        producers = PartitionProducers(state: producerState, activeBase: log.activeSegmentBaseOffset)
    }

    /// Offsets below this are readable by subscribers (see the type comment).
    public var highWatermark: Int64 { log.highWatermark.offset }

    /// True once the partition's topic was deleted or the broker closed it.
    public var isClosed: Bool { closed.load(ordering: .acquiring) }

    // MARK: Appending

    /// Appends one validated batch to the page cache, never waiting for a sync; the
    /// log moves its watermarks (and under `always` asks for the sync), which resolves
    /// the waits they now cover. Only called under the producers' append lock
    /// (`append(_:nowMs:leaderEpoch:)`), which has checked that `leaderEpoch` is not older
    /// than the log's latest (the log asserts it).
    func append(_ batch: NewBatch, leaderEpoch: Int32) throws(LogError) -> AppendResult {
        try log.appendBuffered(batch, leaderEpoch: leaderEpoch)
    }

    /// Wakes every subscriber waiting on this partition (the broker is shutting down);
    /// each looks at the broker's state and ends.
    func interruptSubscribers() {
        log.interruptWaits(.highWatermark)
    }

    /// Marks the partition closed; its log is about to close, which fails every wait,
    /// so each stream waiting finds the partition closed.
    func markClosed() {
        closed.store(true, ordering: .releasing)
    }
}
