public import SluiceAPI
import Synchronization

/// Committing, fetching, resetting and deleting offsets.
extension GroupCoordinator {
    /// The answer to a commit, and what to wait for before sending it.
    public struct CommitOutcome: Sendable {
        public var results: [OffsetCommitResult]
        /// The journal token of the appended commits; nil when nothing was appended.
        public var durabilityToken: Int64?
    }

    /// Validates and records a commit. Whole-request problems throw (unknown group or
    /// member: `groupNotFound`; stale generation or an admin commit while the group has
    /// members: `groupStateConflict`; bad metadata or generation: `invalidRequest`);
    /// per-partition problems are results, and the other partitions are still committed.
    ///
    /// A member's commit is fenced twice: the generation must lie within the member's
    /// incarnation (from its join up to the current generation), and each partition must
    /// be held by the member since a generation at or before the one the commit names.
    /// So a commit racing a rebalance still lands for partitions the member kept, while a
    /// commit from before a partition came back to the member, or from an expired or
    /// replaced member, never overwrites a newer owner's offset.
    public func commit(_ request: CommitOffsetsRequest) throws(BrokerError) -> CommitOutcome {
        try GroupName.validate(request.group)
        try requireOffsets()
        for entry in request.offsets where entry.metadata.utf8.count > settings.maxMetadataBytes {
            throw BrokerError(
                .invalidRequest,
                "metadata for \(BrokerError.quoting(entry.topic))/\(entry.partition) is \(entry.metadata.utf8.count) bytes; the limit is \(settings.maxMetadataBytes)")
        }
        let now = clock.monotonicMilliseconds()
        let commitTime = clock.wallMilliseconds()
        return try state.withLock { s throws(BrokerError) -> CommitOutcome in
            var owner: GroupMember?
            let group = s.groups[request.group]
            if request.memberId.isEmpty {
                guard request.generation == -1 else {
                    throw BrokerError(.invalidRequest, "an admin commit (empty member id) must give generation -1, not \(request.generation)")
                }
                if let group, !group.members.isEmpty {
                    throw BrokerError(
                        .groupStateConflict,
                        "group \"\(request.group)\" has \(group.members.count) member(s); only they may commit while it does")
                }
            } else {
                guard let group else { throw BrokerError(.groupNotFound, "group \(BrokerError.quoting(request.group)) does not exist") }
                guard let member = group.members[request.memberId] else {
                    throw BrokerError(
                        .groupNotFound,
                        "member \(BrokerError.quoting(request.memberId)) is not in group \"\(request.group)\" (its session may have expired); rejoin")
                }
                guard request.generation >= member.joinedGeneration, request.generation <= group.generation else {
                    throw BrokerError(
                        .groupStateConflict, "generation \(request.generation) is stale (current \(group.generation)); rejoin")
                }
                owner = member
                s.groups[request.group]?.members[request.memberId]?.lastHeardMs = now
            }
            let holders = group?.holders ?? [:]
            var results: [OffsetCommitResult] = []
            var changes: [OffsetChange] = []
            for entry in request.offsets {
                let partition = GroupPartition(entry.topic, entry.partition)
                var result = OffsetCommitResult(topic: entry.topic, partition: entry.partition)
                if let problem = check(entry, partition: partition, owner: owner, generation: request.generation, holders: holders) {
                    result.error = problem.code
                    result.errorMessage = problem.message
                } else {
                    changes.append(.commit(
                        group: request.group, partition: partition,
                        value: CommittedOffsetValue(offset: entry.offset, metadata: entry.metadata, commitTimeMs: commitTime)))
                }
                results.append(result)
            }
            let token = try record(changes, in: &s)
            if s.groups[request.group] == nil && s.offsets.hasOffsets(request.group) {
                s.groups[request.group] = ConsumerGroup(name: request.group)
            }
            return CommitOutcome(results: results, durabilityToken: token)
        }
    }

    /// Waits until a commit's changes are durable.
    public func waitUntilDurable(_ token: Int64?) async throws(BrokerError) {
        guard let token, let journal = state.withLock({ $0.journal }) else { return }
        try await journal.waitUntilDurable(token)
    }

    private func check(
        _ entry: OffsetCommit, partition: GroupPartition, owner: GroupMember?, generation: Int32,
        holders: [GroupPartition: String]
    ) -> (code: ErrorCode, message: String)? {
        func refused(_ error: BrokerError) -> (code: ErrorCode, message: String) { (ErrorCode(error.code), error.message) }
        do throws(BrokerError) {
            try requireExists(partition)
        } catch {
            return refused(error)
        }
        if let owner {
            guard let granted = owner.held[partition] else {
                let other = holders[partition].map { "member \"\($0)\"" } ?? "no member"
                return (.notAssigned, "\(partition) is not assigned to this member (\(other) holds it)")
            }
            guard granted <= generation else {
                return (.illegalGeneration, "\(partition) was assigned to this member in generation \(granted), after generation \(generation) of this commit")
            }
        }
        let offsets: GroupPartitionOffsets
        do throws(BrokerError) {
            offsets = try openOffsets(partition)
        } catch {
            return refused(error)
        }
        guard entry.offset >= 0, entry.offset <= offsets.logEndOffset else {
            return (.offsetOutOfRange, "offset \(entry.offset) is outside 0...\(offsets.logEndOffset) (the log end) of \(partition)")
        }
        return nil
    }

    // Partition lookups, in the broker's one wording of each failure (BrokerError+Lookups.swift).

    /// The partition count of a topic a client names; internal topics are not the client's.
    private func partitionCount(ofClientTopic topic: String) throws(BrokerError) -> UInt32 {
        guard let count = topics.partitionCount(ofTopic: topic), !InternalTopics.isInternal(topic) else {
            throw .topicNotFound(topic)
        }
        return count
    }

    private func requireExists(_ partition: GroupPartition) throws(BrokerError) {
        let count = try partitionCount(ofClientTopic: partition.topic)
        guard partition.partition < count else {
            throw .unknownPartition(partition.partition, topic: partition.topic, partitionCount: count)
        }
    }

    /// The offsets of an existing partition, or why its log is not open.
    private func openOffsets(_ partition: GroupPartition) throws(BrokerError) -> GroupPartitionOffsets {
        if let offsets = topics.offsets(of: partition) { return offsets }
        if let reason = topics.offlineReason(of: partition) {
            throw .offline(partition: partition.partition, topic: partition.topic, reason: reason)
        }
        throw .notOpenYet(partition: partition.partition, topic: partition.topic)
    }

    /// Appends changes to the journal and then applies them in memory; compacts the
    /// journal if it grew enough. Nil when there was nothing to append.
    func record(_ changes: [OffsetChange], in s: inout CoordinatorState) throws(BrokerError) -> Int64? {
        guard !changes.isEmpty else { return nil }
        let token = try s.journal?.append(changes)
        for change in changes { s.offsets.apply(change) }
        if let journal = s.journal {
            let offsets = s.offsets
            journal.compactIfNeeded { offsets.live }
        }
        return token
    }

    /// Committed offsets of a group: the listed partitions (-1 where none), or all.
    public func fetchOffsets(group: String, partitions: [GroupPartition]) throws(BrokerError) -> [CommittedOffset] {
        try requireOffsets()
        return try state.withLock { s throws(BrokerError) -> [CommittedOffset] in
            guard s.groups[group] != nil || s.offsets.hasOffsets(group) else {
                throw BrokerError(.groupNotFound, "group \(BrokerError.quoting(group)) does not exist")
            }
            let committed = s.offsets.committed(group)
            let wanted = partitions.isEmpty ? committed.keys.sorted() : partitions
            return wanted.map { partition in
                let value = committed[partition]
                return CommittedOffset(
                    topic: partition.topic, partition: partition.partition, offset: value?.offset ?? -1,
                    metadata: value?.metadata ?? "", commitTimeMs: value?.commitTimeMs ?? 0)
            }
        }
    }

    /// Where a reset moves a partition's committed offset.
    public enum ResetTarget: Sendable, Equatable {
        case earliest
        case latest
        case offset(Int64)
        case timestamp(Int64)
        case shift(Int64)
    }

    /// Sets a group's committed offsets for a topic (all partitions, or those listed) to
    /// the target, clamped to each partition's log start...high watermark. Only while the
    /// group has no members. `dryRun` answers without changing anything.
    public func resetOffsets(
        group name: String, topic: String, partitions requested: [UInt32], to target: ResetTarget, dryRun: Bool
    ) throws(BrokerError) -> ([CommittedOffset], durabilityToken: Int64?) {
        try GroupName.validate(name)
        try requireOffsets()
        let commitTime = clock.wallMilliseconds()
        return try state.withLock { s throws(BrokerError) -> ([CommittedOffset], durabilityToken: Int64?) in
            guard let group = s.groups[name] ?? (s.offsets.hasOffsets(name) ? ConsumerGroup(name: name) : nil) else {
                throw BrokerError(.groupNotFound, "group \(BrokerError.quoting(name)) does not exist")
            }
            guard group.members.isEmpty else {
                throw BrokerError(
                    .groupStateConflict,
                    "group \"\(name)\" has \(group.members.count) member(s); stop them before resetting its offsets")
            }
            let count = try partitionCount(ofClientTopic: topic)
            let indexes = requested.isEmpty ? Array(0..<count) : requested
            if let bad = indexes.first(where: { $0 >= count }) {
                throw .unknownPartition(bad, topic: topic, partitionCount: count)
            }
            let committed = s.offsets.committed(name)
            var changes: [OffsetChange] = []
            var answer: [CommittedOffset] = []
            for index in Set(indexes).sorted() {
                let partition = GroupPartition(topic, index)
                let offsets = try openOffsets(partition)
                let low = offsets.logStartOffset
                let high = offsets.highWatermark
                let wanted: Int64 = switch target {
                case .earliest: low
                case .latest: high
                case .offset(let offset): offset
                case .timestamp(let time): topics.offset(of: partition, atOrAfterTimestamp: time) ?? high
                case .shift(let delta): (committed[partition]?.offset ?? low).addingReportingOverflow(delta).partialValue
                }
                let value = CommittedOffsetValue(
                    offset: min(max(wanted, low), high), metadata: committed[partition]?.metadata ?? "", commitTimeMs: commitTime)
                changes.append(.commit(group: name, partition: partition, value: value))
                answer.append(CommittedOffset(
                    topic: topic, partition: index, offset: value.offset, metadata: value.metadata, commitTimeMs: commitTime))
            }
            guard !dryRun else { return (answer, nil) }
            let token = try record(changes, in: &s)
            s.groups[name] = group
            return (answer, token)
        }
    }

    /// Deletes a group's offsets (tombstones in the journal) and the group. Only while it
    /// has no members.
    public func deleteGroup(_ name: String) throws(BrokerError) -> Int64? {
        try requireOffsets()
        return try state.withLock { s throws(BrokerError) -> Int64? in
            let group = s.groups[name]
            guard group != nil || s.offsets.hasOffsets(name) else {
                throw BrokerError(.groupNotFound, "group \(BrokerError.quoting(name)) does not exist")
            }
            if let group, !group.members.isEmpty {
                throw BrokerError(
                    .groupStateConflict, "group \"\(name)\" has \(group.members.count) member(s); it can be deleted once empty")
            }
            let tombstones = s.offsets.committed(name).keys.sorted().map { OffsetChange.tombstone(group: name, partition: $0) }
            let token = try record(tombstones, in: &s)
            s.groups.removeValue(forKey: name)
            return token
        }
    }
}
