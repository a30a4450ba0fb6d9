import Logging
import Synchronization
import SluiceAPI
import SluiceWire

/// The member's side of `Groups.Join` (proto/sluice/v1/groups.proto): join, heartbeats,
/// assignments, revocations, rejoining after the session ended.
extension GroupConsumer {
    /// Keeps the member in the group until `run` ends: one session after another.
    func maintainMembership() async {
        var failures = 0
        while !stopping, !Task.isCancelled, failure == nil {
            joinedInSession = false
            do {
                try await session()
                // The coordinator ended the stream without a status: treat it as lost, and
                // pause before rejoining so a coordinator that keeps doing so is not hammered.
                if stopping {
                    endSession(leaving: true)
                } else {
                    endSession(reason: "the coordinator ended the membership stream")
                }
                if !stopping { try? await Task.sleep(for: configuration.reconnectBackoff) }
            } catch let status as GRPCStatus where status.code == .failedPrecondition {
                // Session expired or fenced: the partitions already belong to others. Rejoin
                // after the shortest backoff, so two processes sharing an instance id cannot
                // fence each other in a tight loop.
                endSession(reason: status.message)
                failures = 0
                try? await Task.sleep(for: configuration.reconnectBackoff)
                continue
            } catch let status as GRPCStatus where Self.isRetriable(status.code) {
                endSession(reason: "\(status.message) (\(status.code))")
                await dropConnection()
                if Task.isCancelled || stopping { return }
                // Failures count in a row only while no join succeeds.
                failures = joinedInSession ? 1 : failures + 1
                guard failures <= configuration.maxReconnectAttempts else {
                    fail(GroupConsumerError.reconnectsExhausted(attempts: failures - 1, last: "\(status.message) (\(status.code))"))
                    return
                }
                try? await Task.sleep(for: backoff(failures))
                continue
            } catch let status as GRPCStatus {
                endSession(reason: "\(status.message) (\(status.code))")
                if !stopping { fail(GroupConsumerError.refused(status)) }
                return
            } catch is CancellationError {
                endSession(reason: "stopped")
                return
            } catch {
                endSession(reason: "\(error)")
                fail(error)
                return
            }
            failures = 0
        }
    }

    static func isRetriable(_ code: GRPCStatus.Code) -> Bool {
        code == .unavailable || code == .aborted || code == .unknown || code == .cancelled || code == .deadlineExceeded
            || code == .resourceExhausted
    }

    nonisolated func backoff(_ failures: Int) -> Duration {
        min(configuration.reconnectBackoff * (1 << min(failures - 1, 16)), configuration.maxReconnectBackoff)
    }

    /// One membership: join, then follow the coordinator until the stream ends.
    private func session() async throws {
        let connection = try await currentConnection()
        let call = try await ProtobufCall<MemberMessage, CoordinatorMessage>(connection, path: GroupsMethod.join)
        joinCall = call
        let join = JoinGroup(
            group: configuration.group, topics: configuration.topics, instanceId: configuration.instanceId ?? "",
            sessionTimeoutMs: configuration.sessionTimeout.map { UInt32(clamping: $0.wholeMilliseconds) } ?? 0,
            strategy: configuration.strategy, clientId: configuration.clientId)
        try await call.send(MemberMessage(kind: .join(join)))
        // A coordinator that never answers the join (frozen, or a path that stopped
        // forwarding) must not hold `run` for ever: the attempt is given up at joinTimeout.
        let joinTimeout = configuration.joinTimeout
        let expired = JoinExpiry()
        let joinDeadline = Task { [counted = ClientTasks.begin()] in
            defer { counted.end() }
            // A timer, not synchronisation: the bound on the coordinator's Joined.
            try? await Task.sleep(for: joinTimeout)
            guard !Task.isCancelled else { return }
            expired.fire()
            call.cancel()
        }
        defer { joinDeadline.cancel() }
        do {
            try await follow(call, joinDeadline: joinDeadline)
        } catch let status as GRPCStatus where expired.fired && !joinedInSession {
            throw GRPCStatus(.deadlineExceeded, "no Joined from the coordinator within joinTimeout (\(joinTimeout)): \(status.message)")
        }
    }

    /// Follows the coordinator's messages until the membership stream ends.
    private func follow(_ call: ProtobufCall<MemberMessage, CoordinatorMessage>, joinDeadline: Task<Void, Never>) async throws {
        for try await message in call.responses {
            try Task.checkCancellation()
            switch message.kind {
            case .joined(let joined)?:
                joinDeadline.cancel()
                memberId = joined.memberId
                joinedInSession = true
                startHeartbeats(every: .milliseconds(max(Int64(joined.heartbeatIntervalMs), 10)))
                logger.debug("joined", metadata: ["member": "\(joined.memberId)"])
                onEvent(.joined(memberId: joined.memberId))
            case .assignment(let assignment)?:
                try await apply(assignment)
            case .revocation(let revocation)?:
                try await apply(revocation)
            case nil:
                break
            }
        }
    }

    func currentConnection() async throws -> GRPCClientConnection {
        if let connection { return connection }
        let (connection, _) = try await BrokerAddress.connectFirst(of: bootstrap, logger: logger, timeout: configuration.connectTimeout)
        if let existing = self.connection {
            // Another caller connected while this one waited: one connection per session.
            await connection.close()
            return existing
        }
        self.connection = connection
        return connection
    }

    private func dropConnection() async {
        let connection = self.connection
        self.connection = nil
        await connection?.close()
    }

    private func startHeartbeats(every interval: Duration) {
        heartbeats?.cancel()
        heartbeats = Task { [weak self, counted = ClientTasks.begin()] in
            defer { counted.end() }
            while !Task.isCancelled {
                // The heartbeat period the coordinator asked for, not a wait for an event.
                try? await Task.sleep(for: interval)
                guard let self, !Task.isCancelled else { return }
                await self.sendHeartbeat()
            }
        }
    }

    /// A heartbeat; skipped while another message is being sent (that one keeps the session
    /// alive too), so heartbeats never queue up.
    private func sendHeartbeat() async {
        guard !joinSendBusy else { return }
        do {
            try await sendToCoordinator(MemberMessage(kind: .heartbeat(Heartbeat())))
        } catch {
            // The stream's end is reported by its responses; nothing to add here.
            logger.debug("heartbeat not sent", metadata: ["error": "\(error)"])
        }
    }

    /// Sends on the Join stream, one message at a time (the stream takes no concurrent writes).
    func sendToCoordinator(_ message: MemberMessage) async throws {
        while joinSendBusy { await withCheckedContinuation { joinSendWaiters.append($0) } }
        joinSendBusy = true
        defer {
            joinSendBusy = false
            if !joinSendWaiters.isEmpty { joinSendWaiters.removeFirst().resume() }
        }
        try await joinCall?.send(message)
    }

    /// The whole assignment of `generation`: start reading what is new, drop what is gone.
    private func apply(_ assignment: Assignment) async throws {
        guard let memberId else { throw GRPCStatus(.internalError, "an Assignment arrived before Joined") }
        generation = assignment.generation
        // A partition held but missing here is about to be revoked (the coordinator sends the
        // new generation's Assignment first): it stays ours, and is read, until the Revocation.
        let target = Set(TopicPartition.from(assignment.partitions))
        let added = target.filter { owned[$0] == nil }.sorted()
        let starts = try await startPositions(for: added)
        // A revocation or the session's end may have come while the offsets were fetched.
        guard self.memberId == memberId, !stopping else { return }
        for partition in added where owned[partition] == nil {
            nextToken += 1
            let token = nextToken
            owned[partition] = OwnedPartition(token: token)
            owned[partition]?.reader = Task { [self, counted = ClientTasks.begin()] in
                defer { counted.end() }
                await PartitionReader(consumer: self, partition: partition, token: token, start: starts[partition] ?? .earliest).run()
            }
        }
        logger.debug("assigned", metadata: ["generation": "\(generation)", "partitions": "\(target.sorted())"])
        onEvent(.assigned(generation: assignment.generation, partitions: target.sorted(), added: added))
    }

    /// Where each new partition starts: the committed offset, else the reset policy.
    private func startPositions(for partitions: [TopicPartition]) async throws -> [TopicPartition: ConsumerStart] {
        guard !partitions.isEmpty else { return [:] }
        let connection = try await currentConnection()
        let response: FetchOffsetsResponse = try await connection.unary(
            path: GroupsMethod.fetchOffsets,
            request: FetchOffsetsRequest(group: configuration.group, partitions: TopicPartition.protobuf(partitions)),
            timeout: configuration.requestTimeout)
        var committed: [TopicPartition: Int64] = [:]
        for offset in response.offsets where offset.offset >= 0 {
            committed[TopicPartition(topic: offset.topic, partition: Int(offset.partition))] = offset.offset
        }
        var starts: [TopicPartition: ConsumerStart] = [:]
        for partition in partitions {
            if let offset = committed[partition] {
                starts[partition] = .offset(offset)
            } else {
                starts[partition] = try resetStart(partition, committed: nil)
            }
        }
        return starts
    }

    /// The reset policy's start for a partition without a usable committed offset.
    nonisolated func resetStart(_ partition: TopicPartition, committed: Int64?) throws(GroupConsumerError) -> ConsumerStart {
        switch configuration.resetPolicy {
        case .earliest: return .earliest
        case .latest: return .latest
        case .error: throw GroupConsumerError.noValidOffset(partition, committed: committed)
        }
    }

    /// Stop reading the revoked partitions, commit what was processed, acknowledge.
    private func apply(_ revocation: Revocation) async throws {
        let revoked = Set(TopicPartition.from(revocation.partitions)).filter { owned[$0] != nil }
        for partition in revoked {
            owned[partition]?.revoking = true
            stopReading(partition)
        }
        await waitForHandler(toRelease: revoked)
        if configuration.delivery == .atLeastOnce(commit: .auto), let memberId {
            var offsets: [TopicPartition: Int64] = [:]
            for partition in revoked {
                if let state = owned[partition], let processed = state.processed, processed != state.committed {
                    offsets[partition] = processed
                }
            }
            _ = await commit(offsets, memberId: memberId, generation: generation)
        }
        for partition in revoked { owned[partition] = nil }
        // Reported before the acknowledgement, so whoever sees the rebalance finish has seen this.
        logger.debug("revoked", metadata: ["generation": "\(revocation.generation)", "partitions": "\(revoked.sorted())"])
        onEvent(.revoked(generation: revocation.generation, partitions: revoked.sorted()))
        let ack = RevokeAck(generation: revocation.generation, partitions: revocation.partitions)
        try await sendToCoordinator(MemberMessage(kind: .revokeAck(ack)))
    }

    /// The session is over: every partition is lost (others may own them already), or,
    /// `leaving`, given up because the member stops: a leave is not a loss, and a command
    /// line that reports it as one makes every graceful exit look like a failure.
    func endSession(reason: String = "left the group", leaving: Bool = false) {
        heartbeats?.cancel()
        heartbeats = nil
        joinCall?.cancel()
        joinCall = nil
        let lost = owned.keys.sorted()
        for partition in lost { stopReading(partition) }
        owned.removeAll()
        if memberId != nil || !lost.isEmpty {
            if leaving {
                logger.debug("left the group")
                onEvent(.left(partitions: lost))
            } else {
                logger.debug("membership lost", metadata: ["reason": "\(reason)"])
                onEvent(.lost(partitions: lost, reason: reason))
            }
        }
        memberId = nil
        generation = -1
    }

    /// Leaves the group (partitions are reassigned at once) and closes the connection.
    func leave(_ membership: Task<Void, Never>) async {
        if let joinCall {
            try? await sendToCoordinator(MemberMessage(kind: .leave(LeaveGroup())))
            try? await joinCall.finishSending()
            // The coordinator answers a leave by ending the stream, which ends `membership`;
            // waiting for that keeps the connection open until the leave was read. Bounded by
            // leaveTimeout, in case the coordinator never answers; not a task group, which
            // would wait for `membership` (an await of another task ignores cancellation)
            // until the connection died.
            _ = try? await firstOf(within: configuration.leaveTimeout, timeoutError: CancellationError()) {
                await membership.value
            }
        }
        membership.cancel()
        endSession(leaving: true)
        await dropConnection()
    }

    /// For a partition reader: the connection and `GroupReader` to subscribe with while the
    /// ownership `token` lasts; nil once it ended.
    func subscription(for partition: TopicPartition, token: Int) async -> (GRPCClientConnection, GroupReader)? {
        guard let state = owned[partition], state.token == token, !state.revoking, !stopping, let memberId,
              let connection = try? await currentConnection(),
              owned[partition]?.token == token
        else { return nil }
        return (connection, GroupReader(group: configuration.group, memberId: memberId, generation: generation))
    }

    func owns(_ partition: TopicPartition, token: Int) -> Bool {
        owned[partition]?.token == token && owned[partition]?.revoking == false && !stopping
    }
}

/// Whether a join attempt's deadline passed (set by its timer, read by the session).
private final class JoinExpiry: Sendable {
    private let state = Mutex(false)
    var fired: Bool { state.withLock { $0 } }
    func fire() { state.withLock { $0 = true } }
}
