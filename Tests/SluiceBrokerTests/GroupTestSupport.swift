import SluiceAPI
@testable import SluiceBroker
import Synchronization
import Testing

/// A clock the test moves by hand.
final class ManualGroupClock: GroupClock {
    private let now = Mutex<Int64>(1_000)

    func monotonicMilliseconds() -> Int64 { now.withLock { $0 } }
    func wallMilliseconds() -> Int64 { 1_700_000_000_000 + monotonicMilliseconds() }
    func advance(ms: Int64) { now.withLock { $0 += ms } }
}

/// Topics with fixed partition counts; every partition holds offsets 0..<logEnd.
struct FakeTopics: GroupTopicSource {
    var counts: [String: UInt32]
    var logEnd: Int64 = 100

    func partitionCount(ofTopic topic: String) -> UInt32? { counts[topic] }

    func offsets(of partition: GroupPartition) -> GroupPartitionOffsets? {
        guard let count = counts[partition.topic], partition.partition < count else { return nil }
        return GroupPartitionOffsets(logStartOffset: 0, logEndOffset: logEnd, highWatermark: logEnd)
    }

    func offset(of partition: GroupPartition, atOrAfterTimestamp timestampMs: Int64) -> Int64? { nil }
}

/// What a member has been told by the coordinator, folded from its messages the way a
/// client would: the in-process views (`MemberView`) and the Join streams
/// (`GroupMemberStream`) both keep one.
struct CoordinatorTold {
    var memberID = ""
    var generation: Int32 = -1
    var assigned: Set<GroupPartition> = []
    var revocations: [Set<GroupPartition>] = []

    mutating func fold(_ message: CoordinatorMessage) {
        switch message.kind {
        case .joined(let joined)?: memberID = joined.memberId
        case .assignment(let assignment)?:
            generation = assignment.generation
            assigned = Self.partitions(assignment.partitions)
        case .revocation(let revocation)?: revocations.append(Self.partitions(revocation.partitions))
        case nil: break
        }
    }

    private static func partitions(_ lists: [TopicPartitions]) -> Set<GroupPartition> {
        Set(lists.flatMap { entry in entry.partitions.map { GroupPartition(entry.topic, $0) } })
    }
}

/// What a member has been told, folded from its channel's messages.
struct MemberView {
    let channel: MemberChannel
    private var told = CoordinatorTold()

    init(_ channel: MemberChannel) { self.channel = channel }

    /// Reads every message queued so far.
    mutating func update() {
        for message in channel.drain() { told.fold(message) }
    }

    var memberID: String { told.memberID }
    var generation: Int32 { told.generation }
    var assigned: Set<GroupPartition> { told.assigned }
    var revocations: [Set<GroupPartition>] {
        get { told.revocations }
        set { told.revocations = newValue }
    }
    var pendingRevocation: Set<GroupPartition> { revocations.last ?? [] }

    /// Why the coordinator expelled this member; nil, and an issue saying `otherwise`, when
    /// its stream has not ended that way.
    func expelledReason(otherwise: String, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
        guard case .expelled(let reason)? = channel.ending else {
            Issue.record("\(otherwise): \(String(describing: channel.ending))", sourceLocation: sourceLocation)
            return nil
        }
        return reason
    }
}

func groupPartitions(_ topic: String, _ numbers: ClosedRange<UInt32>) -> Set<GroupPartition> {
    Set(numbers.map { GroupPartition(topic, $0) })
}

extension GroupCoordinator {
    /// Joins a member with a fresh channel and returns its view (updated).
    func join(
        group: String = "g", topics: [String] = ["t"], instance: String = "", timeoutMs: UInt32 = 0,
        strategy: AssignmentStrategy = .sticky, capacity: Int = 64
    ) throws -> MemberView {
        let channel = MemberChannel(capacity: capacity)
        try join(
            JoinRequest(JoinGroup(group: group, topics: topics, instanceId: instance, sessionTimeoutMs: timeoutMs, strategy: strategy),
                        host: "test"),
            channel: channel)
        var view = MemberView(channel)
        view.update()
        return view
    }

    /// Acknowledges every revocation the member was sent, as a well-behaved client does.
    func acknowledge(_ view: inout MemberView, group: String = "g") {
        view.update()
        revokeAck(group: group, member: view.memberID, partitions: Array(view.pendingRevocation))
        view.revocations.removeAll()
    }

    func commit(
        _ view: MemberView, generation: Int32? = nil, _ partition: GroupPartition, offset: Int64, group: String = "g"
    ) throws -> OffsetCommitResult? {
        try commit(CommitOffsetsRequest(
            group: group, memberId: view.memberID, generation: generation ?? view.generation,
            offsets: [OffsetCommit(topic: partition.topic, partition: partition.partition, offset: offset)])).results.first
    }
}

/// Runs `body` and expects a `BrokerError` with `code` whose message contains `text`.
func expectBrokerError<Result>(
    _ code: BrokerError.Code, containing text: String = "", sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Result
) {
    let error = #expect(throws: BrokerError.self, "expected \(code)", sourceLocation: sourceLocation) { _ = try body() }
    guard let error else { return }
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    #expect(text.isEmpty || error.message.contains(text), "\(error)", sourceLocation: sourceLocation)
}
