"""The same Echo calls through two independent gRPC stacks.

`GrpcioStack` is grpcio (gRPC's C core); `GrpclibStack` is grpclib (pure Python on the
h2 package). Both raise `CallError` with the numeric gRPC status, so a test states its
expectation once and runs against both.
"""

from __future__ import annotations

import asyncio
import queue

import grpc
import grpclib.client
import grpclib.exceptions
from sluice.test.v1 import echo_grpc, echo_pb2, echo_pb2_grpc

OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS = 0, 1, 2, 3, 4, 5, 6
RESOURCE_EXHAUSTED, FAILED_PRECONDITION, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 8, 9, 12, 13, 14


class CallError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(f"gRPC status {code}: {message}")
        self.code = code
        self.message = message


def echo(text: str = "", **fields) -> echo_pb2.EchoRequest:
    return echo_pb2.EchoRequest(text=text, **fields)


class GrpcioStack:
    name = "grpcio"

    def __init__(self, channel: grpc.Channel):
        self.stub = echo_pb2_grpc.EchoStub(channel)

    @staticmethod
    def _wrap(call):
        try:
            return call()
        except grpc.RpcError as error:
            raise CallError(error.code().value[0], error.details() or "") from None

    def get(self, req, timeout=10.0):
        return self._wrap(lambda: self.stub.Get(req, timeout=timeout))

    def expand(self, req, timeout=10.0):
        return self._wrap(lambda: list(self.stub.Expand(req, timeout=timeout)))

    def collect(self, reqs, timeout=10.0):
        return self._wrap(lambda: self.stub.Collect(iter(reqs), timeout=timeout))

    def update_ping_pong(self, reqs, timeout=10.0):
        """Sends one request, waits for its answer, then sends the next."""
        outbox: queue.Queue = queue.Queue()
        done = object()

        def requests():
            while True:
                item = outbox.get(timeout=timeout)
                if item is done:
                    return
                yield item

        def run():
            responses = self.stub.Update(requests(), timeout=timeout)
            answers = []
            for req in reqs:
                outbox.put(req)
                answers.append(next(responses))
            outbox.put(done)
            rest = list(responses)
            return answers, rest

        return self._wrap(run)

    def expand_then_cancel(self, req, read: int):
        """Reads `read` responses of Expand, then cancels the call (RST_STREAM CANCEL)."""
        call = self.stub.Expand(req, timeout=30)
        got = [next(call) for _ in range(read)]
        call.cancel()
        return got

    def stats(self):
        return self.stub.Stats(echo_pb2.StatsRequest(), timeout=5)


class GrpclibStack:
    name = "grpclib"

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def _run(self, body):
        async def main():
            channel = grpclib.client.Channel(self.host, self.port)
            try:
                return await body(echo_grpc.EchoStub(channel))
            except grpclib.exceptions.GRPCError as error:
                raise CallError(error.status.value, error.message or "") from None
            except asyncio.TimeoutError:
                # grpclib reports its own deadline as asyncio.TimeoutError, not a status.
                raise CallError(DEADLINE_EXCEEDED, "deadline exceeded (grpclib)") from None
            finally:
                channel.close()

        return asyncio.run(main())

    def get(self, req, timeout=10.0):
        return self._run(lambda stub: stub.Get(req, timeout=timeout))

    def expand(self, req, timeout=10.0):
        return self._run(lambda stub: stub.Expand(req, timeout=timeout))

    def collect(self, reqs, timeout=10.0):
        return self._run(lambda stub: stub.Collect(list(reqs), timeout=timeout))

    def update_ping_pong(self, reqs, timeout=10.0):
        async def body(stub):
            answers = []
            async with stub.Update.open(timeout=timeout) as stream:
                for req in reqs:
                    await stream.send_message(req)
                    answers.append(await stream.recv_message())
                await stream.end()
                rest = [message async for message in stream]
            return answers, rest

        return self._run(body)

    def expand_then_cancel(self, req, read: int):
        async def body(stub):
            async with stub.Expand.open(timeout=30) as stream:
                await stream.send_message(req, end=True)
                got = [await stream.recv_message() for _ in range(read)]
                await stream.cancel()
            return got

        return self._run(body)

    def stats(self):
        return self._run(lambda stub: stub.Stats(echo_pb2.StatsRequest(), timeout=5))
