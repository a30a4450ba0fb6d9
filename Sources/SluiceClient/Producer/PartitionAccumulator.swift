import DequeModule

/// Records waiting for one partition, and the rule for when a batch goes out.
///
/// A pure state machine (time is passed in), so the batching rules are tested without
/// clocks. Rules:
/// - Records append to the open batch; a record that would take the open batch past
///   `maxBatchBytes` closes it first (a record bigger than that travels alone).
/// - At most one batch is in flight per partition. Without idempotence this is what keeps
///   order: a failed batch is retried before anything after it is sent, so a retry can
///   never overtake or be overtaken.
/// - The next batch to send is the oldest closed one; if there is none, the open batch once
///   it has lingered `linger` since its first record (or at once when flushing).
/// - A batch being retried waits until its `notBefore` instant.
struct PartitionAccumulator<Item> {
    struct Batch {
        var items: [Item]
        /// Serialized `records` bytes (RecordBatchCodec.encodedSize sums).
        var bytes: Int
        /// When the first record arrived; the delivery timeout counts from here.
        var createdAt: ContinuousClock.Instant
        var attempts = 0
        var notBefore: ContinuousClock.Instant?
        /// An idempotent producer's sequence, fixed at the first send and kept by retries.
        var sequence: BatchSequence?
    }

    /// Changed by the producer when the topic's limits change; batches already closed keep their size.
    var maxBatchBytes: Int {
        didSet { precondition(maxBatchBytes > 0) }
    }
    private(set) var open: Batch?
    private(set) var closed: Deque<Batch> = []
    private(set) var inFlight = false

    init(maxBatchBytes: Int) {
        precondition(maxBatchBytes > 0)
        self.maxBatchBytes = maxBatchBytes
    }

    var isEmpty: Bool { open == nil && closed.isEmpty && !inFlight }

    /// Every item waiting (not the one in flight).
    var waitingItems: [Item] { closed.flatMap(\.items) + (open?.items ?? []) }

    /// Adds an item of `bytes`; returns true when this closed the previous open batch.
    @discardableResult
    mutating func append(_ item: Item, bytes: Int, now: ContinuousClock.Instant) -> Bool {
        var closedOne = false
        // Tests `open` in place: a copy of it would share its items and make the append below copy them.
        if let openBytes = open?.bytes, openBytes + bytes > maxBatchBytes {
            closeOpenBatch()
            closedOne = true
        }
        if open == nil {
            open = Batch(items: [item], bytes: bytes, createdAt: now)
        } else {
            open?.items.append(item)
            open?.bytes += bytes
        }
        if let current = open, current.bytes >= maxBatchBytes {
            closed.append(current)
            open = nil
            closedOne = true
        }
        return closedOne
    }

    /// Closes the open batch so it goes out without lingering (flush).
    mutating func closeOpenBatch() {
        if let current = open {
            closed.append(current)
            open = nil
        }
    }

    /// The batch to send now, marked in flight; nil if none may go yet.
    mutating func takeSendable(now: ContinuousClock.Instant, linger: Duration) -> Batch? {
        guard !inFlight else { return nil }
        if let head = closed.first {
            if let notBefore = head.notBefore, notBefore > now { return nil }
            inFlight = true
            var batch = closed.removeFirst()
            batch.attempts += 1
            return batch
        }
        if var current = open, now >= current.createdAt.advanced(by: linger) {
            open = nil
            inFlight = true
            current.attempts += 1
            return current
        }
        return nil
    }

    /// When `takeSendable` will next return a batch if nothing else happens; nil if only
    /// an answer (or a new record) can change that.
    func nextWakeup(linger: Duration) -> ContinuousClock.Instant? {
        guard !inFlight else { return nil }
        if let head = closed.first { return head.notBefore }
        return open.map { $0.createdAt.advanced(by: linger) }
    }

    /// The batch in flight was answered (delivered or failed for good).
    mutating func completed() {
        precondition(inFlight, "an answer for a partition with nothing in flight")
        inFlight = false
    }

    /// The batch in flight failed retriably: it goes back first in line, not before
    /// `notBefore`.
    mutating func retry(_ batch: Batch, notBefore: ContinuousClock.Instant) {
        precondition(inFlight, "a retry for a partition with nothing in flight")
        inFlight = false
        var again = batch
        again.notBefore = notBefore
        closed.prepend(again)
    }

    /// Removes every waiting batch whose delivery timeout passed, oldest first.
    mutating func expire(now: ContinuousClock.Instant, deliveryTimeout: Duration) -> [Batch] {
        var expired: [Batch] = []
        while let head = closed.first, now >= head.createdAt.advanced(by: deliveryTimeout) {
            expired.append(closed.removeFirst())
        }
        if closed.isEmpty, let current = open, now >= current.createdAt.advanced(by: deliveryTimeout) {
            expired.append(current)
            open = nil
        }
        return expired
    }

    /// Removes everything waiting (close without flush, or a partition gone).
    mutating func drain() -> [Batch] {
        var all = Array(closed)
        closed.removeAll()
        if let current = open { all.append(current) }
        open = nil
        return all
    }
}

extension PartitionAccumulator: Sendable where Item: Sendable {}
extension PartitionAccumulator.Batch: Sendable where Item: Sendable {}
