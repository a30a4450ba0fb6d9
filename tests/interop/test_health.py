"""grpc.health.v1.Health through grpcio and grpclib: Check and Watch."""

from __future__ import annotations

import asyncio

import grpc
import grpclib.client
import grpclib.const
import grpclib.exceptions
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

# grpclib ships its own health_pb2, which registers the same protobuf symbols as
# grpcio-health-checking's and cannot share a process with it; grpclib's methods take any
# message classes, so its stub is built here on grpcio-health-checking's messages.
grpclib_health_pb2 = health_pb2


class GrpclibHealthStub:
    def __init__(self, channel: grpclib.client.Channel):
        self.Check = grpclib.client.UnaryUnaryMethod(
            channel, "/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        )
        self.Watch = grpclib.client.UnaryStreamMethod(
            channel, "/grpc.health.v1.Health/Watch", health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        )

SERVING = health_pb2.HealthCheckResponse.SERVING
# The whole server (""), and the broker service by its full name.
SERVED = ["", "sluice.v1.Broker"]


@pytest.mark.parametrize("service", SERVED)
def test_grpcio_check_serving(channel, service):
    stub = health_pb2_grpc.HealthStub(channel)
    assert stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == SERVING


def test_grpcio_check_unknown_service_is_not_found(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpcio_watch_sends_current_status_first(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    call = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert next(call).status == SERVING
    call.cancel()


def test_grpcio_watch_unknown_service_reports_service_unknown(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    call = stub.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert next(call).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    call.cancel()


def _grpclib(server, body):
    async def main():
        channel = grpclib.client.Channel(server.host, server.port)
        try:
            return await body(GrpclibHealthStub(channel))
        finally:
            channel.close()

    return asyncio.run(main())


@pytest.mark.parametrize("service", SERVED)
def test_grpclib_check_serving(server, service):
    request = grpclib_health_pb2.HealthCheckRequest(service=service)
    response = _grpclib(server, lambda stub: stub.Check(request, timeout=5))
    assert response.status == grpclib_health_pb2.HealthCheckResponse.SERVING


def test_grpclib_check_unknown_service_is_not_found(server):
    request = grpclib_health_pb2.HealthCheckRequest(service="no.such.Service")
    with pytest.raises(grpclib.exceptions.GRPCError) as raised:
        _grpclib(server, lambda stub: stub.Check(request, timeout=5))
    assert raised.value.status == grpclib.const.Status.NOT_FOUND


def test_grpclib_watch_sends_current_status_first(server):
    async def body(stub):
        async with stub.Watch.open(timeout=10) as stream:
            await stream.send_message(grpclib_health_pb2.HealthCheckRequest(service=""), end=True)
            first = await stream.recv_message()
            await stream.cancel()
        return first

    assert _grpclib(server, body).status == grpclib_health_pb2.HealthCheckResponse.SERVING
