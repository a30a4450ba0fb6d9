import SluiceAPI
public import SluiceBroker
public import SluiceWire

/// `sluice.v1.Groups` on the broker's `GroupCoordinator` (groups.proto).
///
/// A Join stream is two tasks: a reader that turns member messages into coordinator
/// calls (every message refreshes the session), and a writer that sends what the
/// coordinator queues on the member's channel. The stream ends OK after a leave or
/// half-close, FAILED_PRECONDITION when the coordinator expelled the member (session
/// expired, fenced by a newer static instance, not reading its stream), INVALID_ARGUMENT
/// for a bad first message or join, UNAVAILABLE at shutdown. Every call answers
/// UNAVAILABLE with the reason while the consumer offsets log cannot be opened.
public struct GroupsService: Sendable {
    public static let serviceName = "sluice.v1.Groups"
    private let groups: GroupCoordinator

    public init(groups: GroupCoordinator) {
        self.groups = groups
    }

    public var methods: [GRPCMethod] {
        let groups = self.groups
        let prefix = "/\(Self.serviceName)/"
        return [
            ProtobufRoute.bidirectional(prefix + "Join") {
                (requests: ProtobufRoute.RequestStream<MemberMessage>, writer: ProtobufRoute.ResponseWriter<CoordinatorMessage>,
                 context: ServerCallContext) in
                try await Self.serveMember(groups, requests: requests, writer: writer, host: context.remoteAddress ?? "")
            },
            ProtobufRoute.unary(prefix + "CommitOffsets") { (request: CommitOffsetsRequest, _) in
                let outcome = try groups.commit(request)
                try await groups.waitUntilDurable(outcome.durabilityToken)
                return CommitOffsetsResponse(results: outcome.results)
            },
            ProtobufRoute.unary(prefix + "FetchOffsets") { (request: FetchOffsetsRequest, _) in
                let offsets = try groups.fetchOffsets(group: request.group, partitions: request.partitions.groupPartitions)
                return FetchOffsetsResponse(offsets: offsets)
            },
            ProtobufRoute.unary(prefix + "ListGroups") { (_: ListGroupsRequest, _) in
                try groups.requireOffsets()
                return ListGroupsResponse(groups: groups.listGroups())
            },
            ProtobufRoute.unary(prefix + "DescribeGroup") { (request: DescribeGroupRequest, _) in
                let description = try groups.describeGroup(request.group)
                return DescribeGroupResponse(group: description)
            },
            ProtobufRoute.unary(prefix + "ResetOffsets") { (request: ResetOffsetsRequest, _) in
                let target: GroupCoordinator.ResetTarget
                switch request.target {
                case .earliest?: target = .earliest
                case .latest?: target = .latest
                case .offset(let offset)?: target = .offset(offset)
                case .timestampMs(let time)?: target = .timestamp(time)
                case .shiftBy(let delta)?: target = .shift(delta)
                case nil: throw GRPCStatus(.invalidArgument, "the reset names no target (earliest, latest, offset, timestamp_ms or shift_by)")
                }
                let (offsets, token) = try groups.resetOffsets(
                    group: request.group, topic: request.topic, partitions: request.partitions, to: target, dryRun: request.dryRun)
                try await groups.waitUntilDurable(token)
                return ResetOffsetsResponse(offsets: offsets)
            },
            ProtobufRoute.unary(prefix + "DeleteGroup") { (request: DeleteGroupRequest, _) in
                let token = try groups.deleteGroup(request.group)
                try await groups.waitUntilDurable(token)
                return DeleteGroupResponse()
            },
        ]
    }

    private static func serveMember(
        _ groups: GroupCoordinator, requests: ProtobufRoute.RequestStream<MemberMessage>,
        writer: ProtobufRoute.ResponseWriter<CoordinatorMessage>, host: String
    ) async throws {
        var firstReader = requests.makeAsyncIterator()
        guard let first = try await firstReader.next() else {
            throw GRPCStatus(.invalidArgument, "the Join stream ended before its join message")
        }
        guard case .join(let join)? = first.kind else {
            throw GRPCStatus(.invalidArgument, "the first message of a Join stream must be join")
        }
        let channel = MemberChannel(capacity: groups.settings.memberQueueCapacity)
        let member = try groups.join(GroupCoordinator.JoinRequest(join, host: host), channel: channel)
        let group = join.group
        defer { groups.streamClosed(group: group, member: member, channel: channel) }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                while true {
                    switch await channel.next() {
                    case .message(let message):
                        try await writer.write(message)
                    case .end(.left):
                        return
                    case .end(.expelled(let reason)):
                        throw GRPCStatus(.failedPrecondition, reason)
                    case .end(.shutdown):
                        throw GRPCStatus(.unavailable, "the broker is shutting down; join again once it is back")
                    }
                }
            }
            tasks.addTask {
                // The same request stream: its iterator state lives in the call.
                for try await message in requests {
                    groups.heard(group: group, member: member)
                    switch message.kind {
                    case .heartbeat?, nil:
                        continue
                    case .revokeAck(let ack)?:
                        groups.revokeAck(group: group, member: member, partitions: ack.partitions.groupPartitions)
                    case .leave?:
                        groups.leave(group: group, member: member)
                        return
                    case .join?:
                        throw GRPCStatus(.invalidArgument, "join may be sent only once, as the stream's first message")
                    }
                }
                // Half-close: a leave.
                groups.leave(group: group, member: member)
            }
            // After a leave the writer drains the channel and returns; an error from
            // either side (expelled, stream reset) ends the call and cancels the other.
            while try await tasks.next() != nil {}
        }
    }
}
