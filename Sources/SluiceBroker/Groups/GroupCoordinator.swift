public import SluiceAPI
import Synchronization

/// The consumer-group coordinator: membership, cooperative rebalancing, committed
/// offsets, lag and group admin, as one state machine under one lock.
///
/// Nothing here touches a socket: a member is a `MemberChannel` the coordinator pushes
/// messages into, time comes from a `GroupClock`, topics from a `GroupTopicSource` and
/// durability from an `OffsetJournal`, so tests drive rebalances and session expiry
/// step by step. The service layer (GroupsService) turns a Join stream into calls here
/// and a channel's messages into writes; the broker runs `expireSilentMembers` on a timer.
///
/// Every operation is short and never waits while holding the lock (channel pushes do not
/// block; an offsets append is a page-cache write, its fdatasync awaited after the lock).
public final class GroupCoordinator: Sendable {
    public let settings: GroupSettings
    let clock: any GroupClock
    let topics: any GroupTopicSource
    let state: Mutex<CoordinatorState>
    /// Set when the journal comes from an opener that may fail (the broker's offsets
    /// log); `GroupCoordinator+Availability.swift`.
    let journalOpening: Mutex<JournalOpening?>
    /// True once committed offsets are loaded; every group call checks it first.
    let offsetsLoaded: Atomic<Bool>

    struct CoordinatorState {
        var groups: [String: ConsumerGroup] = [:]
        var offsets: OffsetStore
        /// Where offset changes are recorded; nil for a coordinator without durability
        /// (tests) and while an opener has not succeeded yet.
        var journal: (any OffsetJournal)?
        var membersCreated: UInt64 = 0
        var shutDown = false
        /// Group readers (Subscribe with group_reader) to wake when a group changes.
        var readers: [String: [UInt64: AsyncStream<Void>.Continuation]] = [:]
    }

    /// What a member asks for when it joins (the service fills in `host`).
    public struct JoinRequest: Sendable {
        public var group: String
        public var topics: [String]
        public var instanceID: String
        public var sessionTimeoutMs: UInt32
        public var strategy: AssignmentStrategy
        public var clientID: String
        public var host: String

        public init(_ join: JoinGroup, host: String) {
            group = join.group
            topics = join.topics
            instanceID = join.instanceId
            sessionTimeoutMs = join.sessionTimeoutMs
            strategy = join.strategy
            clientID = join.clientId
            self.host = host
        }
    }

    /// Loads the committed offsets from `journal`.
    public init(
        settings: GroupSettings = GroupSettings(), clock: any GroupClock = SystemGroupClock(),
        topics: any GroupTopicSource, journal: (any OffsetJournal)?
    ) throws(BrokerError) {
        precondition(settings.memberQueueCapacity >= 3, "a member's queue must hold Joined, Assignment and Revocation")
        precondition(settings.sessionTimeoutRangeMs.contains(settings.defaultSessionTimeoutMs), "the default session timeout must be allowed")
        self.settings = settings
        self.clock = clock
        self.topics = topics
        let loaded = try journal?.load() ?? [:]
        state = Mutex(CoordinatorState(offsets: OffsetStore(loaded), journal: journal))
        journalOpening = Mutex(nil)
        offsetsLoaded = Atomic(true)
    }

    /// Opens the journal with `openJournal` now, and if that fails keeps serving
    /// everything but groups: group calls throw `.offline` with the reason, and a later
    /// group call tries the opener again (with backoff), so groups come back once the
    /// cause is gone (space freed, a file repaired) without a restart.
    public init(
        settings: GroupSettings = GroupSettings(), clock: any GroupClock = SystemGroupClock(),
        topics: any GroupTopicSource, openJournal: @escaping OffsetJournalOpener
    ) {
        precondition(settings.memberQueueCapacity >= 3, "a member's queue must hold Joined, Assignment and Revocation")
        precondition(settings.sessionTimeoutRangeMs.contains(settings.defaultSessionTimeoutMs), "the default session timeout must be allowed")
        self.settings = settings
        self.clock = clock
        self.topics = topics
        state = Mutex(CoordinatorState(offsets: OffsetStore()))
        journalOpening = Mutex(JournalOpening(
            open: openJournal, failure: "not opened yet", nextAttemptMs: .min, backoffMs: settings.offsetsLogRetryMs))
        offsetsLoaded = Atomic(false)
        _ = try? requireOffsets()
    }

    // MARK: Membership

    /// A member joins: validated, added (or a static member's instance taken over), and
    /// its channel sent `Joined` followed by its assignment. Returns the member id.
    @discardableResult
    public func join(_ request: JoinRequest, channel: MemberChannel) throws(BrokerError) -> String {
        precondition(channel.capacity >= 3, "a member channel must hold Joined, Assignment and Revocation")
        try GroupName.validate(request.group)
        try requireOffsets()
        let topicNames = try validateTopics(request.topics)
        let timeout = request.sessionTimeoutMs == 0 ? settings.defaultSessionTimeoutMs : request.sessionTimeoutMs
        guard settings.sessionTimeoutRangeMs.contains(timeout) else {
            throw BrokerError(
                .invalidRequest,
                "session_timeout_ms \(timeout) is outside \(settings.sessionTimeoutRangeMs.lowerBound)...\(settings.sessionTimeoutRangeMs.upperBound)")
        }
        let strategy: AssignmentStrategy
        switch request.strategy {
        case .unspecified, .sticky: strategy = .sticky
        case .range, .roundRobin: strategy = request.strategy
        case .unrecognized(let number): throw BrokerError(.invalidRequest, "unknown assignment strategy \(number)")
        }
        guard request.instanceID.utf8.count <= TopicName.maxLength, request.clientID.utf8.count <= BrokerLimits.defaults.maxClientIDBytes.value else {
            throw BrokerError(.invalidRequest, "instance_id is limited to \(TopicName.maxLength) bytes and client_id to \(BrokerLimits.defaults.maxClientIDBytes.value)")
        }
        let now = clock.monotonicMilliseconds()
        return try state.withLock { s throws(BrokerError) -> String in
            guard !s.shutDown else { throw BrokerError(.shuttingDown, "the broker is shutting down; join again once it is back") }
            var group = s.groups[request.group] ?? ConsumerGroup(name: request.group)
            group.nowMs = now
            if !group.members.isEmpty && group.strategy != strategy {
                throw BrokerError(
                    .invalidRequest,
                    "group \"\(request.group)\" uses strategy \(group.strategy.name); this member asked for \(strategy.name)")
            }
            s.membersCreated += 1
            let memberID = Self.memberID(request, number: s.membersCreated)
            let joined = CoordinatorMessage(kind: .joined(Joined(
                memberId: memberID, sessionTimeoutMs: timeout,
                heartbeatIntervalMs: settings.heartbeatIntervalMs(sessionTimeoutMs: timeout), strategy: strategy)))
            var member = GroupMember(
                id: memberID, instanceID: request.instanceID.isEmpty ? nil : request.instanceID, clientID: request.clientID,
                host: request.host, topics: topicNames, sessionTimeoutMs: Int64(timeout), lastHeardMs: now,
                joinedGeneration: group.generation + 1, channel: channel)
            channel.push(joined)
            if let instance = member.instanceID, let previousID = group.instances[instance],
               let previous = group.members.removeValue(forKey: previousID) {
                // Static membership: the instance continues under a new member id with
                // the partitions, generation and grants of its predecessor, whose stream
                // (if still open) is fenced.
                previous.channel?.end(.expelled("fenced: another member joined with instance id \"\(instance)\""))
                member.joinedGeneration = previous.joinedGeneration
                member.held = previous.held
                member.pendingRevocation = previous.pendingRevocation
                member.revocationPendingSinceMs = previous.revocationPendingSinceMs
                group.members[memberID] = member
                group.instances[instance] = memberID
                group.target[memberID] = group.target.removeValue(forKey: previousID)
                if previous.topics == topicNames {
                    group.announce(memberID, revocations: true)
                } else {
                    group.rebalance(topics: topics)
                }
            } else {
                if group.members.isEmpty { group.strategy = strategy }
                group.members[memberID] = member
                if let instance = member.instanceID { group.instances[instance] = memberID }
                group.rebalance(topics: topics)
            }
            group.settle(topics: topics)
            s.groups[request.group] = group
            s.ringReaders(request.group)
            return memberID
        }
    }

    /// Any message from a member keeps its session alive.
    public func heard(group: String, member: String) {
        let now = clock.monotonicMilliseconds()
        state.withLock { s in s.groups[group]?.members[member]?.lastHeardMs = now }
    }

    /// The member gave up partitions it was asked to revoke.
    public func revokeAck(group name: String, member: String, partitions: [GroupPartition]) {
        let now = clock.monotonicMilliseconds()
        state.withLock { s in
            guard var group = s.groups[name], group.members[member] != nil else { return }
            group.nowMs = now
            group.members[member]?.lastHeardMs = now
            group.release(partitions, from: member)
            group.settle(topics: topics)
            s.groups[name] = group
            s.ringReaders(name)
        }
    }

    /// A graceful leave (LeaveGroup or half-close): partitions are reassigned at once,
    /// a static member's too. Its stream ends OK after what is queued.
    public func leave(group name: String, member: String) {
        let now = clock.monotonicMilliseconds()
        state.withLock { s in
            guard var group = s.groups[name], group.members[member] != nil else { return }
            group.nowMs = now
            group.remove(member, ending: .left, topics: topics)
            group.settle(topics: topics)
            s.store(group)
            s.ringReaders(name)
        }
    }

    /// The member's stream broke (reset, connection lost) without a leave. A dynamic
    /// member is gone: it cannot come back under the same id. A static member keeps its
    /// partitions until its session times out, waiting for its instance to rejoin.
    public func streamClosed(group name: String, member: String, channel: MemberChannel) {
        let now = clock.monotonicMilliseconds()
        state.withLock { s in
            guard var group = s.groups[name], let current = group.members[member], current.channel === channel else { return }
            group.nowMs = now
            if current.instanceID != nil {
                group.members[member]?.channel = nil
                s.groups[name] = group
                return
            }
            group.remove(member, ending: nil, topics: topics)
            group.settle(topics: topics)
            s.store(group)
            s.ringReaders(name)
        }
    }

    /// Expires every member not heard from within its session timeout, and every member
    /// that left a revocation unacknowledged for longer than that: its stream ends with
    /// FAILED_PRECONDITION and its partitions are reassigned. Returns how many.
    @discardableResult
    public func expireSilentMembers() -> Int {
        let now = clock.monotonicMilliseconds()
        return state.withLock { s in
            var expired = 0
            for name in s.groups.keys.sorted() {
                guard var group = s.groups[name] else { continue }
                group.nowMs = now
                let silent = group.members.values.filter { now - $0.lastHeardMs > $0.sessionTimeoutMs }.map(\.id).sorted()
                let stubborn = group.members.values.filter { member in
                    member.revocationPendingSinceMs.map { now - $0 > member.sessionTimeoutMs } ?? false
                }.map(\.id).sorted()
                guard !silent.isEmpty || !stubborn.isEmpty else { continue }
                for id in silent {
                    let timeout = group.members[id]?.sessionTimeoutMs ?? 0
                    group.remove(
                        id, ending: .expelled("session expired: nothing heard for more than \(timeout) ms; rejoin"),
                        topics: topics)
                    expired += 1
                }
                for id in stubborn where group.members[id] != nil {
                    let timeout = group.members[id]?.sessionTimeoutMs ?? 0
                    group.remove(
                        id, ending: .expelled("a revocation was not acknowledged within the session timeout (\(timeout) ms); rejoin"),
                        topics: topics)
                    expired += 1
                }
                group.settle(topics: topics)
                s.store(group)
                s.ringReaders(name)
            }
            return expired
        }
    }

    /// Ends every member stream (UNAVAILABLE) and refuses new joins.
    public func shutdown() {
        state.withLock { s in
            s.shutDown = true
            for group in s.groups.values {
                for member in group.members.values { member.channel?.end(.shutdown) }
            }
            for readers in s.readers.values { for reader in readers.values { reader.yield() } }
        }
    }

    // MARK: Helpers

    private func validateTopics(_ names: [String]) throws(BrokerError) -> Set<String> {
        guard !names.isEmpty else { throw BrokerError(.invalidRequest, "the join names no topics; a member reads at least one") }
        for name in names {
            if InternalTopics.isInternal(name) {
                throw BrokerError(.invalidRequest, "topic \(BrokerError.quoting(name)) is internal; groups cannot read it")
            }
            guard topics.partitionCount(ofTopic: name) != nil else {
                throw BrokerError(.topicNotFound, "topic \(BrokerError.quoting(name)) does not exist")
            }
        }
        return Set(names)
    }

    /// "<instance or client id or 'member'>-<number>-<random>": readable in describe,
    /// unique per incarnation, not guessable by another client.
    private static func memberID(_ request: JoinRequest, number: UInt64) -> String {
        let base = request.instanceID.isEmpty ? request.clientID : request.instanceID
        let cleaned = String(base.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }.prefix(64).map(Character.init))
        let random = String(UInt64.random(in: 0...UInt64.max), radix: 16)
        return "\(cleaned.isEmpty ? "member" : cleaned)-\(number)-\(random)"
    }
}

extension GroupCoordinator.CoordinatorState {
    /// Keeps a group while it has members or offsets; forgets it otherwise.
    mutating func store(_ group: ConsumerGroup) {
        if group.members.isEmpty && !offsets.hasOffsets(group.name) {
            groups.removeValue(forKey: group.name)
        } else {
            groups[group.name] = group
        }
    }

    func ringReaders(_ group: String) {
        for reader in readers[group]?.values ?? [:].values { reader.yield() }
    }
}

extension AssignmentStrategy {
    var name: String {
        switch self {
        case .unspecified, .sticky: "sticky"
        case .range: "range"
        case .roundRobin: "round-robin"
        case .unrecognized(let number): "unknown (\(number))"
        }
    }
}
