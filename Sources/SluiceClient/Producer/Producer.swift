import DequeModule
import Foundation
public import Logging
public import NIOCore
public import SluiceAPI
import SluiceWire

/// Publishes records to the leaders of a topic's partitions (docs/client.md).
///
/// `enqueue` places a record in its partition's open batch and returns a `Delivery` at
/// once (suspending only while the byte budget is exhausted, if so configured); `send`
/// also waits for the answer. Each batch goes to its partition's leader (`ClusterView`),
/// over one pipelined `Produce` stream per leader broker: one batch in flight per
/// partition, or up to `maxInFlightPerPartition` for an idempotent producer (the default
/// with acks all), whose sequences let the broker refuse anything out of order; either way
/// retries never reorder a partition (see `PartitionAccumulator`). Retriable failures (NOT_LEADER, REQUEST_TIMED_OUT, THROTTLED,
/// NOT_ENOUGH_REPLICAS, a lost connection) are retried with backoff until the delivery
/// timeout; a batch whose answer was lost with the connection is sent again, so without
/// idempotence a record can be stored twice (at-least-once), never reordered. With
/// `configuration.idempotent` each batch carries a sequence the broker deduplicates
/// retries by (`Producer+Idempotence.swift`, docs/idempotence.md).
public actor Producer {
    /// The first bootstrap broker.
    public nonisolated let address: BrokerAddress
    /// The brokers the producer starts from, tried in turn; the leaders it sends to come
    /// from the Metadata any of them answers.
    public nonisolated let bootstrap: [BrokerAddress]
    public nonisolated let configuration: ProducerConfiguration
    let logger: Logger

    struct Item: Sendable {
        var entry: RecordBatchCodec.Entry
        var delivery: Delivery
        var bytes: Int
    }

    private struct InFlight: Sendable {
        var target: TopicPartition
        var batch: PartitionAccumulator<Item>.Batch
        var session: Int
        /// Past this the stream is taken for dead (`answerWatchdog`): the request timeout
        /// plus `answerSlack` after sending.
        var answerDeadline: ContinuousClock.Instant
        /// Past this the batch's records fail with `.deliveryTimedOut`, answered or not.
        var deliveryDeadline: ContinuousClock.Instant

        var firstDeadline: ContinuousClock.Instant { min(answerDeadline, deliveryDeadline) }
    }

    /// What the broker gets beyond `requestTimeout` (which it is told, and answers
    /// REQUEST_TIMED_OUT by) before a silent stream is given up: its answer's trip back.
    static let answerSlack: Duration = .seconds(1)

    /// A caller of `enqueue` suspended until the byte budget has room (`Producer+ByteBudget.swift`).
    struct SpaceWaiter {
        var id: Int
        var bytes: Int
        var continuation: CheckedContinuation<Void, any Error>
    }

    let cluster: ClusterView
    /// By broker address (`BrokerAddress.description`).
    var links: [String: BrokerLink] = [:]
    var anyConnecting: Task<(GRPCClientConnection, BrokerAddress), any Error>?
    /// The `cluster.version` the links were last checked against (`closeIdleLinks`).
    var linksCheckedAt = -1
    var sessionCount = 0
    var topicMetadata: [String: ProducerTopicMetadata] = [:]
    private var accumulators: [TopicPartition: PartitionAccumulator<Item>] = [:]
    private var sticky: [String: StickyPartition] = [:]
    private var inFlight: [UInt64: InFlight] = [:]
    /// Batches taken for sending and not yet on the stream (waiting for a connection or a
    /// producer id): neither in an accumulator nor in flight, and `flush` waits for them too.
    private var transmitting: [Int: (place: TopicPartition, batch: PartitionAccumulator<Item>.Batch)] = [:]
    /// Partitions with a batch in `transmitting`. Nothing else of theirs is sent until it is
    /// on the stream: a batch sent meanwhile could reach the stream first and reorder them.
    private var preparing: Set<TopicPartition> = []
    /// The most batches one partition had in flight at once (for tests of pipelining).
    package private(set) var mostInFlight = 0
    private var nextTransmission = 0
    private var wakeups: [TopicPartition: (at: ContinuousClock.Instant, task: Task<Void, Never>)] = [:]
    /// Wakes at the earliest `answerDeadline` in flight (see `armAnswerWatchdog`).
    private var answerWatchdog: (at: ContinuousClock.Instant, task: Task<Void, Never>)?
    private var lastError: [TopicPartition: String] = [:]
    var bufferedBytes = 0
    var spaceWaiters: Deque<SpaceWaiter> = []
    var nextSpaceWaiter = 0
    private var nextCorrelationID: UInt64 = 1
    var isClosed = false
    var sequencer = IdempotentSequencer()
    var identityRequest: Task<ProducerIdentity, any Error>?

    public init(address: BrokerAddress, configuration: ProducerConfiguration = ProducerConfiguration(), logger: Logger = Logger(label: "sluice.producer")) {
        self.init(bootstrap: [address], configuration: configuration, logger: logger)
    }

    /// A producer that starts from the first of `bootstrap` that answers (a non-empty list).
    public init(bootstrap: [BrokerAddress], configuration: ProducerConfiguration = ProducerConfiguration(), logger: Logger = Logger(label: "sluice.producer")) {
        precondition(!bootstrap.isEmpty, "a producer needs at least one bootstrap broker")
        address = bootstrap[0]
        self.bootstrap = bootstrap
        self.configuration = configuration
        self.logger = logger
        cluster = ClusterView(bootstrap: bootstrap, requestTimeout: configuration.requestTimeout, logger: logger)
    }

    /// Metadata requests made so far: one at the first send, then one per change the
    /// producer noticed (NOT_LEADER, a lost connection), at most one per 100 ms.
    public nonisolated var metadataRefreshCount: Int { cluster.refreshCount }

    /// The producer's view of the cluster: partition leaders and their epochs.
    public nonisolated var clusterMetadata: ClusterMetadata { cluster.metadata }

    /// A producer dropped without `close()` releases what it holds: its stream is reset, its
    /// connection closed, its timers find it gone, and every record not yet answered fails
    /// with `.closed` (a `Delivery` kept by the caller does not wait forever).
    deinit {
        for entry in inFlight.values {
            for item in entry.batch.items { item.delivery.complete(.failure(.closed)) }
        }
        for var accumulator in accumulators.values {
            for batch in accumulator.drain() {
                for item in batch.items { item.delivery.complete(.failure(.closed)) }
            }
        }
        for waiter in spaceWaiters { waiter.continuation.resume(throwing: ProducerError.closed) }
        for wakeup in wakeups.values { wakeup.task.cancel() }
        answerWatchdog?.task.cancel()
        for link in links.values {
            link.session?.cancel()
            if let connection = link.connection {
                Task { [counted = ClientTasks.begin()] in
                    defer { counted.end() }
                    await connection.close()
                }
            }
        }
    }

    /// Bytes accepted and not yet answered.
    public var bufferedByteCount: Int { bufferedBytes }

    /// Callers suspended until the buffer has room (for tests of that wait).
    package var spaceWaiterCount: Int { spaceWaiters.count }

    /// Sends one record and waits for the broker's answer.
    public func send(
        topic: String, key: ByteBuffer? = nil, value: ByteBuffer, headers: [RecordHeader] = [],
        partition: Int? = nil, timestampMs: Int64? = nil
    ) async throws -> RecordMetadata {
        let delivery = try await enqueue(
            topic: topic, key: key, value: value, headers: headers, partition: partition, timestampMs: timestampMs)
        return try await delivery.result()
    }

    /// Places one record in its batch and returns without waiting for the answer.
    /// `partition` overrides the partitioner; `timestampMs` defaults to now (CreateTime).
    /// Throws `ProducerError` for an unknown topic or partition, a full buffer (fail-fast)
    /// or a closed producer.
    public func enqueue(
        topic: String, key: ByteBuffer? = nil, value: ByteBuffer, headers: [RecordHeader] = [],
        partition: Int? = nil, timestampMs: Int64? = nil
    ) async throws -> Delivery {
        guard !isClosed else { throw ProducerError.closed }
        // Checked here, not trapped in init: a misconfigured producer throws at its first use.
        guard configuration.maxBatchBytes > 0 && configuration.maxBufferedBytes > 0 else {
            throw ProducerError.invalidConfiguration("maxBatchBytes and maxBufferedBytes must be positive")
        }
        guard (1...Self.brokerRetainedBatches).contains(configuration.maxInFlightPerPartition) else {
            throw ProducerError.invalidConfiguration(
                "maxInFlightPerPartition must be 1...\(Self.brokerRetainedBatches): the broker recognises retries of its last \(Self.brokerRetainedBatches) batches only")
        }
        if let bad = headers.first(where: { $0.key.utf8.contains(0) }) { throw ProducerError.invalidHeaderKey(bad.key) }
        let metadata = try await metadataWaiting(for: topic)
        let count = metadata.partitionCount
        if let partition, !(0..<count).contains(partition) {
            throw ProducerError.unknownPartition(topic: topic, partition: partition, partitionCount: count)
        }
        let entry = RecordBatchCodec.Entry(
            key: key, value: value, headers: headers, timestampMs: timestampMs ?? Self.nowMilliseconds())
        // Sized as if first in its batch, plus the widest timestamp delta: an upper bound.
        let bytes = RecordBatchCodec.encodedSize(of: entry, firstTimestampMs: entry.timestampMs) + 11
        guard bytes <= configuration.maxBufferedBytes else {
            throw ProducerError.recordTooLarge(bytes: bytes, limit: configuration.maxBufferedBytes)
        }
        try await reserve(bytes)
        guard !isClosed else {
            release(bytes)
            throw ProducerError.closed
        }
        // Chosen after the wait for space, so a keyless record joins the batch that is
        // sticky now.
        let target: Int
        if let partition {
            target = partition
        } else if let key {
            target = Partitioner.partition(forKey: key.readableBytesView, ofPositive: count)
        } else {
            // Stored on first use: reading `sticky[topic, default: ...]` alone never inserts,
            // which sent every keyless record to a fresh random partition (a getrandom call
            // per record, and batches filling `count` times slower).
            let current = sticky[topic] ?? StickyPartition(start: Int.random(in: 0..<count))
            if sticky[topic] == nil { sticky[topic] = current }
            target = current.partition(partitionCount: count)
        }
        let place = TopicPartition(topic: topic, partition: target)
        let delivery = Delivery()
        // Taken out of the dictionary so it is uniquely referenced: appending to a copy would
        // copy the open batch's items on every record.
        let batchBytes = metadata.batchBytes(producerMaximum: configuration.maxBatchBytes)
        var accumulator = accumulators.removeValue(forKey: place) ?? PartitionAccumulator(maxBatchBytes: batchBytes)
        // The topic's limits may have changed since the accumulator was made.
        accumulator.maxBatchBytes = batchBytes
        if accumulator.append(Item(entry: entry, delivery: delivery, bytes: bytes), bytes: bytes, now: .now) {
            batchClosed(place, partitionCount: count)
        }
        accumulators[place] = accumulator
        drive(place)
        return delivery
    }

    /// Sends every batch now (no lingering) and waits until every record enqueued before
    /// the call is answered, delivered or failed. Failures are reported by each `Delivery`.
    public func flush() async {
        var pending: [Delivery] = inFlight.values.flatMap { $0.batch.items.map(\.delivery) }
        pending += transmitting.values.flatMap { $0.batch.items.map(\.delivery) }
        for place in Array(accumulators.keys) {
            guard var accumulator = accumulators.removeValue(forKey: place) else { continue }
            pending += accumulator.waitingItems.map(\.delivery)
            accumulator.closeOpenBatch()
            accumulators[place] = accumulator
            drive(place)
        }
        for delivery in pending { _ = try? await delivery.result() }
    }

    /// Flushes, then closes the stream and the connection. Later sends throw `.closed`.
    ///
    /// The flush waits at most `timeout` (nil: as long as the batches' delivery timeouts
    /// allow, since an unanswered batch is given up at its deadline); whatever is still
    /// unanswered then fails with `.closed` (it may still have reached the broker). Closing
    /// the stream and the connection afterwards takes what is left of `timeout` (nil: at
    /// most `requestTimeout`); past it the stream is reset and the connection left to close
    /// in the background.
    public func close(timeout: Duration? = nil) async {
        let deadline = timeout.map { ContinuousClock.now.advanced(by: $0) }
        if let timeout {
            _ = try? await firstOf(within: timeout, timeoutError: ProducerError.closed) { await self.flush() }
        } else {
            await flush()
        }
        isClosed = true
        for waiter in spaceWaiters { waiter.continuation.resume(throwing: ProducerError.closed) }
        spaceWaiters.removeAll()
        for place in Array(accumulators.keys) {
            for batch in accumulators[place]?.drain() ?? [] { fail(batch, .closed) }
        }
        for (correlationID, entry) in inFlight {
            inFlight[correlationID] = nil
            fail(entry.batch, .closed)
        }
        for wakeup in wakeups.values { wakeup.task.cancel() }
        wakeups.removeAll()
        answerWatchdog?.task.cancel()
        answerWatchdog = nil
        let last = Array(links.values)
        links.removeAll()
        let bound = deadline.map { max(.zero, ContinuousClock.now.duration(to: $0)) } ?? configuration.requestTimeout
        // Bounded as a whole: a broker that stopped reading holds the stream's writer in
        // HTTP/2 flow control, and a graceful connection close waits for its answer.
        _ = try? await firstOf(within: bound, timeoutError: ProducerError.closed) {
            await withTaskGroup(of: Void.self) { group in
                for link in last {
                    group.addTask {
                        await link.session?.finishAndWait(bound: bound)
                        await link.connection?.close()
                    }
                }
            }
        }
        for link in last { link.session?.cancel() }
    }

    // MARK: Sending

    /// Sends every batch of the partition that may go now, else arranges to be woken when
    /// one can. A batch whose stream is open (and, if idempotent, whose producer id is
    /// known) is sent before this returns, so batches reach the stream in the order taken;
    /// one that must wait for a connection or an id is sent by a task, alone.
    private func drive(_ place: TopicPartition) {
        while !preparing.contains(place), let batch = takeSendable(place) {
            if let session = readySession(for: place), !configuration.isIdempotent || sequencer.identity != nil {
                var batch = batch
                if configuration.isIdempotent { batch.sequence = sequencer.sequence(for: batch.sequence, place: place, recordCount: batch.items.count) }
                send(batch, to: place, on: session)
            } else {
                preparing.insert(place)
                nextTransmission += 1
                let transmission = nextTransmission
                transmitting[transmission] = (place, batch)
                Task { [counted = ClientTasks.begin()] in
                    defer { counted.end() }
                    await self.transmit(batch, to: place, transmission: transmission)
                }
            }
        }
    }

    /// The partition's next batch that may go now, marked in flight; if none, a wakeup is
    /// set for when one may.
    private func takeSendable(_ place: TopicPartition) -> PartitionAccumulator<Item>.Batch? {
        // Taken out (and put back below) so mutating it does not copy its batches.
        guard var accumulator = accumulators.removeValue(forKey: place) else { return nil }
        let now = ContinuousClock.now
        for batch in accumulator.expire(now: now, deliveryTimeout: configuration.deliveryTimeout) {
            fail(batch, .deliveryTimedOut(last: lastError[place] ?? "it waited in the producer's buffer"))
        }
        let wasOpenOnly = accumulator.closed.isEmpty && accumulator.open != nil
        let limit = configuration.inFlightLimit
        let batch = accumulator.takeSendable(now: now, linger: configuration.linger, maxInFlight: limit)
        accumulators[place] = accumulator
        if batch != nil {
            mostInFlight = max(mostInFlight, accumulator.inFlightCount)
            if wasOpenOnly, let count = topicMetadata[place.topic]?.partitionCount { batchClosed(place, partitionCount: count) }
        } else if let instant = accumulator.nextWakeup(linger: configuration.linger, maxInFlight: limit) {
            wake(place, at: instant)
        }
        return batch
    }

    private func wake(_ place: TopicPartition, at instant: ContinuousClock.Instant) {
        if let existing = wakeups[place] {
            if existing.at <= instant { return }
            existing.task.cancel()
        }
        // Timers hold the producer weakly, so one that its user dropped is freed at once.
        let task = Task { [weak self, counted = ClientTasks.begin()] in
            defer { counted.end() }
            // A timer, not synchronisation: the instant is when a linger or backoff ends.
            try? await Task.sleep(until: instant, clock: .continuous)
            await self?.woken(place, at: instant)
        }
        wakeups[place] = (instant, task)
    }

    private func woken(_ place: TopicPartition, at instant: ContinuousClock.Instant) {
        guard wakeups[place]?.at == instant else { return }
        wakeups[place] = nil
        drive(place)
    }

    private func batchClosed(_ place: TopicPartition, partitionCount: Int) {
        sticky[place.topic]?.batchClosed(on: place.partition, partitionCount: partitionCount)
    }

    /// Finds the producer id and the stream for a batch `drive` could not send at once, then sends it.
    private func transmit(_ batch: PartitionAccumulator<Item>.Batch, to place: TopicPartition, transmission: Int) async {
        // From here on the batch is in flight, retried (back in its accumulator) or failed.
        defer { transmitting[transmission] = nil }
        var batch = batch
        let current: ProduceSession
        do {
            // The sequence first: nothing may suspend between getting the session and
            // sending on it, or the session could end unnoticed in between.
            if configuration.isIdempotent { batch.sequence = try await sequence(for: batch, at: place) }
            let deliveryLeft = ContinuousClock.now.duration(to: batch.createdAt.advanced(by: configuration.deliveryTimeout))
            current = try await openSessionWithin(max(.zero, min(configuration.requestTimeout, deliveryLeft)), for: place)
        } catch {
            preparing.remove(place)
            // The leader it names may be gone (a broker killed before the controller moved
            // its partitions): ask again, at most once per refresh interval.
            cluster.requestRefresh(reason: "no stream to the leader of \(place): \(error)")
            retryOrFail(batch, at: place, reason: "\(error)")
            return
        }
        preparing.remove(place)
        send(batch, to: place, on: current)
        drive(place)
    }

    /// Puts a batch on the stream to its partition's leader (its sequence already set if idempotent).
    private func send(_ batch: PartitionAccumulator<Item>.Batch, to place: TopicPartition, on current: ProduceSession) {
        let correlationID = nextCorrelationID
        nextCorrelationID += 1
        var records = RecordBatchCodec.makeBatch(
            batch.items.map(\.entry), compression: configuration.compression, level: configuration.compressionLevel,
            uncompressedAbove: topicMetadata[place.topic]?.topicBatchLimit)
        if let sequence = batch.sequence {
            records.producerId = sequence.identity.id
            records.producerEpoch = sequence.identity.epoch
            records.baseSequence = sequence.baseSequence
        }
        let request = ProduceRequest(
            correlationId: correlationID, topic: place.topic, partition: UInt32(place.partition), acks: effectiveAcks,
            timeoutMs: UInt32(clamping: configuration.requestTimeout.wholeMilliseconds),
            batch: records)
        if effectiveAcks == .none {
            current.send(request)
            for item in batch.items {
                item.delivery.complete(.success(RecordMetadata(
                    topic: place.topic, partition: place.partition, offset: -1, timestampMs: item.entry.timestampMs)))
            }
            release(batch.items.reduce(0) { $0 + $1.bytes })
            accumulators[place]?.completed()
            return
        }
        let entry = InFlight(
            target: place, batch: batch, session: current.id,
            answerDeadline: ContinuousClock.now.advanced(by: configuration.requestTimeout + Self.answerSlack),
            deliveryDeadline: batch.createdAt.advanced(by: configuration.deliveryTimeout))
        inFlight[correlationID] = entry
        armAnswerWatchdog(at: entry.firstDeadline)
        current.send(request)
    }

    // MARK: Unanswered batches

    /// A broker that stops answering (frozen, a dead network path) leaves the stream open
    /// but silent: without this the batches in flight would wait for an answer forever,
    /// past every timeout. One timer for the producer, at the earliest deadline in flight.
    private func armAnswerWatchdog(at instant: ContinuousClock.Instant) {
        if let existing = answerWatchdog {
            if existing.at <= instant { return }
            existing.task.cancel()
        }
        let task = Task { [weak self, counted = ClientTasks.begin()] in
            defer { counted.end() }
            // A timer, not synchronisation: the instant is a deadline for an answer.
            try? await Task.sleep(until: instant, clock: .continuous)
            if !Task.isCancelled { await self?.answerWatchdogFired(at: instant) }
        }
        answerWatchdog = (instant, task)
    }

    private func answerWatchdogFired(at instant: ContinuousClock.Instant) {
        guard answerWatchdog?.at == instant else { return }
        answerWatchdog = nil
        let now = ContinuousClock.now
        // A batch past its delivery deadline fails alone; the stream carries on (a slow
        // answer is not a dead stream, and other partitions' batches share it).
        for (correlationID, entry) in inFlight where entry.deliveryDeadline <= now {
            inFlight[correlationID] = nil
            fail(entry.batch, .deliveryTimedOut(last: lastError[entry.target] ?? "no answer from the broker in time"))
            accumulators[entry.target]?.completed()
            drive(entry.target)
        }
        let silent = Set(inFlight.values.filter { $0.answerDeadline <= now }.map(\.session))
        for id in silent.sorted() {
            logger.warning("no answer from the broker in time; giving up the produce stream", metadata: [
                "session": "\(id)", "requestTimeout": "\(configuration.requestTimeout)"])
            sessionEnded(id, status: GRPCStatus(.deadlineExceeded,
                "no answer within the request timeout (\(configuration.requestTimeout)) plus \(Self.answerSlack)"))
        }
        if let next = inFlight.values.map(\.firstDeadline).min() { armAnswerWatchdog(at: next) }
    }

    /// The stream to `place`'s leader, given up after `bound`: finding the leader or
    /// connecting to a broker that accepts TCP but never answers must not hold a batch past
    /// its deadlines. The attempt itself goes on and a later call may still use it.
    private func openSessionWithin(_ bound: Duration, for place: TopicPartition) async throws -> ProduceSession {
        if let session = readySession(for: place) { return session }
        defer { closeIdleLinks() }
        return try await firstOf(within: bound, timeoutError: GRPCStatus(.deadlineExceeded, "no connection to the broker within \(bound)")) {
            try await self.openSession(at: self.leader(of: place))
        }
    }

    /// The open stream to `place`'s known leader, if there is one.
    private func readySession(for place: TopicPartition) -> ProduceSession? {
        defer { closeIdleLinks() }
        guard let known = cluster.leader(of: place) else { return nil }
        return links[known.description]?.session
    }

    /// The sessions with a batch in flight, and the partitions the producer sends to:
    /// what `closeIdleLinks` keeps.
    var inFlightSessions: [Int] { inFlight.values.map(\.session) }
    var placesInUse: Dictionary<TopicPartition, PartitionAccumulator<Item>>.Keys { accumulators.keys }

    /// An answer from the broker (called by the session's reader).
    func received(_ response: ProduceResponse, session id: Int) {
        guard let answered = inFlight.removeValue(forKey: response.correlationId) else {
            if response.error != .none {
                logger.warning("produce error for a batch not waited on", metadata: [
                    "topic": "\(response.topic)", "partition": "\(response.partition)", "error": "\(response.error)",
                ])
            }
            return
        }
        let place = answered.target
        let batch = answered.batch
        switch response.error {
        case .none:
            for (index, item) in batch.items.enumerated() {
                let timestamp = response.logAppendTimeMs >= 0 ? response.logAppendTimeMs : item.entry.timestampMs
                item.delivery.complete(.success(RecordMetadata(
                    topic: place.topic, partition: place.partition, offset: response.baseOffset + Int64(index),
                    timestampMs: timestamp)))
            }
            lastError[place] = nil
            release(batch.items.reduce(0) { $0 + $1.bytes })
            accumulators[place]?.completed()
            drive(place)
        case .notLeader:
            // Sent at once to a leader with a newer epoch; either way the metadata is asked
            // again, since a hint is only the answering broker's view.
            let moved = response.leader.map { cluster.adopt($0, at: place) } ?? false
            cluster.requestRefresh(reason: "NOT_LEADER for \(place.topic)/\(place.partition)")
            retryOrFail(batch, at: place, reason: "\(ErrorCode.notLeader): \(response.errorMessage)", backoff: !moved)
        case .outOfOrderSequence where waitsBehindEarlierBatch(batch, at: place):
            // Pipelined behind a batch that failed: refused for the gap that batch left,
            // not lost. It goes again after it, with its own sequence.
            retryOrFail(batch, at: place, reason: "\(ErrorCode.outOfOrderSequence): \(response.errorMessage)", backoff: false)
        case let code where ProducerError.isRetriable(code):
            retryOrFail(batch, at: place, reason: "\(code): \(response.errorMessage)")
        case let code where recoversBySequenceReset(code, batch: batch):
            retryOrFail(batch, at: place, reason: "\(code): \(response.errorMessage)")
        case let code:
            // The topic changed under the cached description (deleted, shrunk limits):
            // the next enqueue describes it again.
            if [.unknownTopic, .unknownPartition, .messageTooLarge].contains(code) { topicMetadata[place.topic] = nil }
            fail(batch, .refused(code, response.errorMessage))
            accumulators[place]?.completed()
            drive(place)
        }
    }

    /// Whether a batch of `place` sent before `batch` under the same producer identity is
    /// still unanswered or waits to be sent again: then a refusal of `batch` for a gap in
    /// the sequence is that batch's doing, and `batch` is retried after it.
    private func waitsBehindEarlierBatch(_ batch: PartitionAccumulator<Item>.Batch, at place: TopicPartition) -> Bool {
        guard let order = batch.sendOrder, let identity = batch.sequence?.identity else { return false }
        func earlier(_ other: PartitionAccumulator<Item>.Batch) -> Bool {
            guard let otherOrder = other.sendOrder, otherOrder < order else { return false }
            // A batch with no sequence yet, or one under the same identity, fills the gap
            // when it goes; one under an older identity gets a new sequence and cannot.
            return other.sequence.map { $0.identity == identity } ?? true
        }
        if accumulators[place]?.closed.contains(where: earlier) ?? false { return true }
        if inFlight.values.contains(where: { $0.target == place && earlier($0.batch) }) { return true }
        return transmitting.values.contains { $0.place == place && earlier($0.batch) }
    }

    /// The stream ended: every batch it carried is retried (or failed if retrying cannot help).
    /// Also called by the answer watchdog for a stream that went silent; a late answer on
    /// an ended stream finds nothing to apply.
    func sessionEnded(_ id: Int, status: GRPCStatus) {
        dropLink(ofSession: id)
        let retriable = ![.invalidArgument, .unimplemented, .permissionDenied, .unauthenticated, .resourceExhausted,
                          .failedPrecondition, .notFound].contains(status.code)
        for (correlationID, entry) in inFlight where entry.session == id {
            inFlight[correlationID] = nil
            if retriable && !isClosed {
                retryOrFail(entry.batch, at: entry.target, reason: "the produce stream ended: \(status.code) \(status.message)")
            } else {
                fail(entry.batch, .transport(status, context: "the produce stream ended"))
                accumulators[entry.target]?.completed()
                drive(entry.target)
            }
        }
    }

    private func retryOrFail(_ batch: PartitionAccumulator<Item>.Batch, at place: TopicPartition, reason: String, backoff: Bool = true) {
        lastError[place] = reason
        let now = ContinuousClock.now
        if isClosed || now >= batch.createdAt.advanced(by: configuration.deliveryTimeout) {
            fail(batch, isClosed ? .closed : .deliveryTimedOut(last: reason))
            accumulators[place]?.completed()
        } else {
            let doublings = min(max(batch.attempts - 1, 0), 16)
            let pause = backoff ? min(configuration.retryBackoff * (1 << doublings), configuration.maxRetryBackoff) : .zero
            logger.debug("retrying a batch", metadata: ["topic": "\(place.topic)", "partition": "\(place.partition)", "reason": "\(reason)"])
            accumulators[place]?.retry(batch, notBefore: now.advanced(by: pause))
        }
        drive(place)
    }

    private func fail(_ batch: PartitionAccumulator<Item>.Batch, _ error: ProducerError) {
        for item in batch.items { item.delivery.complete(.failure(error)) }
        release(batch.items.reduce(0) { $0 + $1.bytes })
    }

    static func nowMilliseconds() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }
}
