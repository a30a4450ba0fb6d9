"""All four RPC kinds, deadlines and cancellation, through grpcio and grpclib.

Deadlines and cancellations are checked on the server's side through Echo.Stats, which
counts how the server's handlers ended: a client that gives up on its own would leave
those counters unchanged.
"""

from __future__ import annotations

import pytest
from conftest import wait_for
from rawh2 import H2Client, grpc_frame, grpc_messages
from sluice.test.v1 import echo_pb2
from stacks import (
    DEADLINE_EXCEEDED,
    NOT_FOUND,
    CallError,
    GrpcioStack,
    GrpclibStack,
    echo,
)

# Long enough that only a deadline or a cancellation can end the handler in a test run.
FOREVER_MS = 120_000


@pytest.fixture(params=["grpcio", "grpclib"])
def stack(request, server, channel):
    if request.param == "grpcio":
        return GrpcioStack(channel)
    return GrpclibStack(server.host, server.port)


def test_unary(stack):
    assert stack.get(echo("hello, sluice")).text == "hello, sluice"


def test_unary_error_status_and_message(stack):
    with pytest.raises(CallError) as raised:
        stack.get(echo("x", status_code=NOT_FOUND, status_message="no such thing"))
    assert raised.value.code == NOT_FOUND
    assert raised.value.message == "no such thing"


def test_server_streaming_one_response_per_word(stack):
    assert [r.text for r in stack.expand(echo("alpha beta gamma"))] == ["alpha", "beta", "gamma"]


def test_server_streaming_repeat_with_payload(stack):
    responses = stack.expand(echo("x", repeat=40, payload_bytes=100_000))
    assert len(responses) == 40
    assert all(r.text == "x" and len(r.payload) == 100_000 for r in responses)


def test_client_streaming_joins_texts(stack):
    assert stack.collect([echo("one"), echo("two"), echo("three")]).text == "one two three"


def test_client_streaming_empty(stack):
    assert stack.collect([]).text == ""


def test_bidirectional_answers_each_request_before_the_next_is_sent(stack):
    answers, rest = stack.update_ping_pong([echo(f"message {i}") for i in range(5)])
    assert [a.text for a in answers] == [f"message {i}" for i in range(5)]
    assert rest == []


def _ended_by_server(stats) -> int:
    return stats.handlers_deadline_exceeded + stats.handlers_cancelled


def test_deadline_ends_the_call_and_the_handler(stack):
    before = stack.stats()
    with pytest.raises(CallError) as raised:
        stack.get(echo("slow", delay_ms=FOREVER_MS), timeout=0.5)
    assert raised.value.code == DEADLINE_EXCEEDED
    # The client stack may also reset the stream at its own deadline, so the handler
    # ends either by the server's deadline or by the client's cancellation; it must end.
    wait_for(lambda: _ended_by_server(stack.stats()) > _ended_by_server(before), 10, "the handler to end")
    wait_for(lambda: stack.stats().handlers_active <= before.handlers_active, 10, "no handler left running")


def test_server_enforces_grpc_timeout(server, channel):
    """A raw client that never gives up: only the server's deadline can end this call."""
    stats = GrpcioStack(channel).stats
    before = stats()
    body = grpc_frame(echo("slow", delay_ms=FOREVER_MS).SerializeToString())
    with H2Client(server.host, server.port, timeout_s=10) as client:
        result = client.call(
            "/sluice.test.v1.Echo/Get", body, bound_s=30, extra_headers=[("grpc-timeout", "300m")]
        )
    assert result.grpc_status == DEADLINE_EXCEEDED, result
    assert result.reset_code in (None, 0, 8), result  # trailers, not a protocol error
    after = wait_for(
        lambda: (s := stats()).handlers_deadline_exceeded > before.handlers_deadline_exceeded and s,
        10,
        "handlers_deadline_exceeded to grow",
    )
    assert after.handlers_cancelled == before.handlers_cancelled


def test_cancelling_a_server_stream_cancels_the_handler(stack):
    before = stack.stats()
    got = stack.expand_then_cancel(echo("tick", repeat=10_000, delay_ms=20), read=2)
    assert [r.text for r in got] == ["tick", "tick"]
    wait_for(
        lambda: stack.stats().handlers_cancelled > before.handlers_cancelled, 10, "handlers_cancelled to grow"
    )
    wait_for(lambda: stack.stats().handlers_active <= before.handlers_active, 10, "no handler left running")


def test_raw_reset_of_a_bidirectional_stream_cancels_the_handler(server, channel):
    stats = GrpcioStack(channel).stats
    before = stats()
    with H2Client(server.host, server.port) as client:
        stream = client.request(
            "/sluice.test.v1.Echo/Update", grpc_frame(echo("first").SerializeToString()), end_stream=False
        )
        wait_for(lambda: client.receive_once() or grpc_messages(client.results[stream].data), 10, "an answer")
        answer = echo_pb2.EchoResponse.FromString(grpc_messages(client.results[stream].data)[0])
        assert answer.text == "first"
        client.reset(stream)
        wait_for(lambda: stats().handlers_cancelled > before.handlers_cancelled, 10, "handlers_cancelled to grow")


@pytest.mark.parametrize("connection_window", [0, 4 * 1024 * 1024], ids=["default-window", "wide-connection-window"])
def test_large_responses_arrive_whole_over_raw_h2(server, connection_window):
    """The same transfer grpcio and grpclib make (they widen the connection window at
    once), with a client that acknowledges every DATA frame as it arrives: whether the
    server may send a whole message at once or must wait for WINDOW_UPDATEs, it arrives."""
    from h2.settings import SettingCodes

    sizes = [300_000, 1_000_000]
    with H2Client(server.host, server.port, timeout_s=10,
                  local_settings={SettingCodes.INITIAL_WINDOW_SIZE: 4 * 1024 * 1024}) as client:
        if connection_window:
            client.conn.increment_flow_control_window(connection_window)
            client.flush()
        for size in sizes:
            body = grpc_frame(echo("x", repeat=2, payload_bytes=size).SerializeToString())
            result = client.call("/sluice.test.v1.Echo/Expand", body, bound_s=20)
            assert result.grpc_status == 0, (size, len(result.data), result)
            responses = [echo_pb2.EchoResponse.FromString(m) for m in grpc_messages(result.data)]
            assert [len(r.payload) for r in responses] == [size, size]
