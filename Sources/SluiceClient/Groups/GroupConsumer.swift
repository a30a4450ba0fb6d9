import DequeModule
public import Logging
import SluiceAPI
import SluiceWire

/// A member of a consumer group (docs/consumer-groups.md).
///
/// `run` joins the group over the `Groups.Join` stream, reads the partitions the coordinator
/// assigns (one `Subscribe` stream each, marked with the member's `GroupReader`), and calls
/// the handler with one partition's batch at a time, committing offsets as `delivery` says.
/// Rebalancing is cooperative: partitions the member keeps are read without a pause; a
/// revoked partition stops being read, its processed offset is committed, then the member
/// acknowledges. After its session expired the member rejoins under a fresh member id (the
/// same instance id when static).
///
/// ```swift
/// let consumer = GroupConsumer(address: address, configuration: .init(group: "billing", topics: ["orders"]))
/// try await consumer.run { batch in
///     for record in batch.records { try await handle(record) }
/// }   // returns after `close()`; throws `GroupConsumerError` or the handler's error
/// ```
public actor GroupConsumer {
    /// The first bootstrap broker.
    public nonisolated let address: BrokerAddress
    /// The brokers the member connects to, the first that answers.
    public nonisolated let bootstrap: [BrokerAddress]
    public nonisolated let configuration: GroupConsumerConfiguration
    let logger: Logger
    let eventCallback: @Sendable (RebalanceEvent) -> Void
    let eventStreams = RebalanceEventFanOut()

    // The session: one connection carries the Join stream, subscriptions and commits.
    var connection: GRPCClientConnection?
    var joinCall: ProtobufCall<MemberMessage, CoordinatorMessage>?
    var heartbeats: Task<Void, Never>?
    var joinSendBusy = false
    var joinSendWaiters: [CheckedContinuation<Void, Never>] = []
    var memberId: String?
    var generation: Int32 = -1
    /// Whether the current session got as far as `Joined` (for counting failures in a row).
    var joinedInSession = false

    /// Partitions the member may read: assigned, and those revoked but not yet acknowledged.
    var owned: [TopicPartition: OwnedPartition] = [:]
    var nextToken = 0

    /// Batches read ahead of the handler; at most `maxBufferedBatches`.
    var buffered: Deque<BufferedBatch> = []
    var spaceWaiters: [CheckedContinuation<Void, Never>] = []
    var runLoopWaiter: CheckedContinuation<Void, Never>?
    /// The batch the handler holds, and who waits for the handler to hand it back.
    var inFlight: BufferedBatch?
    var inFlightWaiters: [CheckedContinuation<Void, Never>] = []

    var running = false
    var stopping = false
    var failure: (any Error)?

    /// One assigned partition. `token` names this ownership: a partition lost and assigned
    /// again gets a new one, so a batch read under the old ownership is recognised and dropped.
    struct OwnedPartition {
        var token: Int
        var reader: Task<Void, Never>?
        /// The revocation arrived; nothing more is handed out, the acknowledgement follows.
        var revoking = false
        /// Next offsets: handed to the handler, handed back, and last committed by this member.
        var delivered: Int64?
        var processed: Int64?
        var committed: Int64?
    }

    /// A batch with the ownership and identity it was read under.
    struct BufferedBatch {
        var token: Int
        var memberId: String
        var batch: GroupBatch
    }

    public init(
        address: BrokerAddress, configuration: GroupConsumerConfiguration,
        logger: Logger = Logger(label: "sluice.group-consumer"),
        onEvent: @escaping @Sendable (RebalanceEvent) -> Void = { _ in }
    ) {
        self.init(bootstrap: [address], configuration: configuration, logger: logger, onEvent: onEvent)
    }

    /// A member that connects to the first of `bootstrap` that answers (a non-empty list),
    /// in turn again at each reconnect.
    public init(
        bootstrap: [BrokerAddress], configuration: GroupConsumerConfiguration,
        logger: Logger = Logger(label: "sluice.group-consumer"),
        onEvent: @escaping @Sendable (RebalanceEvent) -> Void = { _ in }
    ) {
        precondition(!bootstrap.isEmpty, "a group consumer needs at least one bootstrap broker")
        address = bootstrap[0]
        self.bootstrap = bootstrap
        self.configuration = configuration
        self.logger = logger
        self.eventCallback = onEvent
    }

    /// Joins the group and hands batches to `handler`, one at a time, until `close()` is
    /// called or the task is cancelled (then it leaves the group and returns). Throws
    /// `GroupConsumerError`, or the handler's error (the batch is then not committed under
    /// at-least-once). One `run` per consumer: a second throws `.alreadyRunning`.
    public func run(_ handler: @escaping @Sendable (GroupBatch) async throws -> Void) async throws {
        guard !running else { throw GroupConsumerError.alreadyRunning }
        running = true
        let membership = Task { [counted = ClientTasks.begin()] in
            defer { counted.end() }
            await self.maintainMembership()
        }
        do {
            try await withTaskCancellationHandler {
                while let entry = try await nextBatch() {
                    try await deliver(entry, to: handler)
                }
            } onCancel: {
                Task { [counted = ClientTasks.begin()] in
                    defer { counted.end() }
                    await self.close()
                }
            }
        } catch {
            logger.debug("run ends with an error", metadata: ["error": "\(error)"])
            await shutDown(membership)
            eventStreams.finish()
            throw error
        }
        logger.debug("run ends", metadata: ["stopping": "\(stopping)", "cancelled": "\(Task.isCancelled)"])
        await shutDown(membership)
        eventStreams.finish()
    }

    /// The rebalance events from now on, as an `AsyncSequence` beside the `onEvent`
    /// callback (each call makes a new stream; each gets every event). A stream keeps the
    /// newest 256 events not yet read, and finishes when `run` ends (at once if it ended).
    public nonisolated func events() -> AsyncStream<RebalanceEvent> {
        eventStreams.stream()
    }

    /// Reports `event` to the callback and to every `events()` stream.
    func onEvent(_ event: RebalanceEvent) {
        eventCallback(event)
        eventStreams.yield(event)
    }

    /// Ends `run`: the batch in the handler finishes, then the member leaves the group.
    public func close() {
        stopping = true
        wakeEveryone()
    }

    /// Commits the offsets after every batch handed to the handler so far (the one it is
    /// processing included), for `.atLeastOnce(commit: .manual)`. Returns what was
    /// committed; partitions the coordinator refused (moved to another member) are
    /// reported as `RebalanceEvent.commitRefused`. Throws `GroupConsumerError.commitFailed`
    /// when the call itself failed (DEADLINE_EXCEEDED after `requestTimeout`, ...), and
    /// `CancellationError` at once when the task is cancelled.
    @discardableResult
    public func commit() async throws -> [TopicPartition: Int64] {
        guard configuration.delivery == .atLeastOnce(commit: .manual) else { throw GroupConsumerError.commitNotManual }
        guard let memberId else { return [:] }
        var offsets: [TopicPartition: Int64] = [:]
        for (partition, state) in owned where !state.revoking {
            if let delivered = state.delivered, delivered != state.committed { offsets[partition] = delivered }
        }
        let outcome = await commitOutcome(offsets, memberId: memberId, generation: generation)
        try Task.checkCancellation()
        if let failure = outcome.failure { throw GroupConsumerError.commitFailed(failure) }
        return outcome.accepted
    }

    /// The partitions the member reads now (not those pending revocation).
    public var assignment: [TopicPartition] {
        owned.filter { !$0.value.revoking }.keys.sorted()
    }

    /// The member id of the current session, nil between sessions.
    public var currentMemberId: String? { memberId }

    // MARK: - The run loop

    /// The next batch still owned; nil once stopping.
    private func nextBatch() async throws -> BufferedBatch? {
        while true {
            if let failure { throw failure }
            if stopping || Task.isCancelled { return nil }
            if let entry = buffered.popFirst() {
                resumeOneSpaceWaiter()
                guard let state = owned[entry.batch.topicPartition], state.token == entry.token, !state.revoking else { continue }
                return entry
            }
            await withCheckedContinuation { runLoopWaiter = $0 }
        }
    }

    private func deliver(_ entry: BufferedBatch, to handler: @Sendable (GroupBatch) async throws -> Void) async throws {
        let batch = entry.batch
        let partition = batch.topicPartition
        // Held from before an at-most-once commit until the handler returns: a revocation
        // waits for all of it, so a batch committed here is always handed out.
        inFlight = entry
        defer {
            inFlight = nil
            for waiter in inFlightWaiters { waiter.resume() }
            inFlightWaiters.removeAll()
        }
        if configuration.delivery == .atMostOnce {
            let committed = await commit([partition: batch.nextOffset], memberId: entry.memberId, generation: batch.generation)
            // A refused commit means the partition may be someone else's: handing the
            // records out could process them twice.
            guard committed[partition] != nil else { return }
        }
        if owned[partition]?.token == entry.token { owned[partition]?.delivered = batch.nextOffset }
        try await handler(batch)
        guard configuration.delivery == .atLeastOnce(commit: .auto) else { return }
        if let state = owned[partition], state.token == entry.token {
            owned[partition]?.processed = batch.nextOffset
            // A revoking partition is committed by the revocation, before its acknowledgement.
            guard !state.revoking, let memberId else { return }
            _ = await commit([partition: batch.nextOffset], memberId: memberId, generation: generation)
        } else {
            // The session ended while the handler ran: try under the identity the records
            // were read with. The broker refuses it if the partition moved (a zombie must
            // not commit over the new owner); the records are then read again there.
            _ = await commit([partition: batch.nextOffset], memberId: entry.memberId, generation: batch.generation)
        }
    }

    /// Waits until the handler no longer holds a batch of `partitions`.
    func waitForHandler(toRelease partitions: Set<TopicPartition>) async {
        while let inFlight, partitions.contains(inFlight.batch.topicPartition) {
            await withCheckedContinuation { inFlightWaiters.append($0) }
        }
    }

    // MARK: - The bounded buffer

    /// Called by a partition reader; suspends while the buffer is full. False when the
    /// ownership `token` names has ended: the reader stops.
    func enqueue(_ records: [ConsumerRecord], partition: TopicPartition, token: Int) async -> Bool {
        while true {
            guard !stopping, failure == nil, let state = owned[partition], state.token == token, !state.revoking,
                  let memberId
            else { return false }
            if buffered.count < configuration.maxBufferedBatches {
                buffered.append(BufferedBatch(
                    token: token, memberId: memberId,
                    batch: GroupBatch(checked: partition, records: records, generation: generation)))
                runLoopWaiter?.resume()
                runLoopWaiter = nil
                return true
            }
            await withCheckedContinuation { spaceWaiters.append($0) }
        }
    }

    private func resumeOneSpaceWaiter() {
        guard !spaceWaiters.isEmpty else { return }
        spaceWaiters.removeFirst().resume()
    }

    /// Wakes every waiter so each re-checks its condition (after a loss, stop or failure).
    func wakeEveryone() {
        runLoopWaiter?.resume()
        runLoopWaiter = nil
        let waiters = spaceWaiters
        spaceWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }

    /// Ends `run` with `error` (the first one wins).
    func fail(_ error: any Error) {
        if failure == nil { failure = error }
        wakeEveryone()
    }

    private func shutDown(_ membership: Task<Void, Never>) async {
        stopping = true
        let partitions = Array(owned.keys)
        for partition in partitions { stopReading(partition) }
        owned.removeAll()
        wakeEveryone()
        await leave(membership)
    }

    /// Stops the partition's reader and forgets its buffered batches.
    func stopReading(_ partition: TopicPartition) {
        owned[partition]?.reader?.cancel()
        owned[partition]?.reader = nil
        buffered.removeAll { $0.batch.topicPartition == partition }
        wakeEveryone()
    }

    // MARK: - Commits

    /// Commits `offsets` as `memberId` in `generation`; returns the accepted ones. A stale
    /// generation of this same member is retried once with the current one (a commit can
    /// cross the Assignment that bumped it). Refusals are reported, never thrown: the
    /// records are then read again by whoever owns the partition.
    func commit(_ offsets: [TopicPartition: Int64], memberId: String, generation: Int32) async -> [TopicPartition: Int64] {
        await commitOutcome(offsets, memberId: memberId, generation: generation).accepted
    }

    /// What a commit did: the offsets accepted, and the call's failure if it failed as a
    /// whole (every partition is then reported refused).
    struct CommitOutcome {
        var accepted: [TopicPartition: Int64]
        var failure: GRPCStatus?
    }

    func commitOutcome(_ offsets: [TopicPartition: Int64], memberId: String, generation: Int32) async -> CommitOutcome {
        guard !offsets.isEmpty else { return CommitOutcome(accepted: [:]) }
        var attemptGeneration = generation
        for attempt in 0..<2 {
            guard let connection else {
                report(refused: Array(offsets.keys), reason: "not connected")
                return CommitOutcome(accepted: [:], failure: GRPCStatus(.unavailable, "not connected to the coordinator"))
            }
            let request = CommitOffsetsRequest(
                group: configuration.group, memberId: memberId, generation: attemptGeneration,
                offsets: offsets.sorted { $0.key < $1.key }.map {
                    OffsetCommit(topic: $0.key.topic, partition: UInt32($0.key.partition), offset: $0.value)
                })
            do {
                let response: CommitOffsetsResponse = try await connection.unary(
                    path: GroupsMethod.commitOffsets, request: request, timeout: configuration.requestTimeout)
                var accepted = offsets
                var refusals: [String] = []
                for result in response.results where result.error != .none {
                    let partition = TopicPartition(topic: result.topic, partition: Int(result.partition))
                    accepted[partition] = nil
                    refusals.append("\(partition): \(result.error) \(result.errorMessage)")
                }
                if !refusals.isEmpty {
                    report(refused: offsets.keys.filter { accepted[$0] == nil }, reason: refusals.joined(separator: "; "))
                }
                for (partition, offset) in accepted where owned[partition] != nil {
                    owned[partition]?.committed = offset
                }
                return CommitOutcome(accepted: accepted)
            } catch let status as GRPCStatus {
                let sameMemberNewGeneration = memberId == self.memberId && self.generation != attemptGeneration
                if attempt == 0, status.code == .failedPrecondition, sameMemberNewGeneration {
                    attemptGeneration = self.generation
                    continue
                }
                report(refused: Array(offsets.keys), reason: "\(status.message) (\(status.code))")
                // A refusal of the whole request (a stale generation) is the coordinator's
                // answer, not a failure to reach it.
                return CommitOutcome(accepted: [:], failure: status.code == .failedPrecondition ? nil : status)
            } catch {
                report(refused: Array(offsets.keys), reason: "\(error)")
                return CommitOutcome(accepted: [:], failure: GRPCStatus(.unknown, "\(error)"))
            }
        }
        return CommitOutcome(accepted: [:])
    }

    private func report(refused partitions: [TopicPartition], reason: String) {
        logger.warning("commit refused", metadata: ["partitions": "\(partitions.sorted())", "reason": "\(reason)"])
        onEvent(.commitRefused(partitions: partitions.sorted(), reason: reason))
    }
}
