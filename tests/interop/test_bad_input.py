"""Bad input: each case checks the server's answer, then that the server process is
alive and that both a connection opened before the attack and a new one still pass a
health Check. The attacks run against a server of their own so that the rest of the
suite never shares a process with a flood.

Bounds (docs/testing.md): every loop is bounded in count and in time; SLUICE_SOAK=1 or
the SLUICE_* variables named at each loop raise the counts.
"""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import time

import grpc
import hpack
import pytest
from conftest import (
    SluiceServer,
    count,
    health_check,
    isolated_channel,
    rss_bytes,
    soak,
    wait_for,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from rawh2 import (
    ENHANCE_YOUR_CALM,
    REFUSED_STREAM,
    H2Client,
    RawFrames,
    goaway_codes,
    grpc_frame,
    grpc_headers,
    max_concurrent_streams,
)
from sluice.test.v1 import echo_pb2, echo_pb2_grpc
from stacks import INTERNAL, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNIMPLEMENTED

SERVING = health_pb2.HealthCheckResponse.SERVING
MIB = 1024 * 1024
# Growth of the server's resident memory any single attack may cause. The attacks offer
# far more than this (gigabytes of unread responses, tens of thousands of streams), so
# a server without limits crosses it; a bounded one stays well below.
RSS_GROWTH_BOUND = 64 * MIB
# GOAWAY codes a server may close an abusive connection with.
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR = 0x0, 0x1, 0x2
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
FLOOD_SECONDS = 60.0 if soak() else 10.0
# The victim's --max-concurrent-streams (the documented default, given explicitly).
STREAM_CAP = 100


@pytest.fixture(scope="module")
def victim(binary, tmp_path_factory):
    base = tmp_path_factory.mktemp("victim")
    server = SluiceServer(
        binary, base / "data", base / "server.log", ["--max-concurrent-streams", str(STREAM_CAP)]
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bystander(victim):
    """A connection opened before the attack, checked after it."""
    with isolated_channel(victim.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING
        yield stub


def assert_still_serving(server: SluiceServer, bystander) -> None:
    assert server.alive(), f"the server died:\n{server.log_tail()}"
    assert bystander.Check(health_pb2.HealthCheckRequest(), timeout=10).status == SERVING
    assert health_check(server.target, timeout=10) == SERVING, "a new connection's health Check failed"


def echo_stats(server: SluiceServer):
    with isolated_channel(server.target) as channel:
        return echo_pb2_grpc.EchoStub(channel).Stats(echo_pb2.StatsRequest(), timeout=5)


def wait_for_idle_handlers(server: SluiceServer, bound_s: float = 30.0) -> None:
    wait_for(lambda: echo_stats(server).handlers_active == 0, bound_s, "every Echo handler to end")


def read_until_closed(sock: socket.socket, bound_s: float) -> tuple[bytes, bool]:
    """What the server sends until it closes the connection or bound_s passes."""
    received = b""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            return received, True
        if not data:
            return received, True
        received += data
    return received, False


def echo_body(**fields) -> bytes:
    return grpc_frame(echo_pb2.EchoRequest(**fields).SerializeToString())


# --- Bytes that are not HTTP/2 ---------------------------------------------------------


def test_random_bytes_close_the_connection(victim, bystander):
    connections = count("SLUICE_BAD_INPUT_RANDOM_CONNECTIONS", 20, 500)
    seed = int(os.environ.get("SLUICE_SEED", "20261125"))
    rng = random.Random(seed)
    deadline = time.monotonic() + FLOOD_SECONDS * 3
    for index in range(connections):
        if time.monotonic() > deadline:
            break
        # At least a preface's length, so the server has enough bytes to reject.
        garbage = rng.randbytes(rng.randint(24, 64 * 1024))
        with socket.create_connection((victim.host, victim.port), timeout=10) as sock:
            try:
                sock.sendall(garbage)
            except (BrokenPipeError, ConnectionResetError):
                continue  # closed while we were still writing: the answer we want
            _, closed = read_until_closed(sock, 10)
            assert closed, f"connection {index} (seed {seed}) left open after {len(garbage)} random bytes"
    assert_still_serving(victim, bystander)


def test_http1_request_is_refused(victim, bystander):
    with socket.create_connection((victim.host, victim.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n")
        received, closed = read_until_closed(sock, 15)
    assert closed, "an HTTP/1.1 request left the connection open"
    # Either nothing, an HTTP/1.1 error response, or an HTTP/2 GOAWAY: never a 2xx.
    assert not received.startswith(b"HTTP/1.1 2"), received[:200]
    assert_still_serving(victim, bystander)


# --- Well-formed HTTP/2, wrong gRPC ------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", ""])
def test_wrong_content_type(victim, bystander, content_type):
    with H2Client(victim.host, victim.port) as client:
        result = client.call(HEALTH_CHECK, grpc_frame(b""), content_type=content_type)
    # gRPC over HTTP/2: a server SHOULD answer 415 Unsupported Media Type; a gRPC error
    # status is the other accepted answer. Never a successful call.
    assert result.http_status == 415 or (result.http_status == 200 and result.grpc_status not in (None, 0)), result
    assert_still_serving(victim, bystander)


@pytest.mark.parametrize("path", ["/no.such.Service/Get", "/sluice.test.v1.Echo/NoSuchMethod", "/", "/x"])
def test_unknown_service_or_method_is_unimplemented(victim, bystander, path):
    with H2Client(victim.host, victim.port) as client:
        result = client.call(path, grpc_frame(b""))
    assert result.http_status == 200 and result.grpc_status == UNIMPLEMENTED, result
    with isolated_channel(victim.target) as channel:
        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as raised:
            call(b"", timeout=10)
        if path.count("/") == 2:
            assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert_still_serving(victim, bystander)


@pytest.mark.parametrize(
    "body",
    [struct.pack(">BI", 0, 100) + b"0123456789", b"\x00\x00\x00", struct.pack(">BI", 0, 10)],
    ids=["prefix-100-then-10-bytes", "partial-prefix", "prefix-10-then-nothing"],
)
def test_truncated_message_is_an_error_not_a_hang(victim, bystander, body):
    with H2Client(victim.host, victim.port) as client:
        result = client.call("/sluice.test.v1.Echo/Get", body, bound_s=15)
    assert result.grpc_status == INTERNAL, result
    assert_still_serving(victim, bystander)


@pytest.mark.parametrize("length", [0xFFFFFFFF, 4 * MIB + 1, 64 * MIB])
@pytest.mark.parametrize("path", ["/sluice.test.v1.Echo/Get", "/sluice.v1.Broker/CreateTopic"])
def test_oversized_length_prefix_is_resource_exhausted(victim, bystander, length, path):
    before = rss_bytes(victim.pid)
    with H2Client(victim.host, victim.port) as client:
        # The prefix alone, plus a few bytes, and the stream left open: the server must
        # refuse from the prefix, without waiting for (or allocating) the message.
        stream = client.request(path, struct.pack(">BI", 0, length) + b"0123456789", end_stream=False)
        result = client.wait(stream, bound_s=15)
    assert result.grpc_status == RESOURCE_EXHAUSTED, result
    assert rss_bytes(victim.pid) - before < RSS_GROWTH_BOUND
    assert_still_serving(victim, bystander)


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", b"\x0a\x10abc", b"\x0f", b"\x08"],
    ids=["endless-varint", "length-past-end", "group-wire-type", "varint-missing"],
)
@pytest.mark.parametrize("path", ["/sluice.v1.Broker/CreateTopic", "/sluice.v1.Broker/DescribeTopic"])
def test_invalid_protobuf_is_invalid_argument(victim, bystander, path, payload):
    with H2Client(victim.host, victim.port) as client:
        result = client.call(path, grpc_frame(payload))
    assert result.grpc_status == INVALID_ARGUMENT, result
    with isolated_channel(victim.target) as channel:
        call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as raised:
            call(payload, timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_still_serving(victim, bystander)


# --- Resource attacks --------------------------------------------------------------------


def test_client_that_never_reads_keeps_server_memory_bounded(victim, bystander):
    """Streams of large responses with the flow-control windows wide open and a socket
    that is never read: only the server's bounded send queue stands between it and
    gigabytes of buffered responses."""
    connections = count("SLUICE_NEVER_READ_CONNECTIONS", 1, 4)
    samples = count("SLUICE_NEVER_READ_SAMPLES", 30, 300)
    payload = 64 * 1024
    REPEAT = 5_000
    wait_for_idle_handlers(victim)
    baseline = rss_bytes(victim.pid)
    clients = []
    try:
        opened = 0
        for _ in range(connections):
            raw = RawFrames(victim.host, victim.port, timeout_s=10)
            raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            clients.append(raw)
            settings = raw.handshake({SettingsFrame.INITIAL_WINDOW_SIZE: 2**31 - 1})
            # The connection window too: nothing but TCP and the server's queue limits it.
            assert raw.send(WindowUpdateFrame(0, window_increment=2**31 - 1 - 65535).serialize())
            streams = min(max_concurrent_streams(settings) or STREAM_CAP, STREAM_CAP)
            block = raw.header_block(grpc_headers(victim.host, victim.port, "/sluice.test.v1.Echo/Expand"))
            # 5,000 x 64 KiB = 312 MiB offered per stream. (Echo materialises `repeat` texts
            # up front, 16 bytes each, so a much larger `repeat` measures the test service.)
            body = echo_body(text="x", repeat=REPEAT, payload_bytes=payload)
            frames = b""
            for index in range(streams):
                stream_id = 1 + 2 * index
                frames += HeadersFrame(stream_id, data=block, flags=["END_HEADERS"]).serialize()
                frames += DataFrame(stream_id, data=body, flags=["END_STREAM"]).serialize()
                # Re-encoding is stateful (HPACK's dynamic table); each block is sent once.
                block = raw.header_block(grpc_headers(victim.host, victim.port, "/sluice.test.v1.Echo/Expand"))
            assert raw.send(frames)
            opened += streams
        wait_for(lambda: echo_stats(victim).handlers_active >= opened, 30, f"{opened} Expand handlers to run")
        offered = opened * REPEAT * payload
        peak = baseline
        for _ in range(samples):
            peak = max(peak, rss_bytes(victim.pid))
            # Sampling interval, not a synchronisation: the bound holds at every sample.
            time.sleep(0.1)
        # Each blocked stream legitimately holds its next response (a few copies: the
        # handler's message, its encoding, the framed bytes) and its state; what must not
        # happen is growth with the offered bytes. Hence a bound per connection of streams.
        bound = RSS_GROWTH_BOUND * connections
        assert peak - baseline < bound, (
            f"RSS grew {(peak - baseline) / MIB:.1f} MiB (bound {bound / MIB:.0f} MiB) "
            f"with {opened} unread streams offering {offered / 2**30:.0f} GiB"
        )
    finally:
        for raw in clients:
            raw.close()
    # Closing the connections ends every handler that was blocked on backpressure.
    wait_for_idle_handlers(victim)
    assert_still_serving(victim, bystander)


def test_streams_opened_and_reset_in_a_tight_loop(victim, bystander):
    limit = count("SLUICE_RAPID_RESET_STREAMS", 20_000, 200_000)
    wait_for_idle_handlers(victim)
    baseline = rss_bytes(victim.pid)
    body = echo_body(text="reset me", delay_ms=120_000)
    deadline = time.monotonic() + FLOOD_SECONDS
    sent = 0
    with H2Client(victim.host, victim.port, timeout_s=10) as client:
        while sent < limit and time.monotonic() < deadline and not client.closed and client.goaway_code is None:
            for _ in range(100):
                stream_id = client.conn.get_next_available_stream_id()
                client.conn.send_headers(stream_id, grpc_headers(victim.host, victim.port, "/sluice.test.v1.Echo/Get"))
                client.conn.send_data(stream_id, body)
                client.conn.reset_stream(stream_id, error_code=0x8)
                sent += 1
            client.flush()
            if select.select([client.sock], [], [], 0)[0]:
                client.receive_once()
        # Either the connection survived the churn, or the server ended it as abusive.
        # nghttp2's Rapid Reset limit (CVE-2023-44487 fix) terminates the session with
        # INTERNAL_ERROR once resets outpace its token bucket.
        if client.closed or client.goaway_code is not None:
            assert client.goaway_code in (None, NO_ERROR, INTERNAL_ERROR, ENHANCE_YOUR_CALM, PROTOCOL_ERROR), \
                client.goaway_code
    assert sent > 0
    # Every handler of a reset stream was cancelled: none is left running.
    wait_for_idle_handlers(victim)
    assert rss_bytes(victim.pid) - baseline < RSS_GROWTH_BOUND
    assert_still_serving(victim, bystander)


def _flood(victim, frame: bytes, limit: int, marker_frame: bytes, is_marker_ack):
    """Writes `frame` up to `limit` times (or FLOOD_SECONDS) without reading, then checks
    the connection: either still answering (the marker's ACK arrives) or closed with a
    GOAWAY that names the abuse."""
    baseline = rss_bytes(victim.pid)
    chunk = frame * 1000
    sent = 0
    deadline = time.monotonic() + FLOOD_SECONDS
    with RawFrames(victim.host, victim.port, timeout_s=10) as raw:
        raw.handshake()
        raw.sock.settimeout(2)
        while sent < limit and time.monotonic() < deadline:
            if not raw.send(chunk):
                break
            sent += 1000
        peak = rss_bytes(victim.pid)
        answered = False
        frames = []
        if not raw.closed and raw.send(marker_frame):
            # Everything the server queued comes first; read it all, bounded in time.
            end = time.monotonic() + 30
            while time.monotonic() < end and not raw.closed and not answered:
                frames.extend(raw.read_frames(1))
                answered = any(is_marker_ack(f) for f in frames)
        if not answered:
            frames.extend(raw.read_until_closed(2)[0])
        codes = goaway_codes(frames)
        assert answered or raw.closed or codes, "flooded connection neither answered nor closed"
        for code in codes:
            assert code in (NO_ERROR, ENHANCE_YOUR_CALM, PROTOCOL_ERROR), f"GOAWAY code {code}"
    assert sent > 0
    assert peak - baseline < RSS_GROWTH_BOUND
    return answered


def test_ping_flood(victim, bystander):
    marker = b"sluice!!"
    _flood(
        victim,
        PingFrame(0, opaque_data=b"\x00" * 8).serialize(),
        count("SLUICE_PING_FLOOD_FRAMES", 200_000, 2_000_000),
        PingFrame(0, opaque_data=marker).serialize(),
        lambda f: isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == marker,
    )
    assert_still_serving(victim, bystander)


def test_settings_flood(victim, bystander):
    marker = b"settled!"
    _flood(
        victim,
        SettingsFrame(0, settings={SettingsFrame.MAX_CONCURRENT_STREAMS: 100}).serialize(),
        count("SLUICE_SETTINGS_FLOOD_FRAMES", 100_000, 1_000_000),
        PingFrame(0, opaque_data=marker).serialize(),
        lambda f: isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == marker,
    )
    assert_still_serving(victim, bystander)


def test_endless_continuation_frames_are_cut_off(victim, bystander):
    limit = count("SLUICE_CONTINUATION_FRAMES", 4096, 65536)
    # One literal header field without indexing (RFC 7541 6.2.2), 109 bytes, 150 per frame.
    field = b"\x00\x06x-junk\x64" + b"a" * 100
    fragment = field * 150
    refused = False
    sent = 0
    deadline = time.monotonic() + FLOOD_SECONDS
    with RawFrames(victim.host, victim.port, timeout_s=10) as raw:
        raw.handshake()
        first = raw.header_block(grpc_headers(victim.host, victim.port, "/sluice.test.v1.Echo/Get"))
        assert raw.send(HeadersFrame(1, data=first).serialize())
        continuation = ContinuationFrame(1, data=fragment).serialize()
        while sent < limit and time.monotonic() < deadline:
            if not raw.send(continuation * 16):
                refused = True
                break
            sent += 16
            if select.select([raw.sock], [], [], 0)[0]:
                frames = raw.read_frames(0.05)
                if raw.closed or goaway_codes(frames) or any(isinstance(f, RstStreamFrame) for f in frames):
                    refused = True
                    break
        if not refused:
            frames, closed = raw.read_until_closed(5)
            refused = closed or bool(goaway_codes(frames)) or any(isinstance(f, RstStreamFrame) for f in frames)
    assert refused, f"{sent} CONTINUATION frames ({sent * len(fragment) / MIB:.0f} MiB of headers) accepted"
    assert_still_serving(victim, bystander)


def test_more_streams_than_the_cap_are_refused(victim, bystander):
    extra = 10
    wait_for_idle_handlers(victim)
    with RawFrames(victim.host, victim.port, timeout_s=10) as raw:
        settings = raw.handshake()
        # The server may advertise its cap, or a higher hard limit and refuse above the
        # cap itself; either way streams above the configured cap must be refused alone.
        advertised = max_concurrent_streams(settings)
        assert advertised is None or advertised >= STREAM_CAP, f"SETTINGS_MAX_CONCURRENT_STREAMS {advertised}"
        cap = STREAM_CAP
        # Client-streaming calls with the request left open: each stays concurrent.
        frames = b""
        for index in range(cap + extra):
            block = raw.header_block(grpc_headers(victim.host, victim.port, "/sluice.test.v1.Echo/Collect"))
            frames += HeadersFrame(1 + 2 * index, data=block, flags=["END_HEADERS"]).serialize()
        assert raw.send(frames)
        refused: set[int] = set()
        other_resets: dict[int, int] = {}
        end = time.monotonic() + 15
        while len(refused) < extra and time.monotonic() < end and not raw.closed:
            for frame in raw.read_frames(0.5):
                if isinstance(frame, RstStreamFrame):
                    if frame.error_code == REFUSED_STREAM:
                        refused.add(frame.stream_id)
                    else:
                        other_resets[frame.stream_id] = frame.error_code
                assert not isinstance(frame, GoAwayFrame), f"GOAWAY {frame.error_code} instead of REFUSED_STREAM"
        assert refused == {1 + 2 * index for index in range(cap, cap + extra)}, (refused, other_resets)
        assert not other_resets
        # The streams under the cap still work: finish one and read its answer.
        assert raw.send(DataFrame(1, data=echo_body(text="under the cap"), flags=["END_STREAM"]).serialize())
        answered = False
        end = time.monotonic() + 15
        while not answered and time.monotonic() < end and not raw.closed:
            for frame in raw.read_frames(0.5):
                if isinstance(frame, HeadersFrame) and frame.stream_id == 1 and "END_STREAM" in frame.flags:
                    answered = True
        assert answered, "the first stream never completed"
    wait_for_idle_handlers(victim)
    assert_still_serving(victim, bystander)


def test_a_flood_of_headers_is_refused_stream_by_stream(victim, bystander):
    """Thousands of HEADERS opened at once (RFC 9113 §5.1.2, §6.8): every stream above the
    cap is refused with REFUSED_STREAM, every other one completes with a status, and a
    GOAWAY, if the server sends one, names only streams it answered. It used to send 29
    refusals, then GOAWAY(PROTOCOL_ERROR), leaving hundreds of streams at or below its
    last-stream-id neither answered nor refused."""
    total = count("SLUICE_HEADERS_FLOOD_STREAMS", 2_000, 10_000)
    per_write = 500
    wait_for_idle_handlers(victim)
    decoder = hpack.Decoder()
    statuses: dict[int, int] = {}
    resets: dict[int, int] = {}
    goaways: list[GoAwayFrame] = []

    def take(frames) -> None:
        for frame in frames:
            if isinstance(frame, HeadersFrame):
                # Every block goes through the decoder, in order, to keep its table in step.
                fields = dict(decoder.decode(frame.data, raw=False))
                if "END_STREAM" in frame.flags and "grpc-status" in fields:
                    statuses.setdefault(frame.stream_id, int(fields["grpc-status"]))
            elif isinstance(frame, RstStreamFrame):
                if frame.stream_id not in statuses:
                    resets.setdefault(frame.stream_id, frame.error_code)
            elif isinstance(frame, GoAwayFrame):
                goaways.append(frame)

    stream_ids = [1 + 2 * index for index in range(total)]
    with RawFrames(victim.host, victim.port, timeout_s=10) as raw:
        raw.handshake()
        body = grpc_frame(health_pb2.HealthCheckRequest().SerializeToString())
        for start in range(0, total, per_write):
            chunk = b"".join(
                HeadersFrame(stream_id, data=raw.header_block(grpc_headers(victim.host, victim.port, HEALTH_CHECK)),
                             flags=["END_HEADERS"]).serialize()
                + DataFrame(stream_id, data=body, flags=["END_STREAM"]).serialize()
                for stream_id in stream_ids[start : start + per_write]
            )
            if not raw.send(chunk):
                break
            # What arrived so far, without waiting: the server's answers must not pile up.
            while not raw.closed and select.select([raw.sock], [], [], 0)[0]:
                take(raw.read_frames(0.05))
        end = time.monotonic() + 60
        while time.monotonic() < end and not raw.closed and len(statuses) + len(resets) < total:
            take(raw.read_frames(0.5))

    last = min((frame.last_stream_id for frame in goaways), default=stream_ids[-1])
    unanswered = [s for s in stream_ids if s <= last and s not in statuses and s not in resets]
    assert not unanswered, (
        f"{len(unanswered)} streams at or below {last} neither answered nor refused "
        f"(first {unanswered[:5]}); GOAWAYs {[(g.error_code, g.last_stream_id) for g in goaways]}"
    )
    assert all(code == REFUSED_STREAM for code in resets.values()), sorted(set(resets.values()))
    assert all(code == 0 for code in statuses.values()), sorted(set(statuses.values()))
    # nghttpd's behaviour, and ours: no GOAWAY at all, every stream accounted for.
    assert not goaways, [(g.error_code, g.last_stream_id) for g in goaways]
    assert len(statuses) >= STREAM_CAP and len(statuses) + len(resets) == total
    wait_for_idle_handlers(victim)
    assert_still_serving(victim, bystander)
