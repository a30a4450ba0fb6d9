"""Stock grpcio (C core) client against a SluiceWire server; prints one line per check."""
import sys

import grpc

port = sys.argv[1]
identity = lambda b: b  # noqa: E731 - messages are raw bytes
channel = grpc.insecure_channel(f"127.0.0.1:{port}")
kw = dict(request_serializer=identity, response_deserializer=identity)
print("unary", channel.unary_unary("/test.Echo/Unary", **kw)(b"hi", timeout=10).decode())
print("server-streaming", [m.decode() for m in channel.unary_stream("/test.Echo/Expand", **kw)(b"a bb ccc", timeout=10)])
print("client-streaming", channel.stream_unary("/test.Echo/Collect", **kw)(iter([b"x", b"y"]), timeout=10).decode())
print("bidi", [m.decode() for m in channel.stream_stream("/test.Echo/Chat", **kw)(iter([b"1", b"2"]), timeout=10)])
for path, request in [("/test.Echo/Nope", b""), ("/test.Echo/Fail", b"")]:
    try:
        channel.unary_unary(path, **kw)(request, timeout=10)
        print("status", path, "OK")
    except grpc.RpcError as error:
        print("status", path, error.code().name, error.details())
try:
    channel.unary_unary("/test.Echo/Hang", **kw)(b"", timeout=0.2)
except grpc.RpcError as error:
    print("deadline", error.code().name)
