"""The Metadata RPC of a single node, through grpcio stubs generated from proto/: what a
Python client bootstraps from (docs/api.md, "Following partition leaders")."""

from __future__ import annotations

import uuid

from conftest import isolated_channel
from sluice.v1 import broker_pb2, broker_pb2_grpc

# A bound on any one call, not a timing assumption.
BOUND_S = 30.0


def test_single_node_metadata_names_itself_leader_of_every_partition(make_server):
    server = make_server(extra_args=["--broker-id", "5"])
    with isolated_channel(server.target) as channel:
        broker = broker_pb2_grpc.BrokerStub(channel)
        name = f"meta-{uuid.uuid4().hex[:12]}"
        broker.CreateTopic(broker_pb2.CreateTopicRequest(name=name, partitions=3), timeout=BOUND_S)

        every = broker.Metadata(broker_pb2.MetadataRequest(), timeout=BOUND_S)
        assert [(b.id, b.address, b.rack) for b in every.brokers] == [(5, server.target, "")]
        assert every.has_controller and every.controller_id == 5 and every.answered_by == 5
        assert every.cluster == "" and every.metadata_revision == 0
        # Internal topics (the consumer offsets log) are the broker's own.
        assert [t.name for t in every.topics] == [name]

        asked = broker.Metadata(broker_pb2.MetadataRequest(topics=[name, "no-such-topic"]), timeout=BOUND_S)
        topic, unknown = asked.topics
        assert topic.name == name and topic.error == broker_pb2.ERROR_CODE_NONE
        assert [(p.partition, p.leader_id, p.has_leader, p.leader_epoch, list(p.replicas), list(p.in_sync_replicas))
                for p in topic.partitions] == [(i, 5, True, 0, [5], [5]) for i in range(3)]
        assert unknown.name == "no-such-topic" and unknown.error == broker_pb2.ERROR_CODE_UNKNOWN_TOPIC
        assert "does not exist" in unknown.error_message and not unknown.partitions

        # The address Metadata gives is one a client can use: a produce there is led here.
        with isolated_channel(every.brokers[0].address) as leader_channel:
            leader = broker_pb2_grpc.BrokerStub(leader_channel)
            described = leader.DescribeTopic(broker_pb2.DescribeTopicRequest(name=name), timeout=BOUND_S).topic
            assert described.partition_count == 3


def test_a_long_unknown_name_gets_a_short_message(channel):
    name = "x" * 5000
    answer = broker_pb2_grpc.BrokerStub(channel).Metadata(broker_pb2.MetadataRequest(topics=[name]), timeout=BOUND_S)
    assert answer.topics[0].error == broker_pb2.ERROR_CODE_UNKNOWN_TOPIC
    assert len(answer.topics[0].error_message) < 200


def test_leader_router_produces_through_metadata(make_server):
    """docs/api.md's recipe, as tests/interop/leader_router.py codes it, bootstraps from a
    list whose first entry is not listening and produces to the leader Metadata names."""
    from leader_router import LeaderRouter
    from test_produce_subscribe import make_batch

    server = make_server()
    name = f"routed-{uuid.uuid4().hex[:12]}"
    with isolated_channel(server.target) as channel:
        broker_pb2_grpc.BrokerStub(channel).CreateTopic(broker_pb2.CreateTopicRequest(name=name, partitions=2), timeout=BOUND_S)
    # Port 1 on loopback: nothing listens there, so the router moves on to the next entry.
    router = LeaderRouter(["127.0.0.1:1", server.target])
    try:
        for partition in (0, 1, 1):
            answer = router.produce(broker_pb2.ProduceRequest(
                correlation_id=partition, topic=name, partition=partition, acks=broker_pb2.ACKS_ALL,
                batch=make_batch([(None, b"v")])), delivery_timeout_s=BOUND_S)
            assert answer.error == broker_pb2.ERROR_CODE_NONE, answer.error_message
        assert answer.base_offset == 1
        assert router.metadata is not None and router.answered_at == server.target
    finally:
        router.close()
