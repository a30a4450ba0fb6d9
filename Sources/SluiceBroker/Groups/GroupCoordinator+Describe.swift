public import SluiceAPI
import Synchronization

/// Listing and describing groups, with lag.
extension GroupCoordinator {
    /// Every group with members or committed offsets, sorted by name. Callers check
    /// `requireOffsets()` first: without the offsets the list would be silently short.
    public func listGroups() -> [GroupSummary] {
        state.withLock { s in
            let names = Set(s.groups.keys).union(s.offsets.offsets.keys)
            return names.sorted().map { name in
                let group = s.groups[name] ?? ConsumerGroup(name: name)
                let topics = group.subscribedTopics.union(s.offsets.committed(name).keys.map(\.topic))
                return GroupSummary(
                    group: name, state: group.state, generation: group.generation,
                    memberCount: UInt32(group.members.count), topics: topics.sorted())
            }
        }
    }

    /// A group's members, assignment and per-partition lag. The partitions described are
    /// those of the topics members read plus those the group has offsets for.
    public func describeGroup(_ name: String) throws(BrokerError) -> GroupDescription {
        try requireOffsets()
        return try state.withLock { s throws(BrokerError) -> GroupDescription in
            guard s.groups[name] != nil || s.offsets.hasOffsets(name) else {
                throw BrokerError(.groupNotFound, "group \(BrokerError.quoting(name)) does not exist")
            }
            let group = s.groups[name] ?? ConsumerGroup(name: name)
            let committed = s.offsets.committed(name)
            let holders = group.holders
            var partitions = Set(committed.keys)
            for topic in group.subscribedTopics {
                for index in 0..<(topics.partitionCount(ofTopic: topic) ?? 0) { partitions.insert(GroupPartition(topic, index)) }
            }
            let lags = partitions.sorted().map { partition -> PartitionLag in
                let offsets = topics.offsets(of: partition)
                let committedOffset = committed[partition]?.offset ?? -1
                let highWatermark = offsets?.highWatermark ?? 0
                let base = committedOffset >= 0 ? committedOffset : (offsets?.logStartOffset ?? 0)
                // An offline partition's lag is unknown, not 0: say so, and why.
                let offlineReason = offsets == nil ? topics.offlineReason(of: partition) : nil
                return PartitionLag(
                    topic: partition.topic, partition: partition.partition, committedOffset: committedOffset,
                    logEndOffset: offsets?.logEndOffset ?? 0, highWatermark: highWatermark,
                    lag: offsets == nil ? 0 : max(0, highWatermark - base), owner: holders[partition] ?? "",
                    offline: offlineReason != nil, offlineReason: offlineReason ?? "")
            }
            let members = group.members.values.sorted { $0.id < $1.id }.map { member in
                GroupMemberDescription(
                    memberId: member.id, instanceId: member.instanceID ?? "", clientId: member.clientID, host: member.host,
                    assigned: member.reading.byTopic, pendingRevocation: member.pendingRevocation.byTopic)
            }
            return GroupDescription(
                group: name, state: group.state, generation: group.generation, strategy: group.strategy,
                members: members, partitions: lags)
        }
    }
}

/// Group readers: Subscribe streams opened by a member for partitions it holds.
extension GroupCoordinator {
    /// Throws `groupStateConflict` unless `member` of `group` holds every partition
    /// under a grant no newer than `generation` (the same fence as commits).
    public func checkReader(group name: String, member: String, generation: Int32, partitions: [GroupPartition]) throws(BrokerError) {
        try state.withLock { s throws(BrokerError) in
            guard let group = s.groups[name] else { throw BrokerError(.groupNotFound, "group \(BrokerError.quoting(name)) does not exist") }
            guard let holder = group.members[member] else {
                throw BrokerError(
                    .groupStateConflict, "member \(BrokerError.quoting(member)) is not in group \"\(name)\" (its session may have expired); rejoin")
            }
            guard generation >= holder.joinedGeneration, generation <= group.generation else {
                throw BrokerError(.groupStateConflict, "generation \(generation) is stale (current \(group.generation)); rejoin")
            }
            for partition in partitions {
                guard let granted = holder.held[partition], granted <= generation else {
                    throw BrokerError(
                        .groupStateConflict,
                        "\(partition) is not assigned to member \"\(member)\" in generation \(generation) of group \"\(name)\"")
                }
            }
        }
    }

    /// Registers a doorbell rung whenever the group's membership or holdings change.
    public func watchGroup(_ name: String, id: UInt64, doorbell: AsyncStream<Void>.Continuation) {
        state.withLock { s in s.readers[name, default: [:]][id] = doorbell }
    }

    public func unwatchGroup(_ name: String, id: UInt64) {
        state.withLock { s in
            s.readers[name]?.removeValue(forKey: id)
            if s.readers[name]?.isEmpty == true { s.readers.removeValue(forKey: name) }
        }
    }
}
