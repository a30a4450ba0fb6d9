"""What the broker stores is what was sent, as a stock grpcio client sees it.

- A batch whose `record_count` is not the number of records in `records` is refused with
  INVALID_BATCH (offsets are assigned from the count: a lying batch would give two records
  one offset, or take offsets no record holds).
- One bit flipped in a stored batch header of a sealed segment, after a clean shutdown, is
  never served as a changed value: Subscribe serves the batch before it, then ends with
  DATA_LOSS naming the segment and the offset, and the broker logs it.
"""

from __future__ import annotations

import grpc
from test_produce_subscribe import BOUND_S, ProduceStream, broker, crc32c, earliest, make_batch, unique  # noqa: F401 (broker is a fixture)
from sluice.v1 import broker_pb2, broker_pb2_grpc, records_pb2

HEADER_SIZE = 64
# docs/storage-format.md: firstTimestamp is the 8 bytes at header offset 24.
FIRST_TIMESTAMP_LAST_BYTE = 24 + 7


def lying(records: list[tuple[bytes | None, bytes]], claimed: int) -> records_pb2.RecordBatch:
    batch = make_batch(records, first_ms=1_700_000_000_000)
    batch.record_count = claimed
    return batch


def test_a_batch_that_miscounts_its_records_is_refused(broker):
    topic = unique("count")
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)
    three = [(None, b"a"), (None, b"b"), (None, b"c")]
    stream = ProduceStream(broker)
    for batch, text in [
        (lying(three, 1), "record_count is 1 but records holds 3 records"),
        (lying(three[:2], 5), "record_count is 5 but records holds 2 records"),
    ]:
        stream.send(topic, 0, batch)
        answer = stream.answer()
        assert answer.error == broker_pb2.ERROR_CODE_INVALID_BATCH, answer
        assert text in answer.error_message
    # Nothing was taken: honest batches get offsets 0 and 3, and each record one offset.
    for expected in (0, 3):
        stream.send(topic, 0, lying(three, 3))
        answer = stream.answer()
        assert answer.error == broker_pb2.ERROR_CODE_NONE and answer.base_offset == expected, answer
    stream.close()
    call = broker.Subscribe(broker_pb2.SubscribeRequest(
        topic=topic, partitions=[broker_pb2.PartitionSubscription(partition=0, start=earliest())]), timeout=BOUND_S)
    offsets = []
    try:
        for response in call:
            for batch in response.batches:
                message = records_pb2.Records.FromString(batch.records)
                assert len(message.records) == batch.record_count
                offsets += [batch.base_offset + i for i in range(batch.record_count)]
            if len(offsets) >= 6:
                break
    finally:
        call.cancel()
    assert offsets == list(range(6))


def test_a_flipped_header_bit_in_a_sealed_segment_is_data_loss(make_server):
    server = make_server()
    topic = unique("dmg")
    with grpc.insecure_channel(server.target) as channel:
        broker = broker_pb2_grpc.BrokerStub(channel)
        broker.CreateTopic(broker_pb2.CreateTopicRequest(
            name=topic, partitions=1, configs={"segment.bytes": "1024"}), timeout=10)
        stream = ProduceStream(broker)
        sent = []
        for index in range(4):
            batch = make_batch([(None, bytes([97 + index]) * 250)], first_ms=1_700_000_000_000 + index)
            stream.send(topic, 0, batch)
            answer = stream.answer()
            assert answer.error == broker_pb2.ERROR_CODE_NONE and answer.base_offset == index, answer
            sent.append(batch)
        stream.close()
    assert server.stop() == 0

    (partition,) = (server.data_dir / "topics").glob(f"{topic}-*/0")
    segment = partition / "00000000000000000000.log"
    assert (partition / "00000000000000000003.log").exists(), "the first segment is sealed"
    data = bytearray(segment.read_bytes())
    second = HEADER_SIZE + len(sent[0].records)
    data[second + FIRST_TIMESTAMP_LAST_BYTE] ^= 0x01
    segment.write_bytes(bytes(data))

    server.start()
    with grpc.insecure_channel(server.target) as channel:
        broker = broker_pb2_grpc.BrokerStub(channel)
        call = broker.Subscribe(broker_pb2.SubscribeRequest(
            topic=topic, partitions=[broker_pb2.PartitionSubscription(partition=0, start=earliest())]),
            timeout=BOUND_S)
        served = []
        try:
            for response in call:
                served += list(response.batches)
                # Anything past offset 0 is the damaged batch (or one behind it) served.
                assert all(b.base_offset == 0 for b in served), [(b.base_offset, b.first_timestamp_ms) for b in served]
            raise AssertionError(f"the subscription ended without an error after {len(served)} batches")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.DATA_LOSS, error
            assert "00000000000000000000.log" in error.details(), error.details()
            assert "offset 1" in error.details(), error.details()
        assert [(b.base_offset, b.first_timestamp_ms, b.records) for b in served] == [
            (0, sent[0].first_timestamp_ms, sent[0].records)], "only the batch before the damage, unchanged"
        assert crc32c(served[0].records) == served[0].records_crc32c
    log = server.log_path.read_text(errors="replace")
    assert "the header of the batch at offset 1 is damaged" in log, server.log_tail()
