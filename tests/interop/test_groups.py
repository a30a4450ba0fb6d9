"""sluice.v1.Groups through grpcio: a member's Join stream, commits with their checks,
lag, admin RPCs and bad input, from stubs generated from proto/ (no Sluice client)."""

from __future__ import annotations

import queue
import uuid

import grpc
import pytest
from sluice.v1 import broker_pb2, broker_pb2_grpc, groups_pb2, groups_pb2_grpc


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def groups(channel):
    return groups_pb2_grpc.GroupsStub(channel)


@pytest.fixture
def broker(channel):
    return broker_pb2_grpc.BrokerStub(channel)


class Member:
    """One Join stream: messages go in through a queue (None half-closes)."""

    def __init__(self, groups, join: groups_pb2.JoinGroup):
        self.outbox: queue.Queue = queue.Queue()
        self.outbox.put(groups_pb2.MemberMessage(join=join))
        self.responses = groups.Join(iter(self.outbox.get, None), timeout=60)
        joined = next(self.responses)
        assert joined.WhichOneof("kind") == "joined", joined
        self.member_id = joined.joined.member_id
        self.generation = -1
        self.assigned: set[tuple[str, int]] = set()

    def read_assignment(self):
        while True:
            message = next(self.responses)
            if message.WhichOneof("kind") == "assignment":
                self.generation = message.assignment.generation
                self.assigned = {(tp.topic, p) for tp in message.assignment.partitions for p in tp.partitions}
                return

    def leave(self):
        self.outbox.put(groups_pb2.MemberMessage(leave=groups_pb2.LeaveGroup()))
        self.outbox.put(None)
        for _ in self.responses:
            pass


def test_join_commit_fetch_describe_and_leave(groups, broker):
    topic, group = unique("gt"), unique("g")
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=2), timeout=10)
    member = Member(groups, groups_pb2.JoinGroup(group=group, topics=[topic], client_id="py"))
    member.read_assignment()
    assert member.assigned == {(topic, 0), (topic, 1)}
    assert member.member_id.startswith("py-")

    committed = groups.CommitOffsets(groups_pb2.CommitOffsetsRequest(
        group=group, member_id=member.member_id, generation=member.generation,
        offsets=[groups_pb2.OffsetCommit(topic=topic, partition=0, offset=0, metadata="py"),
                 groups_pb2.OffsetCommit(topic=topic, partition=1, offset=5)]), timeout=10)
    errors = [result.error for result in committed.results]
    assert errors == [broker_pb2.ERROR_CODE_NONE, broker_pb2.ERROR_CODE_OFFSET_OUT_OF_RANGE]

    fetched = groups.FetchOffsets(groups_pb2.FetchOffsetsRequest(group=group), timeout=10)
    assert [(o.partition, o.offset, o.metadata) for o in fetched.offsets] == [(0, 0, "py")]

    described = groups.DescribeGroup(groups_pb2.DescribeGroupRequest(group=group), timeout=10).group
    assert described.state == groups_pb2.GROUP_STATE_STABLE
    assert [m.member_id for m in described.members] == [member.member_id]
    assert [lag.lag for lag in described.partitions] == [0, 0]

    listed = {g.group for g in groups.ListGroups(groups_pb2.ListGroupsRequest(), timeout=10).groups}
    assert group in listed
    member.leave()
    after = groups.DescribeGroup(groups_pb2.DescribeGroupRequest(group=group), timeout=10).group
    assert after.state == groups_pb2.GROUP_STATE_EMPTY
    groups.DeleteGroup(groups_pb2.DeleteGroupRequest(group=group), timeout=10)


def status_of(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def test_bad_input_has_clear_statuses(groups, broker):
    topic = unique("gt")
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)
    unknown = status_of(lambda: groups.CommitOffsets(groups_pb2.CommitOffsetsRequest(
        group=unique("nobody"), member_id="m", generation=1), timeout=10))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND

    def join_status(join) -> grpc.RpcError:
        stream = groups.Join(iter([groups_pb2.MemberMessage(join=join)]), timeout=10)
        return status_of(lambda: list(stream))

    empty = join_status(groups_pb2.JoinGroup(group="g", topics=[]))
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT and "no topics" in empty.details()
    absurd = join_status(groups_pb2.JoinGroup(group="g", topics=[topic], session_timeout_ms=10**9))
    assert absurd.code() == grpc.StatusCode.INVALID_ARGUMENT and "session_timeout_ms" in absurd.details()
    missing = join_status(groups_pb2.JoinGroup(group="g", topics=["no-such-topic-here"]))
    assert missing.code() == grpc.StatusCode.NOT_FOUND and "no-such-topic-here" in missing.details()

    heartbeat_first = groups.Join(iter([groups_pb2.MemberMessage(heartbeat=groups_pb2.Heartbeat())]), timeout=10)
    first = status_of(lambda: list(heartbeat_first))
    assert first.code() == grpc.StatusCode.INVALID_ARGUMENT and "must be join" in first.details()

    reset = status_of(lambda: groups.ResetOffsets(groups_pb2.ResetOffsetsRequest(
        group=unique("nobody"), topic=topic, earliest=True), timeout=10))
    assert reset.code() == grpc.StatusCode.NOT_FOUND


def test_a_silent_member_expires(groups, broker):
    topic, group = unique("gt"), unique("g")
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)
    outbox: queue.Queue = queue.Queue()
    outbox.put(groups_pb2.MemberMessage(join=groups_pb2.JoinGroup(group=group, topics=[topic], session_timeout_ms=200)))
    stream = groups.Join(iter(outbox.get, None), timeout=60)
    ended = status_of(lambda: list(stream))
    outbox.put(None)
    assert ended.code() == grpc.StatusCode.FAILED_PRECONDITION and "session expired" in ended.details()
