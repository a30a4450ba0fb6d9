import Logging
public import SluiceStorage
import Synchronization

/// One partition of a topic on this broker: its `PartitionLog`, the high watermark
/// subscribers read up to, and the doorbells of the streams waiting for it to move.
///
/// High watermark on a single node: under `FsyncPolicy.always` it is the log's
/// durable end (subscribers only ever see batches an fdatasync covered, so a crash
/// can never take back something a consumer already saw and perhaps committed
/// past); under `interval` and `never` it is the log end (the operator chose to
/// trade durability for latency; serving only synced data would delay every read
/// by up to the interval, or forever under `never`).
///
/// Wake-ups, not polling: a stream that waits (a subscriber at the high watermark, a
/// producer stream waiting for durability) registers a doorbell, an
/// `AsyncStream<Void>` continuation that keeps at most one pending ring, so a ring
/// between a check and the wait is never lost and a slow waiter never queues rings.
/// The partition rings every registered doorbell when the high watermark or the
/// durable end moves, when the log fails, and when it closes. Doorbells are bounded
/// by the streams open on the partition.
///
/// Durability is driven by one watcher task per partition at most, alive only while
/// some offset still waits for an fdatasync: it asks the log to make the highest
/// requested offset durable (group commit does the rest), rings the doorbells, and
/// repeats while newer requests arrived meanwhile.
public final class Partition: Sendable {
    public let topicName: String
    public let topicID: String
    public let index: UInt32
    public let log: PartitionLog
    private let servesOnlyDurable: Bool
    private let state: Mutex<State>
    private let counters: BrokerCounters
    /// Idempotent producers' state; its lock orders appends (`Partition+Producers.swift`).
    let producers: PartitionProducers
    let logger: Logger

    private struct State {
        var doorbells: [UInt64: AsyncStream<Void>.Continuation] = [:]
        /// Highest offset some caller needs durable; -1 for none.
        var requestedDurable: Int64 = -1
        var watcherRunning = false
        var closed = false
    }

    init(
        topicName: String, topicID: String, index: UInt32, log: PartitionLog, producerState: ProducerState,
        counters: BrokerCounters, logger: Logger
    ) {
        self.topicName = topicName
        self.topicID = topicID
        self.index = index
        self.log = log
        self.counters = counters
        self.logger = logger
        producers = PartitionProducers(state: producerState, activeBase: log.activeSegmentBaseOffset)
        servesOnlyDurable = log.config.fsyncPolicy == .always
        state = Mutex(State())
    }

    /// Offsets below this are readable by subscribers (see the type comment).
    public var highWatermark: Int64 {
        servesOnlyDurable ? min(log.durableEndOffset, log.logEndOffset) : log.logEndOffset
    }

    /// True once the partition's topic was deleted or the broker closed it.
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Whether every offset up to and including `offset` has been fdatasynced.
    public func isDurable(_ offset: Int64) -> Bool { offset < log.durableEndOffset }

    // MARK: Appending

    /// Appends one validated batch to the page cache (never waiting for a sync) and
    /// starts whatever makes it visible: a ring now, or a durability request under
    /// `always`. Only called under the producers' append lock (`append(_:nowMs:)`).
    func append(_ batch: NewBatch) throws(LogError) -> AppendResult {
        let result = try log.appendBuffered(batch, leaderEpoch: Partition.leaderEpoch)
        if servesOnlyDurable {
            requestDurability(upTo: result.lastOffset)
        } else {
            ringAll()
        }
        return result
    }

    /// The leader epoch of every batch appended on a single node (replication will
    /// bump it per leader change).
    static let leaderEpoch: Int32 = 0

    /// Asks for `offset` to become durable (whatever the fsync policy); registered
    /// doorbells ring when it is, or when the log fails.
    func requestDurability(upTo offset: Int64) {
        let start = state.withLock { s -> Bool in
            s.requestedDurable = max(s.requestedDurable, offset)
            guard !s.watcherRunning, !s.closed else { return false }
            s.watcherRunning = true
            return true
        }
        guard start else { return }
        counters.durabilityWatcherStarted()
        Task { [self] in
            await watchDurability()
            counters.durabilityWatcherEnded()
        }
    }

    private func watchDurability() async {
        var target = state.withLock { $0.requestedDurable }
        while true {
            var failed = false
            do {
                try await log.waitUntilDurable(target)
            } catch {
                // Fenced or closed: the waiters see it through `log.fenceError`/`isClosed`.
                failed = true
            }
            ringAll()
            let next = state.withLock { s -> Int64? in
                guard !failed, !s.closed, s.requestedDurable > target else {
                    s.watcherRunning = false
                    return nil
                }
                return s.requestedDurable
            }
            guard let next else { return }
            target = next
        }
    }

    // MARK: Doorbells

    /// Registers `doorbell` under `id` (unique per stream); rung on every change.
    func addDoorbell(_ id: UInt64, _ doorbell: AsyncStream<Void>.Continuation) {
        let closed = state.withLock { s -> Bool in
            if !s.closed { s.doorbells[id] = doorbell }
            return s.closed
        }
        if closed { doorbell.yield() }
    }

    func removeDoorbell(_ id: UInt64) {
        _ = state.withLock { $0.doorbells.removeValue(forKey: id) }
    }

    func ringAll() {
        let doorbells = state.withLock { Array($0.doorbells.values) }
        for doorbell in doorbells { doorbell.yield() }
    }

    /// Marks the partition closed (its log is about to close) and wakes every waiter,
    /// which then finds the log closed.
    func markClosed() {
        let doorbells = state.withLock { s -> [AsyncStream<Void>.Continuation] in
            s.closed = true
            defer { s.doorbells.removeAll() }
            return Array(s.doorbells.values)
        }
        for doorbell in doorbells { doorbell.yield() }
    }
}
