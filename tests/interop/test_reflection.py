"""Server reflection, v1 and v1alpha: a client with no copy of proto/ lists the services,
fetches the broker's file descriptors, and calls methods built from them alone."""

from __future__ import annotations

import asyncio
import uuid

import grpclib.client
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2 as alpha_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

EXPECTED_SERVICES = {
    "sluice.v1.Broker",
    "sluice.test.v1.Echo",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
}


class _V1Stub:
    """grpcio-reflection's client speaks v1alpha only; v1 has the same messages on the
    wire, so the same client is pointed at the v1 method path."""

    def __init__(self, channel):
        self.ServerReflectionInfo = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=alpha_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=alpha_pb2.ServerReflectionResponse.FromString,
        )


def reflection_database(channel, version: str) -> ProtoReflectionDescriptorDatabase:
    database = ProtoReflectionDescriptorDatabase(channel)
    if version == "v1":
        database._stub = _V1Stub(channel)
    return database


@pytest.fixture(params=["v1", "v1alpha"])
def database(request, channel):
    return reflection_database(channel, request.param)


def test_lists_services(database):
    services = set(database.get_services())
    assert EXPECTED_SERVICES <= services, services


def test_broker_file_describes_every_rpc(database):
    pool = descriptor_pool.DescriptorPool(database)
    broker = pool.FindServiceByName("sluice.v1.Broker")
    methods = {method.name: method for method in broker.methods}
    assert {"Produce", "Subscribe", "Replicate", "CreateTopic", "DeleteTopic", "ListTopics",
            "DescribeTopic", "AlterTopicConfig", "CreatePartitions"} <= set(methods)
    assert methods["Produce"].client_streaming and methods["Produce"].server_streaming
    assert not methods["Subscribe"].client_streaming and methods["Subscribe"].server_streaming
    # The dependency records.proto came along: RecordBatch resolves.
    assert pool.FindMessageTypeByName("sluice.v1.RecordBatch").fields_by_name["records"]


def test_unknown_symbol_is_not_found(database):
    with pytest.raises(KeyError):
        database.FindFileContainingSymbol("no.such.Symbol")


def _call_via_descriptors(channel, pool, service: str, method_name: str, fill):
    method = pool.FindServiceByName(service).methods_by_name[method_name]
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/{service}/{method_name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    request = request_class()
    fill(request)
    return call(request, timeout=10)


def test_calls_broker_and_echo_from_reflected_descriptors_only(database, channel):
    pool = descriptor_pool.DescriptorPool(database)
    name = f"reflected-{uuid.uuid4().hex[:12]}"

    def create(request):
        request.name = name
        request.partitions = 3

    created = _call_via_descriptors(channel, pool, "sluice.v1.Broker", "CreateTopic", create)
    assert created.topic.name == name and created.topic.partition_count == 3

    described = _call_via_descriptors(
        channel, pool, "sluice.v1.Broker", "DescribeTopic", lambda r: setattr(r, "name", name)
    )
    assert described.topic.topic_id == created.topic.topic_id

    echoed = _call_via_descriptors(
        channel, pool, "sluice.test.v1.Echo", "Get", lambda r: setattr(r, "text", "reflected")
    )
    assert echoed.text == "reflected"
    _call_via_descriptors(channel, pool, "sluice.v1.Broker", "DeleteTopic", lambda r: setattr(r, "name", name))


@pytest.mark.parametrize("package", ["grpc.reflection.v1", "grpc.reflection.v1alpha"])
def test_grpclib_lists_services_and_fetches_the_broker_file(server, package):
    # grpclib's own reflection_pb2 modules clash with grpcio-reflection's in protobuf's
    # default pool; its method classes take grpcio-reflection's messages instead.
    pb2 = alpha_pb2

    async def main():
        channel = grpclib.client.Channel(server.host, server.port)
        try:
            method = grpclib.client.StreamStreamMethod(
                channel, f"/{package}.ServerReflection/ServerReflectionInfo",
                pb2.ServerReflectionRequest, pb2.ServerReflectionResponse,
            )
            async with method.open(timeout=10) as stream:
                await stream.send_message(pb2.ServerReflectionRequest(list_services=""))
                listed = await stream.recv_message()
                await stream.send_message(pb2.ServerReflectionRequest(file_containing_symbol="sluice.v1.Broker"))
                files = await stream.recv_message()
                await stream.end()
                assert [m async for m in stream] == []
            return listed, files
        finally:
            channel.close()

    listed, files = asyncio.run(main())
    assert EXPECTED_SERVICES <= {s.name for s in listed.list_services_response.service}
    protos = [descriptor_pb2.FileDescriptorProto.FromString(b)
              for b in files.file_descriptor_response.file_descriptor_proto]
    broker_file = next(p for p in protos if any(s.name == "Broker" for s in p.service))
    assert broker_file.package == "sluice.v1"
    assert {m.name for m in broker_file.service[0].method} >= {"Produce", "Subscribe", "CreateTopic"}
