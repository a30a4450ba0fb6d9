public import SluiceAPI
public import SluiceWire

/// When a group member commits the offsets of the records it reads (docs/consumer-groups.md).
public enum DeliverySemantics: Sendable, Equatable {
    /// The batch's next offset is committed before its records reach the handler; a record
    /// whose commit is refused is never handed out. A crash loses records (the rest of the
    /// batch being processed), never repeats them.
    case atMostOnce
    /// Offsets are committed after the handler returned: `.auto` after every batch,
    /// `.manual` only when the application calls `GroupConsumer.commit()`. A crash repeats
    /// the records processed since the last commit, never loses any.
    case atLeastOnce(commit: CommitMode)

    public enum CommitMode: Sendable, Equatable {
        case auto
        case manual
    }
}

/// Where a newly assigned partition starts when the group has no committed offset for it,
/// or the committed offset is no longer in the log (below the log start or past its end).
public enum OffsetResetPolicy: String, Sendable, Equatable, CaseIterable {
    case earliest
    case latest
    /// `GroupConsumer.run` throws `GroupConsumerError.noValidOffset`.
    case error
}

/// A topic partition as groups name it.
public struct TopicPartition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int

    public init(topic: String, partition: Int) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    public var description: String { "\(topic)/\(partition)" }

    /// Groups the partitions by topic, sorted, as the protocol carries them.
    static func protobuf(_ partitions: some Sequence<TopicPartition>) -> [TopicPartitions] {
        Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { topic, members in
            TopicPartitions(topic: topic, partitions: members.map { UInt32($0.partition) }.sorted())
        }
    }

    static func from(_ lists: [TopicPartitions]) -> [TopicPartition] {
        lists.flatMap { list in list.partitions.map { TopicPartition(topic: list.topic, partition: Int($0)) } }
    }
}

public struct GroupConsumerConfiguration: Sendable {
    /// 1-249 characters of [a-zA-Z0-9._-].
    public var group: String
    public var topics: [String]
    public var delivery: DeliverySemantics = .atLeastOnce(commit: .auto)
    public var resetPolicy: OffsetResetPolicy = .earliest
    /// Static membership: a restart within the session timeout gets the same partitions
    /// back without a rebalance. nil for a dynamic member.
    public var instanceId: String?
    /// nil is the broker's default (10 s); the broker accepts 100 ms to 300 s.
    public var sessionTimeout: Duration?
    public var strategy: AssignmentStrategy = .sticky
    /// Shown by DescribeGroup.
    public var clientId = "sluice-swift"
    /// Push batching and response size of each partition's Subscribe stream.
    public var subscription = ConsumerConfiguration()
    /// Batches read ahead of the handler, all partitions together; a partition's reader
    /// waits while the buffer is full, and HTTP/2 flow control then slows the broker.
    public var maxBufferedBatches = 16
    /// Failed attempts in a row (connect, join, subscribe) before `run` gives up.
    public var maxReconnectAttempts = 8
    /// Pause before a retry; doubles per attempt up to `maxReconnectBackoff`.
    public var reconnectBackoff: Duration = .milliseconds(100)
    public var maxReconnectBackoff: Duration = .seconds(5)
    /// Bound on each unary RPC (CommitOffsets, FetchOffsets): `commit()` throws
    /// `commitFailed` with DEADLINE_EXCEEDED past it.
    public var requestTimeout: Duration = .seconds(30)
    /// Bound on one attempt to connect: TCP connect plus the broker's HTTP/2 SETTINGS. An
    /// attempt past it counts towards `maxReconnectAttempts`.
    public var connectTimeout: Duration = .seconds(10)
    /// Bound from sending JoinGroup to the coordinator's Joined. An attempt past it is given
    /// up (DEADLINE_EXCEEDED) and counts towards `maxReconnectAttempts`, so `run` against a
    /// coordinator that never answers throws `reconnectsExhausted` instead of waiting for ever.
    public var joinTimeout: Duration = .seconds(30)
    /// Bound on leaving the group when `run` ends: the wait for the coordinator to end the
    /// membership stream after LeaveGroup. Past it the connection is closed anyway (the
    /// session then expires on the broker instead).
    public var leaveTimeout: Duration = .seconds(5)

    public init(group: String, topics: [String]) {
        self.group = group
        self.topics = topics
    }
}

/// One partition's records as the handler receives them: in offset order, never empty.
public struct GroupBatch: Sendable {
    public var topicPartition: TopicPartition
    public var records: [ConsumerRecord]
    /// The generation of the assignment the records were read under.
    public var generation: Int32

    /// For tests of handlers: a batch as the consumer would hand it over. Throws
    /// `GroupConsumerError.emptyBatch` without records.
    public init(topicPartition: TopicPartition, records: [ConsumerRecord], generation: Int32) throws(GroupConsumerError) {
        guard !records.isEmpty else { throw .emptyBatch }
        self.init(checked: topicPartition, records: records, generation: generation)
    }

    /// A batch the consumer read: never empty.
    init(checked topicPartition: TopicPartition, records: [ConsumerRecord], generation: Int32) {
        assert(!records.isEmpty, "a group batch is never empty")
        self.topicPartition = topicPartition
        self.records = records
        self.generation = generation
    }

    /// The offset to commit once these records are processed: one past the last (of a
    /// batch whose records were emptied by hand: -1, which no commit accepts).
    public var nextOffset: Int64 {
        guard let last = records.last else { return -1 }
        return last.offset + 1
    }
}

/// What happened to the member's partitions, for logs (`GroupConsumer.onRebalance`).
public enum RebalanceEvent: Sendable, Equatable {
    /// The coordinator accepted the member.
    case joined(memberId: String)
    /// The member's whole assignment after this message; `added` are new to it.
    case assigned(generation: Int32, partitions: [TopicPartition], added: [TopicPartition])
    /// The member gave these partitions up after committing (cooperative revocation).
    case revoked(generation: Int32, partitions: [TopicPartition])
    /// The session ended (expired, connection lost): every partition is gone; the member rejoins.
    case lost(partitions: [TopicPartition], reason: String)
    /// The member left the group because it was stopped (`close`, cancellation, the end of
    /// `run`): `partitions` are released for the others at once.
    case left(partitions: [TopicPartition])
    /// A commit was refused; `partitions` keep their previous committed offsets.
    case commitRefused(partitions: [TopicPartition], reason: String)
}

/// Why `GroupConsumer.run` ended with an error.
public enum GroupConsumerError: Error, Sendable, CustomStringConvertible {
    /// The broker refused the join or a request retrying cannot fix (INVALID_ARGUMENT,
    /// NOT_FOUND for a topic, ...).
    case refused(GRPCStatus)
    /// The reset policy is `.error` and a partition has no usable committed offset.
    case noValidOffset(TopicPartition, committed: Int64?)
    /// A batch failed its CRC32C or did not decode.
    case corruptBatch(TopicPartition, RecordBatchCodec.DecodingError)
    /// The broker stayed unreachable; `last` is the final failure.
    case reconnectsExhausted(attempts: Int, last: String)
    /// `commit()` with a delivery setting other than `.atLeastOnce(commit: .manual)`.
    case commitNotManual
    /// `run` was called on a consumer that already ran (a consumer is one membership).
    case alreadyRunning
    /// `commit()` could not reach the coordinator: DEADLINE_EXCEEDED past `requestTimeout`,
    /// UNAVAILABLE without a connection, ... Nothing was committed; the offsets are
    /// committed again by the next commit.
    case commitFailed(GRPCStatus)
    /// `GroupBatch(topicPartition:records:generation:)` with no records.
    case emptyBatch

    public var description: String {
        switch self {
        case .refused(let status): "\(status.message.isEmpty ? "refused" : status.message) (\(status.code))"
        case .noValidOffset(let partition, let committed):
            "\(partition) has \(committed.map { "committed offset \($0) out of range" } ?? "no committed offset") and the reset policy is error"
        case .corruptBatch(let partition, let error): "\(partition): \(error)"
        case .reconnectsExhausted(let attempts, let last): "gave up after \(attempts) attempts: \(last)"
        case .commitNotManual: "commit() needs delivery .atLeastOnce(commit: .manual)"
        case .alreadyRunning: "run was already called on this GroupConsumer; make a new one to join again"
        case .commitFailed(let status): "commit failed: \(status.message.isEmpty ? "" : "\(status.message) ")(\(status.code))"
        case .emptyBatch: "a group batch holds at least one record"
        }
    }
}

/// The full method paths of `sluice.v1.Groups`.
enum GroupsMethod {
    static let join = "/sluice.v1.Groups/Join"
    static let commitOffsets = "/sluice.v1.Groups/CommitOffsets"
    static let fetchOffsets = "/sluice.v1.Groups/FetchOffsets"
    static let prefix = "/sluice.v1.Groups/"
}
