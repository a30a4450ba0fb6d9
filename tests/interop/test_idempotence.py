"""The idempotent producer checked by a client that trusts nothing of Sluice's own code:
raw grpcio stubs from proto/ (docs/idempotence.md). The same batch with the same
producer id, epoch and sequence is replayed several times, across a graceful restart
and a SIGKILL; a gap, a stale epoch, an unknown producer and a never-issued id get the
documented error codes; and the log, read back with Subscribe, holds each record once.
"""

from __future__ import annotations

import signal
import uuid

from sluice.v1 import broker_pb2, broker_pb2_grpc
from test_produce_subscribe import ProduceStream, decode, earliest, make_batch, subscribe

import conftest

NONE = broker_pb2.ERROR_CODE_NONE
OUT_OF_ORDER = broker_pb2.ERROR_CODE_OUT_OF_ORDER_SEQUENCE
FENCED = broker_pb2.ERROR_CODE_PRODUCER_FENCED
UNKNOWN_PRODUCER = broker_pb2.ERROR_CODE_UNKNOWN_PRODUCER_ID
REPLAYS = conftest.count("SLUICE_IDEMPOTENCE_REPLAYS", 3, 20)


def stub(server):
    return broker_pb2_grpc.BrokerStub(conftest.isolated_channel(server.target))


def idempotent(values: list[bytes], producer_id: int, epoch: int, sequence: int):
    batch = make_batch([(None, value) for value in values])
    batch.producer_id = producer_id
    batch.producer_epoch = epoch
    batch.base_sequence = sequence
    return batch


def produce_all(broker, topic: str, batches) -> list[broker_pb2.ProduceResponse]:
    """Sends every batch pipelined on one stream (acks all), returns the answers in order."""
    stream = ProduceStream(broker)
    for batch in batches:
        stream.send(topic, 0, batch)
    answers = [stream.answer() for _ in batches]
    stream.close()
    return answers


def stored_values(broker, topic: str) -> list[bytes]:
    end = broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=topic), timeout=10).topic.partitions[0].log_end_offset
    records = subscribe(broker, topic, {0: earliest()}, end)[0]
    assert [offset for offset, *_ in records] == list(range(end))
    return [value for _, _, value, _ in records]


def test_replays_across_restarts_are_stored_once_and_errors_are_the_documented_ones(make_server):
    server = make_server(extra_args=["--fsync", "always"])
    broker = stub(server)
    topic = f"idem-{uuid.uuid4().hex[:8]}"
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)
    identity = broker.InitProducerId(broker_pb2.InitProducerIdRequest(producer_name="py-producer"), timeout=10)
    pid, epoch = identity.producer_id, identity.producer_epoch
    assert pid >= 1 and epoch == 0

    # Three batches: sequences 0-1, 2-3, 4.
    batches = [
        idempotent([b"a0", b"a1"], pid, epoch, 0),
        idempotent([b"b0", b"b1"], pid, epoch, 2),
        idempotent([b"c0"], pid, epoch, 4),
    ]
    first = produce_all(broker, topic, batches)
    assert [(a.error, a.duplicate, a.base_offset) for a in first] == [(NONE, False, 0), (NONE, False, 2), (NONE, False, 4)]

    def replay_all():
        for _ in range(REPLAYS):
            answers = produce_all(broker, topic, batches)
            assert [(a.error, a.duplicate, a.base_offset) for a in answers] == [(NONE, True, 0), (NONE, True, 2), (NONE, True, 4)], \
                [a.error_message for a in answers]

    replay_all()
    server.restart()
    broker = stub(server)
    replay_all()
    # SIGKILL: no clean shutdown, no snapshot at close; state comes from the log.
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=conftest.SHUTDOWN_BOUND_S)
    server.process = None
    server.start()
    broker = stub(server)
    replay_all()

    # A gap: the next sequence is 5.
    gap = produce_all(broker, topic, [idempotent([b"gap"], pid, epoch, 7)])[0]
    assert gap.error == OUT_OF_ORDER and "expected sequence 5" in gap.error_message
    # Unknown to the partition and not starting at 0; an id never handed out.
    other = broker.InitProducerId(broker_pb2.InitProducerIdRequest(), timeout=10)
    assert other.producer_id > pid, "ids are never reused across restarts"
    assert produce_all(broker, topic, [idempotent([b"x"], other.producer_id, 0, 3)])[0].error == UNKNOWN_PRODUCER
    assert produce_all(broker, topic, [idempotent([b"x"], other.producer_id + 1000, 0, 0)])[0].error == UNKNOWN_PRODUCER
    # The same name again: same id, epoch + 1; the old epoch is fenced.
    again = broker.InitProducerId(broker_pb2.InitProducerIdRequest(producer_name="py-producer"), timeout=10)
    assert (again.producer_id, again.producer_epoch) == (pid, epoch + 1)
    stale = produce_all(broker, topic, [idempotent([b"d0"], pid, epoch, 5)])[0]
    assert stale.error == FENCED and stale.error_message
    fresh = produce_all(broker, topic, [idempotent([b"d0"], pid, again.producer_epoch, 0)])[0]
    assert (fresh.error, fresh.duplicate, fresh.base_offset) == (NONE, False, 5)

    assert stored_values(broker, topic) == [b"a0", b"a1", b"b0", b"b1", b"c0", b"d0"]


def test_stored_batches_carry_the_producer_fields(make_server):
    server = make_server()
    broker = stub(server)
    topic = f"idem-{uuid.uuid4().hex[:8]}"
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)
    identity = broker.InitProducerId(broker_pb2.InitProducerIdRequest(), timeout=10)
    assert produce_all(broker, topic, [idempotent([b"v"], identity.producer_id, 0, 0)])[0].error == NONE
    call = broker.Subscribe(broker_pb2.SubscribeRequest(
        topic=topic, partitions=[broker_pb2.PartitionSubscription(partition=0, start=earliest())]), timeout=30)
    try:
        batch = next(iter(call)).batches[0]
    finally:
        call.cancel()
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (identity.producer_id, 0, 0)
    assert [value for _, _, value, _ in decode(batch)] == [b"v"]
