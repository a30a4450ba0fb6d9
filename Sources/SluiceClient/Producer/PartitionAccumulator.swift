import DequeModule

/// Records waiting for one partition, and the rule for when a batch goes out.
///
/// A pure state machine (time is passed in), so the batching rules are tested without
/// clocks. Rules:
/// - Records append to the open batch; a record that would take the open batch past
///   `maxBatchBytes` closes it first (a record bigger than that travels alone).
/// - At most `maxInFlight` batches are in flight per partition: 1 without idempotence,
///   which is what keeps order there (a failed batch is retried before anything after it
///   is sent, so a retry can never overtake or be overtaken). An idempotent producer sends
///   up to five: the broker refuses a batch whose sequence does not follow the last one
///   it stored, so a later batch cannot land before an earlier one that failed.
/// - Each batch gets its send order when first taken. A failed batch goes back among the
///   waiting ones by that order, ahead of every batch never sent, so retries go out again
///   in their first order.
/// - Only full (closed) batches join others in flight; the open batch goes once nothing is
///   in flight (and its linger ended). So at a low rate a record goes at once, alone, and
///   at a high rate batches fill to `maxBatchBytes` and pipeline: many small batches in
///   flight would cost the broker (and in a cluster each follower) per-batch work for
///   nothing, while a full one is the same work the broker would do anyway.
/// - A retry goes alone: only once nothing is in flight. A batch that failed may be
///   followed by later ones the broker will refuse behind it; sending it into their midst
///   would only make more refusals.
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
        /// The order in which the partition's batches were first taken for sending; nil
        /// until then. Retries keep it.
        var sendOrder: Int?
    }

    /// Changed by the producer when the topic's limits change; batches already closed keep their size.
    var maxBatchBytes: Int {
        didSet { precondition(maxBatchBytes > 0) }
    }
    private(set) var open: Batch?
    private(set) var closed: Deque<Batch> = []
    /// Batches taken for sending and not yet answered (or given back by `retry`).
    private(set) var inFlightCount = 0
    private var nextSendOrder = 0

    init(maxBatchBytes: Int) {
        precondition(maxBatchBytes > 0)
        self.maxBatchBytes = maxBatchBytes
    }

    var isEmpty: Bool { open == nil && closed.isEmpty && inFlightCount == 0 }

    /// Every item waiting (not those in flight).
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
    mutating func takeSendable(now: ContinuousClock.Instant, linger: Duration, maxInFlight: Int = 1) -> Batch? {
        precondition(maxInFlight >= 1, "at least one batch may be in flight")
        guard inFlightCount < maxInFlight else { return nil }
        if let head = closed.first {
            if let notBefore = head.notBefore, notBefore > now { return nil }
            if head.attempts > 0 && inFlightCount > 0 { return nil }
            return markedInFlight(closed.removeFirst())
        }
        if let current = open, inFlightCount == 0, now >= current.createdAt.advanced(by: linger) {
            open = nil
            return markedInFlight(current)
        }
        return nil
    }

    private mutating func markedInFlight(_ taken: Batch) -> Batch {
        var batch = taken
        inFlightCount += 1
        batch.attempts += 1
        if batch.sendOrder == nil {
            batch.sendOrder = nextSendOrder
            nextSendOrder += 1
        }
        return batch
    }

    /// When `takeSendable` will next return a batch if nothing else happens; nil if only
    /// an answer (or a new record) can change that.
    func nextWakeup(linger: Duration, maxInFlight: Int = 1) -> ContinuousClock.Instant? {
        guard inFlightCount < maxInFlight else { return nil }
        if let head = closed.first { return head.attempts > 0 && inFlightCount > 0 ? nil : head.notBefore }
        guard inFlightCount == 0 else { return nil }
        return open.map { $0.createdAt.advanced(by: linger) }
    }

    /// A batch in flight was answered (delivered or failed for good).
    mutating func completed() {
        precondition(inFlightCount > 0, "an answer for a partition with nothing in flight")
        inFlightCount -= 1
    }

    /// A batch in flight failed retriably: it goes back among the waiting batches by its
    /// send order (ahead of all never sent), not before `notBefore`.
    mutating func retry(_ batch: Batch, notBefore: ContinuousClock.Instant) {
        precondition(inFlightCount > 0, "a retry for a partition with nothing in flight")
        guard let order = batch.sendOrder else { preconditionFailure("a retried batch was sent, so it has a send order") }
        inFlightCount -= 1
        var again = batch
        again.notBefore = notBefore
        let place = closed.firstIndex { ($0.sendOrder ?? Int.max) > order } ?? closed.endIndex
        closed.insert(again, at: place)
    }

    /// Whether a batch sent before the one of `sendOrder` waits to be sent again.
    func retryWaits(before sendOrder: Int) -> Bool {
        closed.contains { ($0.sendOrder ?? Int.max) < sendOrder }
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
