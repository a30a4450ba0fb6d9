"""Stock grpcio server for the SluiceWire client; prints its port, serves until stdin closes."""
import sys
from concurrent import futures

import grpc


def expand(request, context):
    for word in request.split(b" "):
        yield word


def fail(request, context):
    context.abort(grpc.StatusCode.FAILED_PRECONDITION, "nöpe ✓")


def chat(requests, context):
    for message in requests:
        yield b"re:" + message


handlers = {
    "Unary": grpc.unary_unary_rpc_method_handler(lambda r, c: b"echo:" + r),
    "Expand": grpc.unary_stream_rpc_method_handler(expand),
    "Collect": grpc.stream_unary_rpc_method_handler(lambda rs, c: b"+".join(rs)),
    "Chat": grpc.stream_stream_rpc_method_handler(chat),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
sys.stdin.read()
server.stop(0)
