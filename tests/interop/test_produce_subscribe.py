"""Produce and Subscribe from Python with nothing but grpcio stubs generated from proto/,
the documented CRC32C and Kafka's murmur2 partitioning (docs/partitioning.md): the
polyglot-client promise. Both rules are implemented here from scratch and checked against
docs/test-vectors.json first; then keyed records are produced through the Produce stream
and read back with Subscribe, and bad input gets its documented answer.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import time
import uuid

import grpc
import pytest
from conftest import REPO, wait_for
from rawh2 import H2Client, grpc_frame, grpc_messages
from sluice.v1 import broker_pb2, broker_pb2_grpc, records_pb2

VECTORS = json.loads((REPO / "docs" / "test-vectors.json").read_text(encoding="utf-8"))
# A bound on any one wait for the broker's answers, not a timing assumption.
BOUND_S = 30.0


# --- the two rules, from docs/partitioning.md -----------------------------------------

def murmur2(data: bytes) -> int:
    """Kafka's murmur2 as a signed 32-bit value."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    whole = len(data) & ~3
    for i in range(0, whole, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    rest = len(data) & 3
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(key: bytes, partition_count: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partition_count


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), table-driven, one byte at a time."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def make_batch(records: list[tuple[bytes | None, bytes]], first_ms: int | None = None) -> records_pb2.RecordBatch:
    """A RecordBatch from (key, value) pairs: serialize Records, CRC the bytes."""
    first_ms = int(time.time() * 1000) if first_ms is None else first_ms
    message = records_pb2.Records()
    for key, value in records:
        record = message.records.add(value=value)
        if key is not None:
            record.key = key
    payload = message.SerializeToString()
    return records_pb2.RecordBatch(
        format_version=1, record_count=len(records), first_timestamp_ms=first_ms, max_timestamp_ms=first_ms,
        records_crc32c=crc32c(payload), records=payload,
    )


def decode(batch: records_pb2.RecordBatch) -> list[tuple[int, bytes | None, bytes, int]]:
    """(offset, key, value, timestamp) of each record; checks the CRC first."""
    assert crc32c(batch.records) == batch.records_crc32c, "a served batch fails its CRC32C"
    message = records_pb2.Records.FromString(batch.records)
    assert len(message.records) == batch.record_count
    return [
        (batch.base_offset + i, record.key if record.HasField("key") else None, record.value,
         batch.first_timestamp_ms + record.timestamp_delta_ms)
        for i, record in enumerate(message.records)
    ]


# --- the vectors ----------------------------------------------------------------------

def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283 == VECTORS["crc32c"]["check"]["crc32c"]


@pytest.mark.parametrize("vector", VECTORS["keys"], ids=lambda v: v["key_hex"] or "empty")
def test_key_vectors(vector):
    key = bytes.fromhex(vector["key_hex"])
    assert murmur2(key) == vector["murmur2"]
    for count, partition in vector["partitions"].items():
        assert partition_for(key, int(count)) == partition


@pytest.mark.parametrize("vector", VECTORS["batches"], ids=lambda v: v["note"][:30])
def test_batch_vectors(vector):
    message = records_pb2.Records()
    for record in vector["records"]:
        added = message.records.add(
            timestamp_delta_ms=record["timestamp_delta_ms"], value=bytes.fromhex(record["value_hex"]))
        if record["key_hex"] is not None:
            added.key = bytes.fromhex(record["key_hex"])
        for header in record["headers"]:
            added.headers.add(key=header["key"], value=bytes.fromhex(header["value_hex"]))
    payload = message.SerializeToString()
    assert payload.hex() == vector["records_bytes_hex"]
    assert crc32c(payload) == vector["records_crc32c"]
    assert records_pb2.Records.FromString(bytes.fromhex(vector["records_bytes_hex"])) == message


def test_vectors_file_matches_its_generator():
    """docs/test-vectors.json is exactly what scripts/make-test-vectors.py writes."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(REPO / "scripts" / "make-test-vectors.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_docs_table_matches_the_vectors():
    """Every row of the key table in docs/partitioning.md agrees with the JSON file."""
    text = (REPO / "docs" / "partitioning.md").read_text(encoding="utf-8")
    by_hex = {v["key_hex"]: v for v in VECTORS["keys"]}
    rows = re.findall(r"^\| [^|]+ \| `([0-9a-f]*)` \| (-?\d+) \| (\d+) \| (\d+) \|$", text, re.MULTILINE)
    assert len(rows) >= 10
    for key_hex, hash_, of3, of12 in rows:
        vector = by_hex[key_hex]
        assert (vector["murmur2"], vector["partitions"]["3"], vector["partitions"]["12"]) == (int(hash_), int(of3), int(of12))


# --- against a real broker -------------------------------------------------------------

def unique(prefix: str = "ps") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def broker(channel):
    return broker_pb2_grpc.BrokerStub(channel)


class ProduceStream:
    """A Produce call fed from a queue, so requests and answers interleave."""

    def __init__(self, broker):
        self._requests: queue.Queue = queue.Queue()
        self._responses = broker.Produce(iter(self._requests.get, None), timeout=BOUND_S * 4)
        self._next_id = 1

    def send(self, topic, partition, batch, acks=broker_pb2.ACKS_ALL) -> int:
        correlation = self._next_id
        self._next_id += 1
        self._requests.put(broker_pb2.ProduceRequest(
            correlation_id=correlation, topic=topic, partition=partition, acks=acks, batch=batch))
        return correlation

    def answer(self) -> broker_pb2.ProduceResponse:
        return next(self._responses)

    def close(self):
        self._requests.put(None)
        assert list(self._responses) == []


def produce_one(broker, topic, partition, batch) -> broker_pb2.ProduceResponse:
    stream = ProduceStream(broker)
    stream.send(topic, partition, batch)
    answer = stream.answer()
    stream.close()
    return answer


def subscribe(broker, topic, partitions: dict[int, broker_pb2.StartPosition], want: int):
    """Reads until `want` records arrived (bounded), then cancels; returns them per partition."""
    request = broker_pb2.SubscribeRequest(
        topic=topic,
        partitions=[broker_pb2.PartitionSubscription(partition=p, start=s) for p, s in partitions.items()])
    call = broker.Subscribe(request, timeout=BOUND_S)
    seen: dict[int, list] = {p: [] for p in partitions}
    total = 0
    try:
        for response in call:
            for batch in response.batches:
                records = decode(batch)
                seen[response.partition] += records
                total += len(records)
            if total >= want:
                break
    finally:
        call.cancel()
    return seen


def earliest():
    return broker_pb2.StartPosition(earliest=True)


def test_produce_keyed_records_and_subscribe_them_back(broker):
    topic = unique()
    partitions = 3
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=partitions), timeout=10)
    keys = [f"user-{i}".encode() for i in range(12)]
    sent: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(partitions)}
    stream = ProduceStream(broker)
    expected_ids = []
    # 5 rounds of one batch per partition, pipelined on one stream.
    for round_ in range(5):
        per_partition: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(partitions)}
        for key in keys:
            per_partition[partition_for(key, partitions)].append((key, f"{key.decode()}:{round_}".encode()))
        for partition, records in per_partition.items():
            if records:
                expected_ids.append((stream.send(topic, partition, make_batch(records)), partition, len(records)))
                sent[partition] += records
    next_offset = {p: 0 for p in range(partitions)}
    for correlation, partition, count_ in expected_ids:
        answer = stream.answer()
        assert answer.correlation_id == correlation, "answers come in request order"
        assert answer.error == broker_pb2.ERROR_CODE_NONE, answer.error_message
        assert (answer.topic, answer.partition, answer.base_offset) == (topic, partition, next_offset[partition])
        next_offset[partition] += count_
    stream.close()

    total = sum(len(v) for v in sent.values())
    seen = subscribe(broker, topic, {p: earliest() for p in range(partitions)}, total)
    for partition in range(partitions):
        assert [(k, v) for _, k, v, _ in seen[partition]] == sent[partition]
        assert [o for o, _, _, _ in seen[partition]] == list(range(len(sent[partition])))
        for _, key, _, _ in seen[partition]:
            assert partition_for(key, partitions) == partition

    described = broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=topic), timeout=10).topic
    assert [p.log_end_offset for p in described.partitions] == [len(sent[p]) for p in range(partitions)]


def test_subscribe_by_offset_and_timestamp(broker):
    topic = unique()
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)
    stream = ProduceStream(broker)
    base_ms = 1_700_000_000_000
    for index in range(4):
        stream.send(topic, 0, make_batch([(None, f"b{index}r{r}".encode()) for r in range(3)], first_ms=base_ms + index * 1000))
    for _ in range(4):
        assert stream.answer().error == broker_pb2.ERROR_CODE_NONE
    stream.close()
    # Offset 7 is inside the third batch (offsets 6-8): the broker starts at its first record.
    by_offset = subscribe(broker, topic, {0: broker_pb2.StartPosition(offset=7)}, 5)[0]
    assert by_offset[0][0] == 6 and [o for o, *_ in by_offset if o >= 7][:5] == [7, 8, 9, 10, 11]
    by_time = subscribe(broker, topic, {0: broker_pb2.StartPosition(timestamp_ms=base_ms + 1500)}, 3)[0]
    assert by_time[0][0] == 6, "the first record at or after the time is in the third batch"


def test_bad_batches_get_their_error_and_the_stream_goes_on(broker):
    topic = unique()
    broker.CreateTopic(broker_pb2.CreateTopicRequest(
        name=topic, partitions=2, configs={"max.message.bytes": "1024"}), timeout=10)
    good = make_batch([(b"k", b"v")])
    corrupt = make_batch([(b"k", b"v")])
    corrupt.records_crc32c ^= 1
    empty = records_pb2.RecordBatch(format_version=1, record_count=0, records=b"", records_crc32c=crc32c(b""))
    cases = [
        (unique("missing"), 0, good, broker_pb2.ERROR_CODE_UNKNOWN_TOPIC),
        (topic, 2, good, broker_pb2.ERROR_CODE_UNKNOWN_PARTITION),
        (topic, 0, make_batch([(None, b"x" * 2048)]), broker_pb2.ERROR_CODE_MESSAGE_TOO_LARGE),
        (topic, 0, corrupt, broker_pb2.ERROR_CODE_CORRUPT_BATCH),
        (topic, 0, empty, broker_pb2.ERROR_CODE_INVALID_BATCH),
        (topic, 0, good, broker_pb2.ERROR_CODE_NONE),
    ]
    stream = ProduceStream(broker)
    for name, partition, batch, _ in cases:
        stream.send(name, partition, batch)
    for name, partition, _, expected in cases:
        answer = stream.answer()
        assert answer.error == expected, f"{name}/{partition}: {answer.error} {answer.error_message}"
        if expected != broker_pb2.ERROR_CODE_NONE:
            assert answer.error_message
    stream.close()
    described = broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=topic), timeout=10).topic
    assert described.partitions[0].log_end_offset == 1, "only the good batch was appended"


@pytest.mark.parametrize("offset", [-1, 5])
def test_subscribe_out_of_range(broker, offset):
    topic = unique()
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)
    assert produce_one(broker, topic, 0, make_batch([(None, b"a"), (None, b"b")])).error == broker_pb2.ERROR_CODE_NONE
    call = broker.Subscribe(broker_pb2.SubscribeRequest(
        topic=topic, partitions=[broker_pb2.PartitionSubscription(partition=0, start=broker_pb2.StartPosition(offset=offset))]),
        timeout=BOUND_S)
    with pytest.raises(grpc.RpcError) as raised:
        for _ in call:
            pass
    assert raised.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_subscribe_unknown_topic_and_partition(broker):
    with pytest.raises(grpc.RpcError) as raised:
        list(broker.Subscribe(broker_pb2.SubscribeRequest(topic=unique("missing"), default_start=earliest()), timeout=BOUND_S))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    topic = unique()
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)
    with pytest.raises(grpc.RpcError) as raised:
        list(broker.Subscribe(broker_pb2.SubscribeRequest(
            topic=topic, partitions=[broker_pb2.PartitionSubscription(partition=3, start=earliest())]), timeout=BOUND_S))
    assert raised.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


def test_producer_that_disconnects_mid_batch_leaves_only_whole_batches(server, broker):
    """One whole batch, then half of a second gRPC message, then the TCP connection
    closes: the log keeps exactly the whole batch, and the topic keeps working."""
    topic = unique()
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)
    whole = broker_pb2.ProduceRequest(
        correlation_id=1, topic=topic, partition=0, acks=broker_pb2.ACKS_LEADER,
        batch=make_batch([(b"k", b"whole-1"), (b"k", b"whole-2")])).SerializeToString()
    cut = grpc_frame(broker_pb2.ProduceRequest(
        correlation_id=2, topic=topic, partition=0, acks=broker_pb2.ACKS_LEADER,
        batch=make_batch([(b"k", b"x" * 4000)])).SerializeToString())
    client = H2Client(server.host, server.port)
    stream = client.open_stream("/sluice.v1.Broker/Produce")
    client.send(stream, grpc_frame(whole))
    client.send(stream, cut[: len(cut) // 2])
    client.flush()
    # The first answer shows the whole batch was appended before the connection goes.
    deadline = time.monotonic() + BOUND_S
    while not grpc_messages(client.results[stream].data):
        assert time.monotonic() < deadline, "no answer for the whole batch"
        try:
            client.receive_once()
        except socket.timeout:
            continue
    answer = broker_pb2.ProduceResponse.FromString(grpc_messages(client.results[stream].data)[0])
    assert answer.error == broker_pb2.ERROR_CODE_NONE and answer.base_offset == 0
    client.close()

    def log_end():
        return broker.DescribeTopic(broker_pb2.DescribeTopicRequest(name=topic), timeout=10).topic.partitions[0].log_end_offset

    wait_for(lambda: log_end() == 2, BOUND_S, "the whole batch to be appended")
    assert produce_one(broker, topic, 0, make_batch([(None, b"after")])).base_offset == 2
    seen = subscribe(broker, topic, {0: earliest()}, 3)[0]
    assert [v for _, _, v, _ in seen] == [b"whole-1", b"whole-2", b"after"]


def test_subscriber_that_disconnects_mid_stream_does_not_disturb_others(broker):
    topic = unique()
    broker.CreateTopic(broker_pb2.CreateTopicRequest(name=topic, partitions=1), timeout=10)
    stream = ProduceStream(broker)
    for index in range(20):
        stream.send(topic, 0, make_batch([(None, f"r{index}".encode())]))
    for _ in range(20):
        assert stream.answer().error == broker_pb2.ERROR_CODE_NONE
    stream.close()
    # Read a few responses, then drop the call mid-stream.
    call = broker.Subscribe(broker_pb2.SubscribeRequest(
        topic=topic, default_start=earliest(), max_bytes=1), timeout=BOUND_S)
    first = next(call)
    assert first.batches and first.batches[0].base_offset == 0
    call.cancel()
    # Another subscriber reads everything, and new appends still flow.
    assert produce_one(broker, topic, 0, make_batch([(None, b"r20")])).base_offset == 20
    seen = subscribe(broker, topic, {0: earliest()}, 21)[0]
    assert [v for _, _, v, _ in seen] == [f"r{i}".encode() for i in range(21)]
