import Logging
public import SluiceAPI
import SluiceStorage
import Synchronization

/// Limits of one Produce stream.
public struct ProduceLimits: Sendable {
    /// Batches appended but not yet answered (waiting for durability or for earlier
    /// answers). When reached, the stream stops reading requests until the oldest is
    /// answered, so HTTP/2 flow control pushes back on the producer. This is also the
    /// memory bound: an answer waiting here holds no batch bytes.
    public var maxOutstanding: Int = BrokerLimits.defaults.maxOutstandingAnswers.value
    /// The time allowed to satisfy `acks` when a request's `timeout_ms` is 0.
    public var defaultTimeout: Duration = BrokerLimits.defaults.produceTimeout.value
    /// The broker-wide bound on produce bytes received and not yet answered, shared by
    /// every stream given these limits (ProduceMemoryBudget.swift); nil is unbounded.
    public var memoryBudget: ProduceMemoryBudget? = ProduceMemoryBudget(limitBytes: ProduceLimits.defaultMemoryBudgetBytes)
    /// `sluice serve --max-inflight-bytes`'s default.
    public static let defaultMemoryBudgetBytes = BrokerLimits.defaults.produceMemoryBudgetBytes.value

    public init() {}
}

extension Broker {
    /// Serves one Produce stream: each request is validated and appended in arrival
    /// order (append order is request order, per partition and across them), and
    /// answered in request order through `respond` once its `acks` is satisfied.
    ///
    /// Pipelining: batch N+1 is appended while batch N still waits for its fdatasync
    /// (one fdatasync covers every batch appended before it started: group commit).
    /// A reader and a responder run concurrently; between them at most
    /// `limits.maxOutstanding` answers wait. Per-batch problems are answers with an
    /// error code and the stream goes on; an error thrown by `requests` (bad protobuf,
    /// a reset) or by `respond` ends the stream, and whatever was appended stays
    /// appended (whole batches only: a batch reaches this function whole or not at all).
    public func produce<Requests: AsyncSequence & Sendable>(
        _ requests: Requests, limits: ProduceLimits = ProduceLimits(),
        respond: @escaping @Sendable (ProduceResponse) async throws -> Void
    ) async throws where Requests.Element == ProduceRequest {
        precondition(limits.maxOutstanding >= 1, "a produce stream needs room for one answer")
        counters.produceStream(started: true)
        defer { counters.produceStream(started: false) }
        let queue = ProduceAnswerQueue(capacity: limits.maxOutstanding)
        defer {
            queue.finish()
            // Answers never sent leave no wait behind in their partitions' logs.
            queue.cancelWaits()
        }
        let lease = ProduceMemoryLease(limits.memoryBudget)
        defer { lease.releaseAll() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await request in requests {
                    try await queue.waitForRoom()
                    guard let held = try await lease.acquire(for: request) else {
                        queue.push(self.throttled(request, limit: limits.memoryBudget?.limitBytes ?? 0))
                        continue
                    }
                    var pending = self.accept(request, defaultTimeout: limits.defaultTimeout)
                    pending.heldBytes = held
                    queue.push(pending)
                }
                queue.finish()
            }
            group.addTask {
                try await self.answer(queue, lease: lease, respond: respond)
            }
            while try await group.next() != nil {}
        }
    }

    /// Validates and appends one request; the answer it will get, possibly after a
    /// durability wait.
    func accept(_ request: ProduceRequest, defaultTimeout: Duration) -> PendingAnswer {
        let received = ContinuousClock.now
        var response = ProduceResponse(
            correlationId: request.correlationId, topic: request.topic, partition: request.partition,
            baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1)
        func refused(_ failure: ProduceFailure) -> PendingAnswer {
            counters.batchRefused()
            response.refuse(failure)
            return PendingAnswer(response: response)
        }
        // Before the lookup: a follower may hold the partition's log, but only the
        // leader appends.
        var leaderEpoch: Int32?
        switch leadership?.verdict(topic: request.topic, partition: request.partition) {
        case .elsewhere(let leader):
            response.leader = leader
            return refused(ProduceFailure(.notLeader(topic: request.topic, partition: request.partition, leader: leader)))
        case .leads(let epoch):
            leaderEpoch = Int32(clamping: epoch)
        case .unknown, nil:
            break
        }
        let partition: Partition
        let config: TopicConfig
        do throws(BrokerError) {
            let found = try partitionAndTopic(topic: request.topic, index: request.partition)
            partition = found.partition
            config = found.topic.config
        } catch {
            return refused(ProduceFailure(error))
        }
        guard let batch = request.batch else { return refused(.invalidBatch("the request carries no batch")) }
        let validated: (batch: NewBatch, logAppendTimeMs: Int64?)
        switch ProducedBatch.validate(batch, topic: request.topic, config: config, nowMs: partitions.settings.clock.nowMilliseconds()) {
        case .success(let value): validated = value
        case .failure(let failure): return refused(failure)
        }
        if validated.batch.producerId > 0,
           let failure = ProduceFailure(producerIDs.check(producerID: validated.batch.producerId, epoch: validated.batch.producerEpoch)) {
            return refused(failure)
        }
        // In a cluster the partition is known as led from now on (its high watermark
        // follows its ISR, and losing the leadership wakes acks=all waits); acks=all is
        // refused before anything is appended when too few replicas are in sync for it.
        let waitsForISR = switch request.acks {
        case .none, .leader, .durable: false
        // Unspecified and unknown values get the safest choice (broker.proto).
        case .all, .unspecified, .unrecognized: true
        }
        var replicaSet: ReplicaSet?
        if let leaderEpoch {
            guard let known = leadership?.replicaSet(topic: request.topic, partition: request.partition),
                  known.leaderEpoch == UInt32(leaderEpoch)
            else {
                // Never appended without its replicas: acks=all would fall back to this
                // broker's own sync, and a failover would lose what it acknowledged.
                return refused(.leadershipChanging(topic: request.topic, partition: request.partition))
            }
            replicas?.followers(of: partition, replicaSet: known)
            if waitsForISR, known.isr.count < config.minInsyncReplicas {
                return refused(.notEnoughReplicas(isr: known.isr, minimum: config.minInsyncReplicas))
            }
            replicaSet = known
        }
        if waitsForISR, leadership != nil, leaderEpoch == nil, partition.log.config.replicated {
            // A replicated copy the cluster's metadata does not know right now (a view
            // being replaced): with no leader epoch and no ISR, acks=all has nothing to
            // wait on but this broker's own sync.
            return refused(.leadershipChanging(topic: request.topic, partition: request.partition))
        }
        let appended: AppendResult
        do throws(LogError) {
            switch try partition.append(validated.batch, nowMs: partitions.settings.clock.nowMilliseconds(), leaderEpoch: leaderEpoch) {
            case .appended(let result):
                appended = result
                counters.batchAppended()
                response.logAppendTimeMs = validated.logAppendTimeMs ?? -1
            case .duplicate(let original):
                // The original's offsets; it is answered like a new batch (with the same
                // durability wait), but its append time is not known here.
                appended = original
                counters.batchDeduplicated()
                response.duplicate = true
            case .refused(let failure):
                return refused(failure)
            }
        } catch {
            return refused(ProduceFailure(error, topic: request.topic, partition: request.partition))
        }
        response.baseOffset = appended.baseOffset
        response.logStartOffset = partition.log.logStartOffset
        switch request.acks {
        case .none:
            return PendingAnswer(response: response, silent: true)
        case .leader:
            return PendingAnswer(response: response)
        case .durable, .all, .unspecified, .unrecognized:
            // Unspecified and unknown values get the safest choice (broker.proto).
            let timeout = request.timeoutMs == 0 ? defaultTimeout : .milliseconds(Int64(request.timeoutMs))
            if waitsForISR, let replicaSet, let leaderEpoch {
                return PendingAnswer(
                    response: response,
                    durability: .inSync(
                        partition: partition, lastOffset: appended.lastOffset, epoch: UInt32(leaderEpoch),
                        minInsync: config.minInsyncReplicas, isr: replicaSet.isr, deadline: received + timeout))
            }
            // The batch's one wait, registered now so the sync starts while earlier
            // answers are still waiting; the responder awaits it in request order.
            let wait = partition.log.wait(for: DurableEndOffset.self, toCover: appended.lastOffset)
            return PendingAnswer(
                response: response, durability: .init(partition: partition, wait: wait, deadline: received + timeout))
        }
    }

    /// Answers queued requests in order, each `acks=durable` one once its wait on the
    /// durable end is resolved (or its deadline passed).
    private func answer(
        _ queue: ProduceAnswerQueue, lease: ProduceMemoryLease, respond: @Sendable (ProduceResponse) async throws -> Void
    ) async throws {
        let deadlines = WaitDeadline()
        defer { deadlines.stop() }
        var doorbell = queue.responderBell.makeAsyncIterator()
        while true {
            guard let head = queue.head() else {
                if queue.isFinished { return }
                guard await doorbell.next() != nil else { throw CancellationError() }
                continue
            }
            var answer = head.response
            if let durability = head.durability {
                if let failure = try await settle(durability, of: answer, deadlines: deadlines) { answer.refuse(failure) }
            }
            queue.pop()
            lease.release(head.heldBytes)
            if !head.silent || answer.error != .none {
                try await respond(answer)
            }
        }
    }

    /// Waits for an answer's acks to be satisfied: nil when they are, else why not.
    private func settle(
        _ durability: PendingAnswer.Durability, of answer: ProduceResponse, deadlines: WaitDeadline
    ) async throws -> ProduceFailure? {
        guard let inSync = durability.inSync else {
            return Self.durabilityFailure(
                try await Self.outcome(of: durability.wait, until: durability.deadline, deadlines), of: answer,
                partition: durability.partition)
        }
        var wait = durability.wait
        var outcome = try await Self.outcome(of: wait, until: durability.deadline, deadlines)
        // Woken without the high watermark moving: a lost leadership (LeaderReplication
        // wakes it) fails the batch, anything else (a shutdown beginning) waits on.
        while outcome == .interrupted, ContinuousClock.now < durability.deadline,
              leadership?.verdict(topic: answer.topic, partition: answer.partition) == .leads(epoch: inSync.epoch) {
            wait = durability.partition.log.wait(for: HighWatermark.self, toCover: inSync.lastOffset)
            outcome = try await Self.outcome(of: wait, until: durability.deadline, deadlines)
        }
        switch outcome {
        case .reached:
            break
        case .truncated, .interrupted:
            // Interrupted past the loop: leadership moved (or the deadline passed first).
            if case .interrupted = outcome, ContinuousClock.now >= durability.deadline {
                return .notDurableInTime(baseOffset: answer.baseOffset)
            }
            return .leadershipLost(baseOffset: answer.baseOffset, topic: answer.topic, partition: answer.partition)
        default:
            return Self.durabilityFailure(outcome, of: answer, partition: durability.partition)
        }
        let isr = leadership?.replicaSet(topic: answer.topic, partition: answer.partition)?.isr ?? inSync.isr
        guard isr.count >= inSync.minInsync else {
            return .notEnoughReplicasAfterAppend(baseOffset: answer.baseOffset, isr: isr, minimum: inSync.minInsync)
        }
        // The high watermark covers the batch, so every in-sync follower reported holding
        // it; said loudly if not (a broken invariant of the replica floor), since the
        // answer is a promise a failover would then break.
        if let missing = replicas?.memberMissing(inSync.lastOffset, of: durability.partition, epoch: inSync.epoch, isr: isr) {
            logger.error("acks=all answered for a batch an in-sync replica does not hold", metadata: [
                "partition": "\(answer.topic)/\(answer.partition)", "lastOffset": "\(inSync.lastOffset)",
                "replica": "\(missing.replica)", "its end": "\(missing.end)", "isr": "\(isr)",
                "highWatermark": "\(durability.partition.log.highWatermark.offset)"])
        }
        return nil
    }

    /// A wait's outcome, awaited until `deadline` (then cancelled: `.cancelled`).
    private static func outcome(
        of wait: WatermarkWait, until deadline: ContinuousClock.Instant, _ deadlines: WaitDeadline
    ) async throws -> WatermarkWaitOutcome {
        if let resolved = wait.resolved { return resolved }
        deadlines.watch(wait, until: deadline)
        let outcome = await wait.outcome()
        // Cancelled with the stream's task, not by the deadline: no answer goes.
        if outcome == .cancelled { try Task.checkCancellation() }
        return outcome
    }

    /// What a resolved durability wait means for its answer: nil when the batch is durable.
    private static func durabilityFailure(
        _ outcome: WatermarkWaitOutcome, of answer: ProduceResponse, partition: Partition
    ) -> ProduceFailure? {
        switch outcome {
        case .reached:
            return nil
        case .failed(.closed) where partition.isClosed:
            return .deletedBeforeDurable(topic: answer.topic)
        case .failed(.tooManyWaits(let limit)):
            return .tooManyWaits(baseOffset: answer.baseOffset, limit: limit)
        case .failed(let error):
            return .notDurable(baseOffset: answer.baseOffset, fence: error)
        case .truncated(let newEnd):
            return .notDurable(baseOffset: answer.baseOffset, fence: .truncatedBeforeDurable(offset: newEnd))
        case .cancelled, .interrupted:
            // The stream's task was cancelled (it ends before this answer is sent) or
            // the deadline passed.
            return .notDurableInTime(baseOffset: answer.baseOffset)
        }
    }
}

/// An appended (or refused) request waiting for its turn to be answered.
struct PendingAnswer: Sendable {
    struct Durability: Sendable {
        let partition: Partition
        /// On the durable end for the batch's last offset; for acks=all in a cluster, on
        /// the high watermark (`inSync`).
        let wait: WatermarkWait
        let deadline: ContinuousClock.Instant
        var inSync: InSync?

        init(partition: Partition, wait: WatermarkWait, deadline: ContinuousClock.Instant, inSync: InSync? = nil) {
            self.partition = partition
            self.wait = wait
            self.deadline = deadline
            self.inSync = inSync
        }

        /// acks=all where the partition has replicas: every in-sync replica holds the
        /// batch once the high watermark covers it. Under `always` the high watermark
        /// follows durable ends, the leader's included; under `interval`/`never` it
        /// follows log ends and nothing is synced for the answer, as Kafka's acks=all:
        /// the copies in the ISR's page caches are what the promise rests on
        /// (docs/operations.md, "What each acks level promises").
        static func inSync(
            partition: Partition, lastOffset: Int64, epoch: UInt32, minInsync: Int, isr: [UInt32],
            deadline: ContinuousClock.Instant
        ) -> Durability {
            let replicated = partition.log.wait(for: HighWatermark.self, toCover: lastOffset)
            return Durability(
                partition: partition, wait: replicated, deadline: deadline,
                inSync: InSync(lastOffset: lastOffset, epoch: epoch, minInsync: minInsync, isr: isr))
        }

        /// Every wait this answer holds.
        var waits: [WatermarkWait] { [wait] }
    }

    /// What an acks=all answer checks besides its high-watermark wait.
    struct InSync: Sendable {
        let lastOffset: Int64
        /// The leader epoch it was appended at: leading at another means it was lost.
        let epoch: UInt32
        let minInsync: Int
        /// The ISR when it was appended (used if the metadata forgets the partition).
        let isr: [UInt32]
    }

    var response: ProduceResponse
    /// Present when the answer waits until its batch is durable.
    var durability: Durability?
    /// ACKS_NONE: answered only if it fails.
    var silent = false
    /// Bytes charged to the memory budget until this answer is sent.
    var heldBytes = 0
}

/// The bounded, ordered hand-over between a Produce stream's reader and responder.
/// Each side waits on its own doorbell (at most one pending ring, so no ring is lost
/// and none queue up); durability is waited for on each answer's own wait.
final class ProduceAnswerQueue: Sendable {
    private struct State {
        var answers: [PendingAnswer] = []
        var head = 0
        var finished = false
        var count: Int { answers.count - head }
    }

    let capacity: Int
    private let state = Mutex(State())
    let responderBell: AsyncStream<Void>
    let responderContinuation: AsyncStream<Void>.Continuation
    private let readerBell: AsyncStream<Void>
    private let readerContinuation: AsyncStream<Void>.Continuation

    init(capacity: Int) {
        self.capacity = capacity
        (responderBell, responderContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        (readerBell, readerContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Suspends while `capacity` answers are waiting. Only the reader calls this.
    func waitForRoom() async throws {
        var bell = readerBell.makeAsyncIterator()
        while state.withLock({ $0.count >= capacity && !$0.finished }) {
            guard await bell.next() != nil else { throw CancellationError() }
        }
        try Task.checkCancellation()
    }

    func push(_ answer: PendingAnswer) {
        state.withLock { s in
            precondition(s.count < capacity, "the reader waits for room before pushing")
            s.answers.append(answer)
        }
        responderContinuation.yield()
    }

    func head() -> PendingAnswer? {
        state.withLock { s in s.count > 0 ? s.answers[s.head] : nil }
    }

    func pop() {
        state.withLock { s in
            precondition(s.count > 0, "pop of an empty queue")
            s.head += 1
            // Compact now and then so the array does not grow with the stream.
            if s.head >= 64 && s.head * 2 >= s.answers.count {
                s.answers.removeFirst(s.head)
                s.head = 0
            }
        }
        readerContinuation.yield()
    }

    var isFinished: Bool { state.withLock { $0.finished } }

    /// Cancels the durability waits of the answers still queued (the stream ended).
    func cancelWaits() {
        let waits = state.withLock { s in s.answers[s.head...].flatMap { $0.durability?.waits ?? [] } }
        for wait in waits { wait.cancel() }
    }

    /// No more requests will come (or the stream ended): wakes both sides.
    func finish() {
        state.withLock { $0.finished = true }
        responderContinuation.yield()
        readerContinuation.yield()
    }
}
