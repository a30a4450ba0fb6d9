import Logging
import NIOCore
public import SluiceAPI
import SluiceStorage

/// Limits of one Subscribe stream.
public struct SubscribeLimits: Sendable {
    /// `max_bytes` when the request says 0.
    public var defaultMaxBytes: Int = BrokerLimits.defaults.subscribeDefaultMaxBytes.value
    /// Larger `max_bytes` are lowered to this, so a response stays below a stock
    /// client's 4 MiB receive limit (one batch larger than this is still sent whole).
    public var maxMaxBytes: Int = BrokerLimits.defaults.subscribeMaxMaxBytes.value
    /// Larger `max_wait_ms` are lowered to this.
    public var maxWait: Duration = BrokerLimits.defaults.subscribeMaxWait.value

    public init() {}
}

extension Broker {
    /// Serves one Subscribe stream until the client goes away (cancellation or a
    /// failed `send`), a position falls out of range (`BrokerError.offsetOutOfRange`),
    /// the topic is deleted (`.topicNotFound`), or, in a cluster, this broker stops
    /// leading one of its partitions (`.notLeader`, checked every round and woken by each
    /// new view of the cluster).
    ///
    /// Each partition has a cursor; a round reads, for every cursor below its
    /// partition's high watermark, whole stored batches from the cursor (at most
    /// `max_bytes`, at least one batch) and sends them as one response. Nothing is
    /// decoded: each stored batch becomes a `RecordBatch` whose `records` is a slice
    /// of the bytes read. A cursor with nothing more to send holds a wait on its
    /// partition's high watermark (`PartitionLog.wait(for:toCover:notify:)`) that rings
    /// the stream's doorbell when the high watermark passes what the cursor has seen;
    /// when a round sends nothing, the stream waits on that doorbell (which a timer also
    /// rings for `max_wait_ms`): no polling. `send` suspends while the
    /// client's flow-control window is closed, and the next read only happens after
    /// it returns, so a slow subscriber costs the broker at most one response.
    ///
    /// A request naming no partitions (and no group reader) follows the topic: each
    /// round first looks for partitions CreatePartitions added, and reads each new one
    /// from its log start (it was created empty, so nothing produced to it is missed);
    /// CreatePartitions rings the stream, so it notices at once.
    public func subscribe(
        _ request: SubscribeRequest, limits: SubscribeLimits = SubscribeLimits(),
        send: @escaping @Sendable (SubscribeResponse) async throws -> Void
    ) async throws {
        counters.subscribeStream(started: true)
        defer { counters.subscribeStream(started: false) }
        var cursors = try subscriptionCursors(request)
        let maxBytes = min(request.maxBytes == 0 ? limits.defaultMaxBytes : Int(request.maxBytes), limits.maxMaxBytes)
        let minBytes = min(Int(request.minBytes), maxBytes)
        let maxWait = min(Duration.milliseconds(Int64(request.maxWaitMs)), limits.maxWait)

        let streamID = makeStreamID()
        let (doorbells, bell) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let reader = try groupReader(request, cursors: cursors)
        if let reader { groups.watchGroup(reader.group, id: streamID, doorbell: bell) }
        // Registered before the first round looks for new partitions, so none added from
        // here on goes unnoticed.
        let followedTopicID = request.partitions.isEmpty && reader == nil ? cursors.first?.partition.topicID : nil
        if let followedTopicID { topicDoorbells.add(topicID: followedTopicID, id: streamID, bell) }
        // A new view of the cluster rings the stream, so it ends as soon as leadership of
        // one of its partitions moves away.
        leadership?.ringOnChange(id: streamID, bell)
        var timer = DoorbellTimer()
        defer {
            leadership?.stopRinging(id: streamID)
            for cursor in cursors { cursor.wait?.cancel() }
            if let reader { groups.unwatchGroup(reader.group, id: streamID) }
            if let followedTopicID { topicDoorbells.remove(topicID: followedTopicID, id: streamID) }
            timer.cancel()
        }
        var doorbell = doorbells.makeAsyncIterator()

        while true {
            if isShuttingDown { throw Self.shutdownError }
            if let followedTopicID {
                try addedPartitions(of: request.topic, topicID: followedTopicID, to: &cursors)
            }
            // A group member reads only while it holds every partition it asked for.
            if let reader { try reader.check(groups) }
            var sent = false
            var earliestDeadline: ContinuousClock.Instant?
            for index in cursors.indices {
                let cursor = cursors[index]
                let partition = cursor.partition
                if partition.isClosed { throw Self.deleted(partition) }
                try checkLeads(topic: request.topic, partition: partition.index)
                if let outcome = cursor.wait?.resolved {
                    cursors[index].wait = nil
                    cursors[index].stalled = try Self.stalls(outcome, partition: partition)
                }
                let highWatermark = partition.highWatermark
                // Whatever this round does, the stream hears when the high watermark passes it.
                if cursors[index].wait == nil, !cursors[index].stalled {
                    cursors[index].wait = partition.log.wait(
                        for: HighWatermark.self, toCover: highWatermark, notify: { bell.yield() })
                }
                guard cursor.position < highWatermark else { continue }
                let read: LogReadResult
                do throws(LogError) {
                    read = try partition.log.read(from: cursor.position, maxBytes: maxBytes, upTo: highWatermark)
                } catch {
                    let failure = Self.readFailure(error, partition: partition, position: cursor.position)
                    if failure.code == .dataLoss { logger.error("\(failure.message)") }
                    throw failure
                }
                var batches: [RecordBatch] = []
                var next = cursor.position
                for stored in StoredBatches(read.batches) {
                    batches.append(RecordBatch(stored))
                    next = stored.header.nextOffset
                }
                guard !batches.isEmpty else { continue }
                if read.batches.readableBytes < minBytes && next >= highWatermark {
                    // Push batching: hold until min_bytes are there or max_wait passed.
                    let now = ContinuousClock.now
                    let deadline = cursor.holdingSince.map { $0 + maxWait } ?? now + maxWait
                    if cursor.holdingSince == nil { cursors[index].holdingSince = now }
                    if now < deadline {
                        earliestDeadline = min(earliestDeadline ?? deadline, deadline)
                        continue
                    }
                }
                try await send(SubscribeResponse(
                    partition: partition.index, batches: batches, highWatermark: highWatermark,
                    logStartOffset: read.logStartOffset))
                cursors[index].position = next
                cursors[index].holdingSince = nil
                sent = true
            }
            if sent { continue }
            if let deadline = earliestDeadline { timer.ring(bell, at: deadline) }
            // Shutdown sets its flag before it interrupts the waits: a wait registered after
            // the interruption finds the flag here.
            if isShuttingDown { throw Self.shutdownError }
            guard await doorbell.next() != nil else { throw CancellationError() }
        }
    }

    /// Appends a cursor at the log start for every partition of the followed topic past
    /// `cursors` (which hold partitions 0..<count in order). One not open yet is left for
    /// the ring that follows its opening; an offline one ends the stream like at the start.
    private func addedPartitions(
        of name: String, topicID: String, to cursors: inout [SubscriptionCursor]
    ) throws(BrokerError) {
        // A deleted topic ends the stream through its closed partitions, not here.
        guard let topic = try? registry.topic(named: name), topic.topicID == topicID else { return }
        while cursors.count < Int(topic.partitionCount) {
            let index = UInt32(cursors.count)
            switch partitions.slot(topicID: topicID, partition: index) {
            case .online(let partition)?:
                cursors.append(SubscriptionCursor(partition: partition, position: partition.log.logStartOffset))
            case .offline(let reason)?:
                throw .offline(partition: index, topic: name, reason: reason)
            case nil:
                return
            }
        }
    }

    /// A consumer-group member's subscription: who reads, and which partitions it must hold.
    struct GroupReaderCheck: Sendable {
        let group: String
        let member: String
        let generation: Int32
        let partitions: [GroupPartition]

        func check(_ groups: GroupCoordinator) throws(BrokerError) {
            try groups.checkReader(group: group, member: member, generation: generation, partitions: partitions)
        }
    }

    /// The group check of a request with `group_reader`, verified once now; nil without.
    private func groupReader(_ request: SubscribeRequest, cursors: [SubscriptionCursor]) throws(BrokerError) -> GroupReaderCheck? {
        guard let reader = request.groupReader else { return nil }
        guard !reader.group.isEmpty, !reader.memberId.isEmpty else {
            throw BrokerError(.invalidRequest, "group_reader needs a group and a member id")
        }
        let check = GroupReaderCheck(
            group: reader.group, member: reader.memberId, generation: reader.generation,
            partitions: cursors.map { GroupPartition(request.topic, $0.partition.index) })
        try check.check(groups)
        return check
    }

    /// Where a subscription reads from, per partition.
    struct SubscriptionCursor: Sendable {
        let partition: Partition
        var position: Int64
        /// When the cursor first had fewer than `min_bytes` ready (push batching).
        var holdingSince: ContinuousClock.Instant?
        /// On the partition's high watermark, for the end this cursor last saw; rings the
        /// stream's doorbell once resolved. Cancelled when the stream ends.
        var wait: WatermarkWait?
        /// The partition's log was fenced: it serves what it holds and nothing more comes.
        var stalled = false
    }

    /// What a resolved high-watermark wait means for its cursor: look again (false),
    /// stop waiting (true: a fenced log's watermarks never move again, so the cursor
    /// serves what the log holds and the stream goes on with the others), or the end
    /// of the stream.
    private static func stalls(_ outcome: WatermarkWaitOutcome, partition: Partition) throws(BrokerError) -> Bool {
        switch outcome {
        case .reached, .truncated, .interrupted, .cancelled:
            return false  // a truncation shows when the cursor reads past the new end
        case .failed(.closed):
            throw deleted(partition)
        case .failed(.tooManyWaits(let limit)):
            throw BrokerError(
                .tooManyWaits,
                "partition \(partition.index) of topic \"\(partition.topicName)\" already holds \(limit) waits for new data; subscribe again later")
        case .failed:
            return true
        }
    }

    /// The partitions a request asks for, each at its resolved start position.
    func subscriptionCursors(_ request: SubscribeRequest) throws(BrokerError) -> [SubscriptionCursor] {
        if isShuttingDown { throw Self.shutdownError }
        let topic = try registry.topic(named: request.topic)
        let wanted: [(UInt32, StartPosition?)]
        if request.partitions.isEmpty {
            wanted = (0..<topic.partitionCount).map { ($0, request.defaultStart) }
        } else {
            wanted = request.partitions.map { ($0.partition, $0.start ?? request.defaultStart) }
            guard Set(wanted.map(\.0)).count == wanted.count else {
                throw BrokerError(.invalidRequest, "a partition is listed more than once")
            }
        }
        var cursors: [SubscriptionCursor] = []
        for (index, start) in wanted {
            try checkLeads(topic: request.topic, partition: index)
            let partition = try self.partition(topic: request.topic, index: index)
            cursors.append(SubscriptionCursor(partition: partition, position: try startOffset(start, in: partition)))
        }
        return cursors
    }

    /// A start position as an offset. No position means `earliest`: nothing retained
    /// is skipped unless asked.
    private func startOffset(_ start: StartPosition?, in partition: Partition) throws(BrokerError) -> Int64 {
        let log = partition.log
        switch start?.position {
        case nil, .earliest?:
            return log.logStartOffset
        case .latest?:
            return partition.highWatermark
        case .offset(let offset)?:
            let (logStart, logEnd) = (log.logStartOffset, log.logEndOffset)
            guard offset >= logStart, offset <= logEnd else {
                throw Self.outOfRange(partition, offset: offset, logStart: logStart, logEnd: logEnd)
            }
            return offset
        case .timestampMs(let timestamp)?:
            do throws(LogError) {
                return try log.offset(forTimestamp: timestamp) ?? log.logEndOffset
            } catch {
                throw Self.readFailure(error, partition: partition, position: timestamp)
            }
        }
    }

    static func outOfRange(_ partition: Partition, offset: Int64, logStart: Int64, logEnd: Int64) -> BrokerError {
        let advice = offset < logStart
            ? "it is below the log start (retention deleted it); subscribe again from earliest"
            : "it is past the log end"
        return BrokerError(
            .offsetOutOfRange,
            "offset \(offset) is out of range for partition \(partition.index) of topic \"\(partition.topicName)\", which holds \(logStart)..<\(logEnd): \(advice)")
    }

    static let shutdownError = BrokerError(.shuttingDown, "the broker is shutting down; subscribe again once it is back")

    static func deleted(_ partition: Partition) -> BrokerError { .topicDeleted(partition.topicName) }

    static func readFailure(_ error: LogError, partition: Partition, position: Int64) -> BrokerError {
        switch error {
        case .offsetOutOfRange(let offset, let start, let end):
            return outOfRange(partition, offset: offset, logStart: start, logEnd: end)
        case .closed:
            return deleted(partition)
        case .corruptSegment:
            return BrokerError(
                .dataLoss,
                "partition \(partition.index) of topic \"\(partition.topicName)\" cannot be read at offset \(position): \(error)")
        default:
            return BrokerError(
                .storageFailed,
                "reading partition \(partition.index) of topic \"\(partition.topicName)\" at \(position) failed: \(error)")
        }
    }
}

extension RecordBatch {
    /// A stored batch as subscribers see it: header fields copied, `records` a slice
    /// of the stored bytes (never decoded). The log's -1 "not idempotent" markers
    /// become the protocol's 0.
    init(_ stored: StoredBatch) {
        let header = stored.header
        let idempotent = header.producerId >= 0
        self.init(
            formatVersion: UInt32(header.formatVersion), attributes: UInt32(header.attributes),
            baseOffset: header.baseOffset, recordCount: UInt32(clamping: header.recordCount),
            firstTimestampMs: header.firstTimestamp, maxTimestampMs: header.maxTimestamp,
            partitionLeaderEpoch: header.leaderEpoch, producerId: idempotent ? header.producerId : 0,
            producerEpoch: idempotent ? Int32(header.producerEpoch) : 0,
            baseSequence: idempotent ? header.baseSequence : 0, recordsCrc32c: header.recordsCRC,
            records: stored.records)
    }
}
