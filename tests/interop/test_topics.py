"""Topic admin RPCs through grpcio (and a round through grpclib), their error statuses,
and topic metadata surviving a broker restart."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import grpclib.client
import pytest
from sluice.v1 import broker_grpc, broker_pb2, broker_pb2_grpc


def unique(prefix: str = "topic") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def broker(channel):
    return broker_pb2_grpc.BrokerStub(channel)


def create(broker, name, partitions=1, **fields):
    return broker.CreateTopic(broker_pb2.CreateTopicRequest(name=name, partitions=partitions, **fields), timeout=10)


def status_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def test_create_then_describe(broker):
    name = unique()
    created = create(broker, name, partitions=3, configs={"retention.ms": "3600000"}).topic
    assert created.name == name and created.partition_count == 3 and created.topic_id
    assert created.replication_factor == 1
    assert created.configs["retention.ms"] == "3600000"
    assert created.configs["max.message.bytes"] == "1048576"  # defaults are listed too

    described = broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=name), timeout=10).topic
    assert described.topic_id == created.topic_id
    assert [p.partition for p in described.partitions] == [0, 1, 2]
    for partition in described.partitions:
        assert partition.log_start_offset == 0 and partition.log_end_offset == 0


def test_list_includes_created_topics(broker):
    names = {unique("listed") for _ in range(3)}
    for name in names:
        create(broker, name)
    listed = {t.name for t in broker.ListTopics(broker_pb2.ListTopicsRequest(), timeout=10).topics}
    assert names <= listed


def test_validate_only_does_not_create(broker):
    name = unique()
    answer = create(broker, name, partitions=2, validate_only=True).topic
    assert answer.name == name and answer.partition_count == 2
    assert status_of(lambda: broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=name), timeout=10)) \
        == grpc.StatusCode.NOT_FOUND


def test_create_twice_is_already_exists(broker):
    name = unique()
    create(broker, name)
    assert status_of(lambda: create(broker, name)) == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize("bad_name", ["", ".", "..", "has space", "slash/name", "x" * 250, "ünïcode"])
def test_bad_names_are_invalid_argument(broker, bad_name):
    assert status_of(lambda: create(broker, bad_name)) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "fields",
    [
        {"partitions": 0},
        {"configs": {"no.such.setting": "1"}},
        {"configs": {"retention.ms": "not a number"}},
        {"configs": {"cleanup.policy": "compact"}},
    ],
    ids=["zero-partitions", "unknown-setting", "bad-number", "unsupported-policy"],
)
def test_bad_create_requests_are_invalid_argument(broker, fields):
    fields = {"partitions": 1, **fields}
    assert status_of(lambda: create(broker, unique(), **fields)) == grpc.StatusCode.INVALID_ARGUMENT


def test_alter_config_sets_and_resets(broker):
    name = unique()
    default = create(broker, name).topic.configs["retention.ms"]
    altered = broker.AlterTopicConfig(
        broker_pb2.AlterTopicConfigRequest(name=name, set={"retention.ms": "60000", "segment.bytes": "1048576"}),
        timeout=10,
    ).topic
    assert altered.configs["retention.ms"] == "60000" and altered.configs["segment.bytes"] == "1048576"
    reset = broker.AlterTopicConfig(
        broker_pb2.AlterTopicConfigRequest(name=name, reset=["retention.ms"]), timeout=10
    ).topic
    assert reset.configs["retention.ms"] == default and reset.configs["segment.bytes"] == "1048576"


def test_alter_errors(broker):
    name = unique()
    create(broker, name)
    assert status_of(lambda: broker.AlterTopicConfig(
        broker_pb2.AlterTopicConfigRequest(name=unique(), set={"retention.ms": "1"}), timeout=10)) \
        == grpc.StatusCode.NOT_FOUND
    assert status_of(lambda: broker.AlterTopicConfig(
        broker_pb2.AlterTopicConfigRequest(name=name, set={"no.such.setting": "1"}), timeout=10)) \
        == grpc.StatusCode.INVALID_ARGUMENT


def test_create_partitions_grows_only(broker):
    name = unique()
    create(broker, name, partitions=2)
    grown = broker.CreatePartitions(broker_pb2.CreatePartitionsRequest(name=name, total_count=5), timeout=10).topic
    assert grown.partition_count == 5
    described = broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=name), timeout=10).topic
    assert [p.partition for p in described.partitions] == [0, 1, 2, 3, 4]
    for fewer_or_same in (5, 3):
        assert status_of(lambda: broker.CreatePartitions(
            broker_pb2.CreatePartitionsRequest(name=name, total_count=fewer_or_same), timeout=10)) \
            == grpc.StatusCode.INVALID_ARGUMENT
    assert status_of(lambda: broker.CreatePartitions(
        broker_pb2.CreatePartitionsRequest(name=unique(), total_count=9), timeout=10)) == grpc.StatusCode.NOT_FOUND


def test_delete(broker):
    name = unique()
    first_id = create(broker, name).topic.topic_id
    broker.DeleteTopic(broker_pb2.DeleteTopicRequest(name=name), timeout=10)
    assert status_of(lambda: broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=name), timeout=10)) \
        == grpc.StatusCode.NOT_FOUND
    assert name not in {t.name for t in broker.ListTopics(broker_pb2.ListTopicsRequest(), timeout=10).topics}
    assert status_of(lambda: broker.DeleteTopic(broker_pb2.DeleteTopicRequest(name=name), timeout=10)) \
        == grpc.StatusCode.NOT_FOUND
    # Re-created under the same name, it is a different topic.
    assert create(broker, name).topic.topic_id != first_id


def test_grpclib_admin_round_trip(server):
    name = unique("grpclib")

    async def main():
        channel = grpclib.client.Channel(server.host, server.port)
        try:
            stub = broker_grpc.BrokerStub(channel)
            created = await stub.CreateTopic(broker_pb2.CreateTopicRequest(name=name, partitions=2), timeout=10)
            described = await stub.DescribeTopic(broker_pb2.DescribeTopicRequest(name=name), timeout=10)
            await stub.DeleteTopic(broker_pb2.DeleteTopicRequest(name=name), timeout=10)
            return created.topic, described.topic
        finally:
            channel.close()

    created, described = asyncio.run(main())
    assert created.topic_id == described.topic_id and described.partition_count == 2


def test_topic_metadata_survives_a_restart(make_server):
    server = make_server()

    def stub():
        return broker_pb2_grpc.BrokerStub(grpc.insecure_channel(server.target))

    kept, altered, grown, deleted = unique("kept"), unique("altered"), unique("grown"), unique("deleted")
    broker = stub()
    before = {name: create(broker, name, partitions=2, configs={"retention.bytes": "1000000"}).topic
              for name in (kept, altered, grown, deleted)}
    broker.AlterTopicConfig(broker_pb2.AlterTopicConfigRequest(name=altered, set={"retention.ms": "120000"}),
                            timeout=10)
    broker.CreatePartitions(broker_pb2.CreatePartitionsRequest(name=grown, total_count=4), timeout=10)
    broker.DeleteTopic(broker_pb2.DeleteTopicRequest(name=deleted), timeout=10)

    for restart in range(2):
        server.restart()
        broker = stub()
        listed = {t.name for t in broker.ListTopics(broker_pb2.ListTopicsRequest(), timeout=10).topics}
        assert {kept, altered, grown} <= listed and deleted not in listed, f"after restart {restart + 1}"
        for name in (kept, altered, grown):
            topic = broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=name), timeout=10).topic
            assert topic.topic_id == before[name].topic_id
            assert topic.configs["retention.bytes"] == "1000000"
        assert broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=kept), timeout=10).topic.partition_count == 2
        assert broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=grown), timeout=10).topic.partition_count == 4
        assert broker.DescribeTopic(
            broker_pb2.DescribeTopicRequest(name=altered), timeout=10).topic.configs["retention.ms"] == "120000"


def test_sigterm_exits_cleanly(make_server):
    server = make_server()
    create(broker_pb2_grpc.BrokerStub(grpc.insecure_channel(server.target)), unique())
    assert server.stop() == 0, server.log_tail()
