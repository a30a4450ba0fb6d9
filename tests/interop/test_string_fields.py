"""A name (or any string field) holding a NUL byte or bytes that are not UTF-8 is refused
with INVALID_ARGUMENT, for every RPC of proto/sluice/v1 that takes one, and the name the
NUL would have cut it to is left alone.

protobuf-c keeps strings as C strings, so before the fix `DeleteTopic("orders\\0-staging")`
deleted `orders`, `CreateTopic("bc5nul\\0tail")` created `bc5nul` and a Produce to
`nt\\0evil` appended to `nt`; invalid UTF-8 was repaired to U+FFFD.

grpcio sends `str` fields as UTF-8 and cannot send invalid UTF-8, so requests are built
with the generated stubs around a placeholder of the right byte length, serialized, and
the placeholder's bytes replaced by the bad ones (no length prefix changes); they go out
through grpcio's generic calls with bytes in and bytes out.
"""

from __future__ import annotations

import queue
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2
from sluice.v1 import broker_pb2, broker_pb2_grpc, groups_pb2, groups_pb2_grpc

# A bound on any one call, not a timing assumption.
BOUND_S = 30.0

# The bad tails: each is appended to a name the test owns, so a cut leaves that name.
BAD = {
    "nul": (b"\x00-staging", "contains a NUL byte"),
    "nul-first": (b"\x00", "contains a NUL byte"),
    "utf8": (b"\xc3\x28", "is not valid UTF-8"),
    "lone-ff": (b"\xff", "is not valid UTF-8"),
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def spliced(message, placeholder: str, value: bytes) -> bytes:
    """`message` (built with `placeholder` in one string field) with `value` in its place."""
    encoded, marker = message.SerializeToString(), placeholder.encode()
    assert len(marker) == len(value) and encoded.count(marker) == 1, (encoded, marker)
    return encoded.replace(marker, value)


def placeholder_for(value: bytes) -> str:
    # "~" (0x7E) is no valid protobuf key and no length or value here is 126.
    return "~" * len(value)


def call_raw(channel, path: str, payload: bytes, streaming: bool = False):
    """Sends one serialized request; returns (status code, details)."""
    try:
        if streaming:
            call = channel.stream_stream(path)(iter([payload]), timeout=BOUND_S)
            for _ in call:
                pass
        else:
            channel.unary_unary(path)(payload, timeout=BOUND_S)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


# Every RPC of proto/sluice/v1 (and the health check) whose request holds a string: the
# path, the field path the refusal names, whether the call is client-streaming, and the
# request built around a string value. Replicate is listed apart below.
B, G = "/sluice.v1.Broker/", "/sluice.v1.Groups/"


def _batch():
    from test_produce_subscribe import make_batch

    return make_batch([(None, b"evil")], first_ms=1)


REQUESTS = [
    (B + "Produce", "topic", True,
     lambda s: broker_pb2.ProduceRequest(correlation_id=1, topic=s, acks=broker_pb2.ACKS_ALL, batch=_batch())),
    (B + "Subscribe", "topic", False, lambda s: broker_pb2.SubscribeRequest(topic=s)),
    (B + "Subscribe", "group_reader.group", False,
     lambda s: broker_pb2.SubscribeRequest(topic="t", group_reader=broker_pb2.GroupReader(group=s, member_id="m"))),
    (B + "Subscribe", "group_reader.member_id", False,
     lambda s: broker_pb2.SubscribeRequest(topic="t", group_reader=broker_pb2.GroupReader(group="g", member_id=s))),
    (B + "InitProducerId", "producer_name", False, lambda s: broker_pb2.InitProducerIdRequest(producer_name=s)),
    (B + "CreateTopic", "name", False, lambda s: broker_pb2.CreateTopicRequest(name=s, partitions=1)),
    (B + "CreateTopic", "configs.key", False,
     lambda s: broker_pb2.CreateTopicRequest(name=unique("ck"), partitions=1, configs={s: "1000"})),
    (B + "CreateTopic", "configs.value", False,
     lambda s: broker_pb2.CreateTopicRequest(name=unique("cv"), partitions=1, configs={"retention.ms": s})),
    (B + "DeleteTopic", "name", False, lambda s: broker_pb2.DeleteTopicRequest(name=s)),
    (B + "DescribeTopic", "name", False, lambda s: broker_pb2.DescribeTopicRequest(name=s)),
    (B + "AlterTopicConfig", "name", False,
     lambda s: broker_pb2.AlterTopicConfigRequest(name=s, set={"retention.ms": "1000"})),
    (B + "AlterTopicConfig", "set.key", False, lambda s: broker_pb2.AlterTopicConfigRequest(name="t", set={s: "1"})),
    (B + "AlterTopicConfig", "set.value", False,
     lambda s: broker_pb2.AlterTopicConfigRequest(name="t", set={"retention.ms": s})),
    (B + "AlterTopicConfig", "reset", False, lambda s: broker_pb2.AlterTopicConfigRequest(name="t", reset=[s])),
    (B + "CreatePartitions", "name", False, lambda s: broker_pb2.CreatePartitionsRequest(name=s, total_count=2)),
    (B + "Metadata", "topics", False, lambda s: broker_pb2.MetadataRequest(topics=["t", s])),
    (G + "Join", "join.group", True,
     lambda s: groups_pb2.MemberMessage(join=groups_pb2.JoinGroup(group=s, topics=["t"]))),
    (G + "Join", "join.topics", True,
     lambda s: groups_pb2.MemberMessage(join=groups_pb2.JoinGroup(group="g", topics=[s]))),
    (G + "Join", "join.instance_id", True,
     lambda s: groups_pb2.MemberMessage(join=groups_pb2.JoinGroup(group="g", topics=["t"], instance_id=s))),
    (G + "Join", "join.client_id", True,
     lambda s: groups_pb2.MemberMessage(join=groups_pb2.JoinGroup(group="g", topics=["t"], client_id=s))),
    (G + "Join", "revoke_ack.partitions.topic", True,
     lambda s: groups_pb2.MemberMessage(revoke_ack=groups_pb2.RevokeAck(
         generation=1, partitions=[groups_pb2.TopicPartitions(topic=s, partitions=[0])]))),
    (G + "CommitOffsets", "group", False, lambda s: groups_pb2.CommitOffsetsRequest(group=s, member_id="m")),
    (G + "CommitOffsets", "member_id", False, lambda s: groups_pb2.CommitOffsetsRequest(group="g", member_id=s)),
    (G + "CommitOffsets", "offsets.topic", False, lambda s: groups_pb2.CommitOffsetsRequest(
        group="g", member_id="m", offsets=[groups_pb2.OffsetCommit(topic=s, offset=1)])),
    (G + "CommitOffsets", "offsets.metadata", False, lambda s: groups_pb2.CommitOffsetsRequest(
        group="g", member_id="m", offsets=[groups_pb2.OffsetCommit(topic="t", offset=1, metadata=s)])),
    (G + "FetchOffsets", "group", False, lambda s: groups_pb2.FetchOffsetsRequest(group=s)),
    (G + "FetchOffsets", "partitions.topic", False, lambda s: groups_pb2.FetchOffsetsRequest(
        group="g", partitions=[groups_pb2.TopicPartitions(topic=s, partitions=[0])])),
    (G + "DescribeGroup", "group", False, lambda s: groups_pb2.DescribeGroupRequest(group=s)),
    (G + "ResetOffsets", "group", False, lambda s: groups_pb2.ResetOffsetsRequest(group=s, topic="t", earliest=True)),
    (G + "ResetOffsets", "topic", False, lambda s: groups_pb2.ResetOffsetsRequest(group="g", topic=s, earliest=True)),
    (G + "DeleteGroup", "group", False, lambda s: groups_pb2.DeleteGroupRequest(group=s)),
    ("/grpc.health.v1.Health/Check", "service", False, lambda s: health_pb2.HealthCheckRequest(service=s)),
]


@pytest.mark.parametrize("bad", sorted(BAD), ids=str)
@pytest.mark.parametrize("path,field,streaming,build", REQUESTS,
                         ids=[f"{path.rsplit('/', 1)[1]}.{field}" for path, field, _, _ in REQUESTS])
def test_every_string_field_refuses_nul_and_invalid_utf8(channel, path, field, streaming, build, bad):
    tail, reason = BAD[bad]
    value = b"nt" + tail
    code, details = call_raw(channel, path, spliced(build(placeholder_for(value)), placeholder_for(value), value),
                             streaming)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert f"string field {field} " in details and reason in details, details
    assert len(details) < 300, details


def test_replicate_does_not_act_on_a_cut_name(channel):
    """Replicate is broker to broker: a single node refuses it before acting on anything,
    and a topic name with a NUL inside goes through the same decoding as everywhere else
    (INVALID_ARGUMENT), never reaching a log under the cut name."""
    value = b"nt\x00evil"
    request = spliced(
        broker_pb2.ReplicateRequest(
            replica_id=2, partitions=[broker_pb2.ReplicaPosition(topic=placeholder_for(value), partition=0)]),
        placeholder_for(value), value)
    code, details = call_raw(channel, B + "Replicate", request, streaming=True)
    assert code in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.FAILED_PRECONDITION), (code, details)


# --- the name a cut would have reached is left alone --------------------------------------

@pytest.fixture
def broker(channel):
    return broker_pb2_grpc.BrokerStub(channel)


@pytest.fixture
def groups(channel):
    return groups_pb2_grpc.GroupsStub(channel)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def refused(call) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()


def describe(broker, name):
    return broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=name), timeout=BOUND_S).topic


def test_create_topic_with_a_nul_creates_nothing(broker, channel):
    prefix = unique("bc5nul")
    refused(lambda: broker.CreateTopic(broker_pb2.CreateTopicRequest(name=prefix + "\x00tail", partitions=1),
                                       timeout=BOUND_S))
    value = prefix.encode() + b"\xc3\x28"
    bad_utf8 = spliced(broker_pb2.CreateTopicRequest(name=placeholder_for(value), partitions=1),
                       placeholder_for(value), value)
    assert call_raw(channel, B + "CreateTopic", bad_utf8)[0] == grpc.StatusCode.INVALID_ARGUMENT
    # A bad setting refuses the whole request: the topic is not created with the rest.
    refused(lambda: broker.CreateTopic(broker_pb2.CreateTopicRequest(
        name=prefix, partitions=1, configs={"retention.ms": "1000\x00junk"}), timeout=BOUND_S))
    refused(lambda: broker.CreateTopic(broker_pb2.CreateTopicRequest(
        name=prefix, partitions=1, configs={"retention.ms\x00": "1000"}), timeout=BOUND_S))
    assert code_of(lambda: describe(broker, prefix)) == grpc.StatusCode.NOT_FOUND
    listed = [t.name for t in broker.ListTopics(broker_pb2.ListTopicsRequest(), timeout=BOUND_S).topics]
    assert not [name for name in listed if name.startswith(prefix)], listed


def test_topic_rpcs_with_a_nul_leave_the_named_topic_alone(broker):
    orders = unique("orders")
    broker.CreateTopic(broker_pb2.CreateTopicRequest(
        name=orders, partitions=1, configs={"retention.ms": "3600000"}), timeout=BOUND_S)
    before = describe(broker, orders)

    refused(lambda: broker.DeleteTopic(broker_pb2.DeleteTopicRequest(name=orders + "\x00-staging"), timeout=BOUND_S))
    refused(lambda: broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=orders + "\x00x"), timeout=BOUND_S))
    refused(lambda: broker.CreatePartitions(broker_pb2.CreatePartitionsRequest(
        name=orders + "\x00x", total_count=3), timeout=BOUND_S))
    for alter in (
        broker_pb2.AlterTopicConfigRequest(name=orders + "\x00x", set={"retention.ms": "1000"}),
        broker_pb2.AlterTopicConfigRequest(name=orders, set={"retention.ms\x00x": "1000"}),
        broker_pb2.AlterTopicConfigRequest(name=orders, set={"retention.ms": "1000\x00x"}),
        broker_pb2.AlterTopicConfigRequest(name=orders, reset=["retention.ms\x00x"]),
    ):
        refused(lambda: broker.AlterTopicConfig(alter, timeout=BOUND_S))

    after = describe(broker, orders)  # still there: not deleted
    assert after.topic_id == before.topic_id
    assert after.partition_count == 1
    assert after.configs["retention.ms"] == "3600000"


def test_produce_and_subscribe_with_a_nul_do_not_reach_the_prefix(broker):
    from test_produce_subscribe import ProduceStream, make_batch

    nt = unique("nt")
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=nt, partitions=1), timeout=BOUND_S)
    stream = ProduceStream(broker)
    stream.send(nt + "\x00evil", 0, make_batch([(None, b"evil")]))
    with pytest.raises(grpc.RpcError) as raised:
        stream.answer()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    stream._requests.put(None)
    assert [p.log_end_offset for p in describe(broker, nt).partitions] == [0]

    # Subscribe to the cut name is refused rather than served `nt`'s records.
    call = broker.Subscribe(broker_pb2.SubscribeRequest(
        topic=nt + "\x00evil", default_start=broker_pb2.StartPosition(earliest=True)), timeout=BOUND_S)
    refused(lambda: next(call))


def test_init_producer_id_with_a_nul_does_not_fence_the_producer(broker):
    name = unique("producer")
    first = broker.InitProducerId(broker_pb2.InitProducerIdRequest(producer_name=name), timeout=BOUND_S)
    refused(lambda: broker.InitProducerId(broker_pb2.InitProducerIdRequest(producer_name=name + "\x00x"),
                                          timeout=BOUND_S))
    again = broker.InitProducerId(broker_pb2.InitProducerIdRequest(producer_name=name), timeout=BOUND_S)
    # One bump (this call), not two: the refused call did not re-initialise `name`.
    assert (again.producer_id, again.producer_epoch) == (first.producer_id, first.producer_epoch + 1)


def test_group_rpcs_with_a_nul_leave_the_named_group_alone(broker, groups):
    from test_produce_subscribe import ProduceStream, make_batch

    topic, group = unique("gt"), unique("g")
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=BOUND_S)
    stream = ProduceStream(broker)
    stream.send(topic, 0, make_batch([(None, b"a"), (None, b"b"), (None, b"c")]))
    assert stream.answer().error == broker_pb2.ERROR_CODE_NONE
    stream.close()

    outbox: queue.Queue = queue.Queue()
    outbox.put(groups_pb2.MemberMessage(join=groups_pb2.JoinGroup(group=group, topics=[topic])))
    responses = groups.Join(iter(outbox.get, None), timeout=BOUND_S * 2)
    member_id = next(responses).joined.member_id
    generation = None
    while generation is None:
        message = next(responses)
        if message.WhichOneof("kind") == "assignment":
            generation = message.assignment.generation

    def commit(group_name, member, topic_name, offset, metadata):
        return groups.CommitOffsets(groups_pb2.CommitOffsetsRequest(
            group=group_name, member_id=member, generation=generation,
            offsets=[groups_pb2.OffsetCommit(topic=topic_name, partition=0, offset=offset, metadata=metadata)]),
            timeout=BOUND_S)

    assert [r.error for r in commit(group, member_id, topic, 1, "base").results] == [broker_pb2.ERROR_CODE_NONE]

    def committed():
        fetched = groups.FetchOffsets(groups_pb2.FetchOffsetsRequest(group=group), timeout=BOUND_S)
        return [(o.topic, o.partition, o.offset, o.metadata) for o in fetched.offsets]

    assert committed() == [(topic, 0, 1, "base")]
    refused(lambda: commit(group + "\x00x", member_id, topic, 2, "evil"))
    refused(lambda: commit(group, member_id + "\x00x", topic, 2, "evil"))
    refused(lambda: commit(group, member_id, topic + "\x00x", 2, "evil"))
    refused(lambda: commit(group, member_id, topic, 2, "evil\x00x"))
    refused(lambda: groups.FetchOffsets(groups_pb2.FetchOffsetsRequest(group=group + "\x00x"), timeout=BOUND_S))
    refused(lambda: groups.FetchOffsets(groups_pb2.FetchOffsetsRequest(
        group=group, partitions=[groups_pb2.TopicPartitions(topic=topic + "\x00x", partitions=[0])]), timeout=BOUND_S))
    refused(lambda: groups.DescribeGroup(groups_pb2.DescribeGroupRequest(group=group + "\x00x"), timeout=BOUND_S))

    # A second member joining the cut name would have joined `group` and rebalanced it.
    intruder = groups.Join(iter([groups_pb2.MemberMessage(join=groups_pb2.JoinGroup(
        group=group + "\x00x", topics=[topic]))]), timeout=BOUND_S)
    refused(lambda: list(intruder))
    described = groups.DescribeGroup(groups_pb2.DescribeGroupRequest(group=group), timeout=BOUND_S).group
    assert [m.member_id for m in described.members] == [member_id]
    assert described.generation == generation

    outbox.put(groups_pb2.MemberMessage(leave=groups_pb2.LeaveGroup()))
    outbox.put(None)
    for _ in responses:
        pass
    # An empty group can be reset and deleted; the cut names must do neither.
    refused(lambda: groups.ResetOffsets(groups_pb2.ResetOffsetsRequest(
        group=group + "\x00x", topic=topic, latest=True), timeout=BOUND_S))
    refused(lambda: groups.ResetOffsets(groups_pb2.ResetOffsetsRequest(
        group=group, topic=topic + "\x00x", latest=True), timeout=BOUND_S))
    refused(lambda: groups.DeleteGroup(groups_pb2.DeleteGroupRequest(group=group + "\x00x"), timeout=BOUND_S))
    assert committed() == [(topic, 0, 1, "base")]
    listed = {g.group for g in groups.ListGroups(groups_pb2.ListGroupsRequest(), timeout=BOUND_S).groups}
    assert group in listed
