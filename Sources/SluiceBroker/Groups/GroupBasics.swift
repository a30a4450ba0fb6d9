#if canImport(Glibc)
import Glibc
#endif
public import SluiceAPI

/// One partition of one topic, as groups assign and commit them.
public struct GroupPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: UInt32

    public init(_ topic: String, _ partition: UInt32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (lhs: GroupPartition, rhs: GroupPartition) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    public var description: String { "\(topic)/\(partition)" }
}

extension Collection where Element == GroupPartition {
    /// As the protocol lists partitions: grouped by topic, both sorted.
    var byTopic: [TopicPartitions] {
        var grouped: [String: [UInt32]] = [:]
        for tp in self { grouped[tp.topic, default: []].append(tp.partition) }
        return grouped.keys.sorted().map { TopicPartitions(topic: $0, partitions: grouped[$0, default: []].sorted()) }
    }
}

extension Array where Element == TopicPartitions {
    /// One entry per partition, in the order listed.
    public var groupPartitions: [GroupPartition] { flatMap { entry in entry.partitions.map { GroupPartition(entry.topic, $0) } } }
}

/// Settings of the group coordinator. Times in milliseconds. The defaults, and why each is
/// what it is, are `BrokerLimits`'s (docs/limits.md).
public struct GroupSettings: Sendable {
    /// A member's session timeout when its join says 0.
    public var defaultSessionTimeoutMs: UInt32 = BrokerLimits.defaults.defaultSessionTimeoutMs.value
    /// The session timeouts a join may ask for.
    public var sessionTimeoutRangeMs: ClosedRange<UInt32> = BrokerLimits.defaults.sessionTimeoutRangeMs.value
    /// Messages waiting on one member's stream. A member that lets this many pile up is
    /// not reading: it is expired rather than buffered for.
    public var memberQueueCapacity: Int = BrokerLimits.defaults.memberQueueCapacity.value
    /// How often silent members are looked for (the expiry is late by at most this).
    public var expiryCheckInterval: Duration = BrokerLimits.defaults.expiryCheckInterval.value
    /// The offsets log's segment size (`segment.bytes` of `__consumer_offsets`).
    public var offsetsSegmentBytes: Int64 = BrokerLimits.defaults.offsetsSegmentBytes.value
    /// The offsets log is compacted (a snapshot of every live offset, then the segments
    /// wholly before it dropped) once this many bytes were written since the last
    /// snapshot on top of the snapshot's own size.
    public var offsetsCompactionBytes: Int64 = BrokerLimits.defaults.offsetsCompactionBytes.value
    /// Largest metadata string kept with a committed offset.
    public var maxMetadataBytes: Int = BrokerLimits.defaults.maxMetadataBytes.value
    /// When the offsets log could not be opened: the wait before a group call tries
    /// again, doubling per failure up to `offsetsLogMaxRetryMs` (calls in between answer
    /// UNAVAILABLE at once, so a flood of them does not hammer a failing disk).
    public var offsetsLogRetryMs: Int64 = BrokerLimits.defaults.offsetsLogRetryMs.value
    public var offsetsLogMaxRetryMs: Int64 = BrokerLimits.defaults.offsetsLogMaxRetryMs.value

    public init() {}

    /// The heartbeat interval advised to a member: a third of its session timeout, so two
    /// heartbeats may be lost before it expires.
    func heartbeatIntervalMs(sessionTimeoutMs: UInt32) -> UInt32 { max(1, sessionTimeoutMs / 3) }
}

/// Time as the coordinator sees it, injectable so the state machine is tested without
/// waiting: a monotonic clock for sessions, a wall clock for commit times.
public protocol GroupClock: Sendable {
    /// Milliseconds on a clock that never goes back.
    func monotonicMilliseconds() -> Int64
    /// Milliseconds since the Unix epoch.
    func wallMilliseconds() -> Int64
}

public struct SystemGroupClock: GroupClock {
    private let origin = ContinuousClock.now

    public init() {}

    public func monotonicMilliseconds() -> Int64 {
        let elapsed = ContinuousClock.now - origin
        return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    }

    public func wallMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}

/// What the coordinator needs to know about topics: their partition counts and offsets.
/// The broker answers from its registry and logs; tests answer from a table.
public protocol GroupTopicSource: Sendable {
    /// Nil when the topic does not exist.
    func partitionCount(ofTopic topic: String) -> UInt32?
    /// Nil when the partition is not open.
    func offsets(of partition: GroupPartition) -> GroupPartitionOffsets?
    /// Why the partition's log could not be opened; nil when it is open (or unknown).
    func offlineReason(of partition: GroupPartition) -> String?
    /// The first offset whose timestamp is at or after `timestampMs`; nil for none.
    func offset(of partition: GroupPartition, atOrAfterTimestamp timestampMs: Int64) -> Int64?
}

extension GroupTopicSource {
    /// Sources without logs that can fail (test tables) have no offline partitions.
    public func offlineReason(of partition: GroupPartition) -> String? { nil }
}

public struct GroupPartitionOffsets: Sendable, Equatable {
    public var logStartOffset: Int64
    public var logEndOffset: Int64
    public var highWatermark: Int64
}

/// Group naming rules: those of topics (1-249 characters of [a-zA-Z0-9._-]), so a group
/// name never needs escaping in the offsets log's keys ("group/topic/partition").
public enum GroupName {
    public static func validate(_ name: String) throws(BrokerError) {
        try TopicName.checkShared(name, kind: "group", code: .invalidRequest)
    }
}
