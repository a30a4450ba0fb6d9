import NIOCore
import SluiceAPI
import SluiceBroker
import SluiceWire
import Testing

/// A test-only group member: one Join stream opened with SluiceWire's client, messages
/// sent and read by hand.
struct GroupMemberStream {
    let call: GRPCClientCall
    private var responses: GRPCResponseStream.AsyncIterator
    private var told = CoordinatorTold()
    var memberID: String { told.memberID }
    var generation: Int32 { told.generation }
    var assigned: Set<GroupPartition> { told.assigned }
    /// The partitions of the latest revocation.
    var revoked: Set<GroupPartition> { told.revocations.last ?? [] }

    init(_ connection: GRPCClientConnection) async throws {
        call = try await connection.makeCall(path: "/sluice.v1.Groups/Join")
        responses = call.responses.makeAsyncIterator()
    }

    /// Opens a stream, joins, and reads `Joined`.
    static func join(
        _ connection: GRPCClientConnection, group: String = "g", topics: [String], instance: String = "", timeoutMs: UInt32 = 0
    ) async throws -> GroupMemberStream {
        var member = try await GroupMemberStream(connection)
        try await member.send(.join(JoinGroup(
            group: group, topics: topics, instanceId: instance, sessionTimeoutMs: timeoutMs, clientId: "test")))
        guard case .joined? = try await member.next()?.kind else { throw TestFailure("no Joined answer") }
        return member
    }

    func send(_ kind: MemberMessage.Kind) async throws {
        try await call.send(MemberMessage(kind: kind).protobufBytes())
    }

    /// The next coordinator message, folded into this member's view.
    mutating func next() async throws -> CoordinatorMessage? {
        guard let bytes = try await responses.next() else { return nil }
        let message = try CoordinatorMessage(protobuf: bytes)
        told.fold(message)
        return message
    }

    /// Reads until an assignment of `count` partitions arrived.
    mutating func awaitAssignment(count: Int) async throws {
        while assigned.count != count || generation < 0 {
            guard try await next() != nil else { throw TestFailure("the Join stream ended before the assignment") }
        }
    }

    /// Reads until the stream ends; returns its status.
    mutating func awaitEnd() async -> GRPCStatus {
        do {
            while try await next() != nil {}
            return GRPCStatus(.ok, "")
        } catch let status as GRPCStatus {
            return status
        } catch {
            return GRPCStatus(.unknown, "\(error)")
        }
    }
}
