import Logging
import NIOCore
public import SluiceAPI
import SluiceStorage

extension Broker {
    /// Serves one Replicate stream: a follower's session of partitions it follows from
    /// this broker (proto section "Replicate"). Each request is answered by exactly one
    /// response: at once when a partition has records past the follower's log end, a
    /// divergence, an error, or a high watermark or log start the follower has not been
    /// told; otherwise after the first of: a partition gets records or a new high
    /// watermark (a wait on each partition's log end and high watermark rings the
    /// stream's one doorbell), `max_wait_ms`, a new view of the cluster, the stream ending.
    ///
    /// Each request's positions are reports of where the follower stands
    /// (`LeaderReplication`): they move the high watermark and the ISR. Records are the
    /// log's stored batches, whole and verbatim, each checked against both CRCs before it
    /// is sent, at most `max_bytes` over the answer (at least one batch). A partition
    /// that cannot be served gets its error and the others go on; an error thrown by
    /// `requests` (a bad protobuf, a reset) or by `respond` ends the stream.
    public func replicate<Requests: AsyncSequence & Sendable>(
        _ requests: Requests, limits: ReplicateLimits = ReplicateLimits(),
        respond: @escaping @Sendable (ReplicateResponse) async throws -> Void
    ) async throws where Requests.Element == ReplicateRequest {
        let (doorbells, bell) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let inbox = ReplicateInbox(serverBell: bell)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { inbox.end() }
                for try await request in requests { try await inbox.put(request) }
            }
            group.addTask {
                try await self.serveReplicas(inbox, doorbells: doorbells, bell: bell, limits: limits, respond: respond)
            }
            while try await group.next() != nil {}
        }
    }

    private func serveReplicas(
        _ inbox: ReplicateInbox, doorbells: AsyncStream<Void>, bell: AsyncStream<Void>.Continuation, limits: ReplicateLimits,
        respond: @Sendable (ReplicateResponse) async throws -> Void
    ) async throws {
        var session = ReplicaSession()
        var timer = DoorbellTimer()
        let streamID = makeStreamID()
        // A held request is answered as soon as leadership may have moved.
        leadership?.ringOnChange(id: streamID, bell)
        defer {
            leadership?.stopRinging(id: streamID)
            session.cancelWaits()
            timer.cancel()
        }
        var doorbell = doorbells.makeAsyncIterator()
        while true {
            guard let request = inbox.take() else {
                if inbox.isEnded { return }
                guard await doorbell.next() != nil else { throw CancellationError() }
                continue
            }
            if isShuttingDown { throw Self.shutdownError }
            session.apply(request, maxPartitions: limits.maxPartitions)
            reportPositions(session)
            var maxWait = request.maxWaitMs == 0 ? limits.defaultMaxWait : .milliseconds(Int64(request.maxWaitMs))
            // A held follower is caught up but reports nothing: it must report well
            // within the lag bound, or it would leave the ISR while in sync.
            if let replicas { maxWait = min(maxWait, replicas.settings.checkInterval) }
            let deadline = ContinuousClock.now + maxWait
            let maxBytes = request.maxBytes == 0 ? limits.maxBytes : min(Int(request.maxBytes), limits.maxBytes)
            while true {
                let answer = composeAnswer(session, maxBytes: maxBytes)
                if !answer.response.partitions.isEmpty || inbox.hasNews || ContinuousClock.now >= deadline || isShuttingDown {
                    session.answered(answer.told, atMs: partitions.settings.clock.nowMilliseconds())
                    try await respond(answer.response)
                    break
                }
                // Nothing new: wake when a quiet partition's leader gets records past the
                // follower's end, or a high watermark past the one it was told. A wait
                // already resolved stays until the answer, so a failed one cannot spin.
                for quiet in answer.quiet where !session.isArmed(quiet.index) {
                    session.arm(quiet.index, [
                        quiet.log.wait(for: LogEndOffset.self, toCover: quiet.logEnd, notify: { bell.yield() }),
                        quiet.log.wait(for: HighWatermark.self, toCover: quiet.highWatermark, notify: { bell.yield() }),
                    ])
                }
                timer.ring(bell, at: deadline)
                guard await doorbell.next() != nil else { throw CancellationError() }
            }
        }
    }

    /// Each followed partition this broker serves (leading it, the follower a replica,
    /// its log in step) counts as a report of the follower's position, listed in the
    /// request or not (an incremental request lists only the partitions that moved).
    private func reportPositions(_ session: ReplicaSession) {
        guard let replicas else { return }
        let nowMs = partitions.settings.clock.nowMilliseconds()
        for followed in session.followed {
            guard case .serving(let partition, let replicaSet) = standing(of: followed.position, replica: session.replica),
                  positionProblem(followed.position, in: partition.log) == nil
            else { continue }
            replicas.report(
                PositionReport(
                    replica: session.replica, position: followed.position, leaderEnd: partition.log.logEndOffset,
                    previousAnswer: followed.previousAnswer, nowMs: nowMs),
                partition: partition, replicaSet: replicaSet)
        }
    }

    /// Where an answer leaves each followed partition: what it told (nil: nothing new, so
    /// not in the answer) and the leader's log end as of the answer (nil: not served).
    typealias AnswerRecord = (index: Int, told: ReplicaSession.Told?, leaderEnd: Int64?)

    /// A served partition with nothing to send: the ends a held request waits on.
    typealias QuietPartition = (index: Int, log: PartitionLog, logEnd: Int64, highWatermark: Int64)

    /// What the request would be answered now: every partition with news, what it told
    /// each, and the served partitions' logs with the ends to wait on if nothing is new.
    private func composeAnswer(
        _ session: ReplicaSession, maxBytes: Int
    ) -> (response: ReplicateResponse, told: [AnswerRecord], quiet: [QuietPartition]) {
        var response = ReplicateResponse(partitions: session.refusals)
        var told: [AnswerRecord] = []
        var quiet: [QuietPartition] = []
        var budget = maxBytes
        for index in session.answerOrder {
            let followed = session.followed[index]
            let position = followed.position
            var data = ReplicaPartitionData(topic: followed.name.topic, partition: followed.name.partition)
            var leaderEnd: Int64?
            switch standing(of: position, replica: session.replica) {
            case .refused(let code, let message):
                data.error = code
                data.errorMessage = message
            case .serving(let partition, let replicaSet):
                let log = partition.log
                let end = log.logEndOffset
                leaderEnd = end
                data.leaderEpoch = replicaSet.leaderEpoch
                data.highWatermark = log.highWatermark.offset
                data.logStartOffset = log.logStartOffset
                if let problem = positionProblem(position, in: log) {
                    data.error = problem.error
                    data.errorMessage = problem.message
                    data.divergingEpoch = problem.diverging
                } else if position.logEndOffset < end, budget > 0 {
                    readRecords(into: &data, from: partition, at: position.logEndOffset, maxBytes: budget)
                    budget -= data.records.readableBytes
                } else {
                    quiet.append((index, log, position.logEndOffset, data.highWatermark))
                }
            }
            let state = ReplicaSession.Told(
                leaderEpoch: data.leaderEpoch, highWatermark: data.highWatermark, logStartOffset: data.logStartOffset,
                error: data.error, errorMessage: data.errorMessage, divergingEpoch: data.divergingEpoch)
            let news = data.records.readableBytes > 0 || state != followed.told
            if news { response.partitions.append(data) }
            told.append((index, news ? state : nil, leaderEnd))
        }
        return (response, told, quiet)
    }
}

/// Whether a followed partition can be served to its follower, and if not, why.
enum ReplicaStanding {
    /// This broker leads it at the follower's epoch, and the follower is one of its replicas.
    case serving(Partition, ReplicaSet)
    /// The error the partition gets (told once while it lasts).
    case refused(ErrorCode, String)
}

/// A position the leader's log cannot continue from.
struct PositionProblem {
    let error: ErrorCode
    let message: String
    let diverging: DivergingEpoch?
}

extension Broker {
    /// The checks of a followed partition before its log is looked at: leadership, the
    /// follower's leader epoch (KIP-320), its membership of the replicas, the local log.
    func standing(of position: ReplicaPosition, replica: UInt32) -> ReplicaStanding {
        let (topic, index) = (position.topic, position.partition)
        guard let leadership else {
            return .refused(.notAReplica, "this broker is not in a cluster: nothing replicates from it")
        }
        let epoch: UInt32
        switch leadership.verdict(topic: topic, partition: index) {
        case .elsewhere(let leader):
            return .refused(.notLeader, BrokerError.notLeader(topic: topic, partition: index, leader: leader).message)
        case .unknown:
            if let error = lookupError(topic: topic, index: index) { return error }
            return .refused(.notAReplica, "the cluster's metadata does not know partition \(index) of topic \(BrokerError.quoting(topic))")
        case .leads(let current):
            epoch = current
        }
        if position.currentLeaderEpoch < epoch {
            return .refused(
                .fencedLeaderEpoch,
                "leader epoch \(position.currentLeaderEpoch) of \(topic)/\(index) is older than this leader's \(epoch): refresh the metadata")
        }
        guard position.currentLeaderEpoch == epoch,
              let replicaSet = leadership.replicaSet(topic: topic, partition: index), replicaSet.leaderEpoch == epoch
        else {
            return .refused(
                .unknownLeaderEpoch,
                "leader epoch \(position.currentLeaderEpoch) of \(topic)/\(index) is newer than this broker knows (\(epoch)): retry shortly")
        }
        guard replica != 0, replica != leadership.localBrokerID, replicaSet.replicas.contains(replica) else {
            return .refused(
                .notAReplica,
                "broker \(replica) is not a follower of \(topic)/\(index), whose replicas are \(replicaSet.replicas) and leader \(leadership.localBrokerID)")
        }
        do throws(BrokerError) {
            return .serving(try partition(topic: topic, index: index), replicaSet)
        } catch {
            return .refused(ErrorCode(error.code), error.message)
        }
    }

    private func lookupError(topic: String, index: UInt32) -> ReplicaStanding? {
        do throws(BrokerError) {
            _ = try partition(topic: topic, index: index)
            return nil
        } catch {
            return .refused(ErrorCode(error.code), error.message)
        }
    }

    /// KIP-279/320: the follower's log must hold what the leader's holds up to its log
    /// end. When the leader's log ends the follower's last epoch earlier, or holds an
    /// older epoch there, the follower truncates to where the leader's epoch ends (the
    /// answer's `diverging_epoch`); when the leader holds no epoch at or below it, or the
    /// position is outside the leader's log, it starts over (OFFSET_OUT_OF_RANGE, as
    /// Kafka answers both).
    func positionProblem(_ position: ReplicaPosition, in log: PartitionLog) -> PositionProblem? {
        let name = "\(position.topic)/\(position.partition)"
        if position.lastFetchedEpoch >= 0, position.logEndOffset > log.logStartOffset {
            let end = log.endOffset(forEpoch: position.lastFetchedEpoch)
            if end.epoch < 0 {
                return PositionProblem(
                    error: .offsetOutOfRange,
                    message: "the leader's log of \(name) holds no leader epoch at or below \(position.lastFetchedEpoch); start over from its log start \(log.logStartOffset)",
                    diverging: nil)
            }
            if end.epoch < position.lastFetchedEpoch || end.endOffset < position.logEndOffset {
                return PositionProblem(
                    error: .none,
                    message: "",
                    diverging: DivergingEpoch(epoch: end.epoch, endOffset: end.endOffset))
            }
        }
        let (start, end) = (log.logStartOffset, log.logEndOffset)
        guard position.logEndOffset >= start, position.logEndOffset <= end else {
            return PositionProblem(
                error: .offsetOutOfRange,
                message: "offset \(position.logEndOffset) is outside the leader's log of \(name), which holds \(start)..<\(end); start over from \(start)",
                diverging: nil)
        }
        return nil
    }

    /// Whole stored batches from `offset`, verbatim, each checked against both CRCs
    /// first: the batches before a damaged one are sent; a damaged first batch makes the
    /// partition's answer STORAGE_ERROR (the follower waits; an operator repairs or moves
    /// the leadership), never bytes that fail their check.
    func readRecords(into data: inout ReplicaPartitionData, from partition: Partition, at offset: Int64, maxBytes: Int) {
        let read: LogReadResult
        do throws(LogError) {
            read = try partition.log.read(from: offset, maxBytes: maxBytes)
        } catch {
            let failure = Self.readFailure(error, partition: partition, position: offset)
            data.error = failure.code == .offsetOutOfRange ? .offsetOutOfRange : .storageError
            data.errorMessage = failure.message
            return
        }
        var intactBytes = 0
        for stored in StoredBatches(read.batches) {
            if let defect = stored.defect() {
                guard intactBytes == 0 else { break }
                data.error = .storageError
                data.errorMessage = "the leader's stored batch at offset \(stored.header.baseOffset) of \(partition.topicName)/\(partition.index) is damaged (\(defect)); it is not sent"
                logger.error("\(data.errorMessage)")
                return
            }
            intactBytes += stored.bytes.readableBytes
        }
        if intactBytes == 0, read.batches.readableBytes > 0 {
            data.error = .storageError
            data.errorMessage = "the leader's stored bytes at offset \(offset) of \(partition.topicName)/\(partition.index) do not hold a whole batch header; nothing is sent"
            logger.error("\(data.errorMessage)")
            return
        }
        data.records = read.batches.getSlice(at: read.batches.readerIndex, length: intactBytes) ?? ByteBuffer()
    }
}
