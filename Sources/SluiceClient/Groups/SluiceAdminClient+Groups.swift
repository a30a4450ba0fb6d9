public import SluiceAPI
import SluiceWire

/// The admin RPCs of `sluice.v1.Groups`, typed. Errors are `GRPCStatus`: NOT_FOUND for an
/// unknown group, FAILED_PRECONDITION for resetting or deleting a group that has members,
/// INVALID_ARGUMENT.
extension SluiceAdminClient {
    public func listGroups() async throws -> [GroupSummary] {
        let response: ListGroupsResponse = try await groupsCall("ListGroups", ListGroupsRequest())
        return response.groups
    }

    public func describeGroup(named group: String) async throws -> GroupDescription {
        let response: DescribeGroupResponse = try await groupsCall("DescribeGroup", DescribeGroupRequest(group: group))
        guard let description = response.group else { throw GRPCStatus(.internalError, "the broker's answer carries no group") }
        return description
    }

    /// Sets (or with `dryRun` only computes) the group's committed offsets of `topic`'s
    /// `partitions` (empty: all of them); returns the offsets set.
    public func resetOffsets(
        group: String, topic: String, partitions: [UInt32] = [], to target: ResetOffsetsRequest.Target, dryRun: Bool = false
    ) async throws -> [CommittedOffset] {
        let response: ResetOffsetsResponse = try await groupsCall(
            "ResetOffsets",
            ResetOffsetsRequest(group: group, topic: topic, partitions: partitions, target: target, dryRun: dryRun))
        return response.offsets
    }

    public func deleteGroup(named group: String) async throws {
        let _: DeleteGroupResponse = try await groupsCall("DeleteGroup", DeleteGroupRequest(group: group))
    }

    /// The group's committed offsets; `partitions` empty means every one it has. A partition
    /// without a committed offset has offset -1.
    public func fetchOffsets(group: String, partitions: [TopicPartitions] = []) async throws -> [CommittedOffset] {
        let response: FetchOffsetsResponse = try await groupsCall(
            "FetchOffsets", FetchOffsetsRequest(group: group, partitions: partitions))
        return response.offsets
    }

    private func groupsCall<Request: ProtobufMessage, Response: ProtobufMessage>(_ method: String, _ request: Request) async throws -> Response {
        try await unary(path: GroupsMethod.prefix + method, request: request)
    }
}
