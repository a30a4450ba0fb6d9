#!/usr/bin/env python3
"""NATS JetStream counterpart of `sluice bench`, for bench/run-all.sh.

Debian has no natscli (so no `nats bench`), and nats-py spends ~40 us of Python per message,
which made it the bottleneck (7-25k msgs/s). So this speaks the NATS text protocol itself,
standard library only: PUB frames built in bulk, pipelined (up to --window unanswered), every
publish with a reply subject so JetStream answers each one once it is stored (its PubAck),
like `nats bench js pub --batch`. The stream is a file stream with one replica.

  ingest:  as fast as possible for --duration s, every message acknowledged (PubAck); msgs/s
           and MB/s (10^6 B) of acknowledged messages. Python reads every PubAck, so this
           mode's rate is bounded by the driver (about 100k msgs/s here), not by NATS.
  publish: as fast as possible for --duration s with no reply subject, so no PubAck: a
           block of 1,000 PUB frames is built once and written again and again, so a
           message costs the driver a memcpy. The end is found by polling the stream's
           info (every 5 ms, on a second connection) until it holds every message sent; the
           rate is messages stored over the time from the first write to that moment. This
           is the honest peer: `sluice bench produce --acks none` finds its end the same way.
  sink:    a stand-in server that answers the handshake and PINGs and discards the rest;
           `publish --sink` drives it to measure the driver alone (it must be far faster
           than the rate it reports against NATS, or the ratio flatters Sluice).
  e2e:    open loop at --rate msgs/s for --duration s; latency from each message's due time
          to its PubAck and to delivery at a JetStream push consumer (deliver_policy new,
          no acks); the due time travels in the payload's first 8 bytes (same process).

Prints one JSON object (latencies in microseconds). The server and this client share the
machine's cores, as sluice and `sluice bench` do.
"""
import argparse
import asyncio
import json
import socket
import struct
import threading
import time


def percentiles(values):
    if not values:
        return {"count": 0}
    values = sorted(values)

    def at(p):
        return values[min(len(values) - 1, int(p / 100 * len(values)))] / 1000
    return {"count": len(values), "p50_us": at(50), "p95_us": at(95), "p99_us": at(99),
            "p999_us": at(99.9), "p9999_us": at(99.99), "max_us": values[-1] / 1000}


class Connection:
    """One NATS connection: frames in, counted and dispatched by subscription id."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.handlers = {}
        self.replies = {}

    @classmethod
    async def open(cls, host, port):
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
        await reader.readline()  # INFO
        writer.write(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\nPING\r\n')
        await writer.drain()
        connection = cls(reader, writer)
        line = await reader.readline()
        if not line.startswith(b"PONG"):
            raise RuntimeError(f"unexpected {line!r}")
        connection.task = asyncio.get_running_loop().create_task(connection.read())
        return connection

    async def read(self):
        reader = self.reader
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"MSG") or line.startswith(b"HMSG"):
                parts = line.split()
                size = int(parts[-1])
                data = await reader.readexactly(size + 2)
                headers = int(parts[-2]) if line.startswith(b"HMSG") else 0
                handler = self.handlers.get(parts[2])
                if handler:
                    handler(data[headers:size])
            elif line.startswith(b"PING"):
                self.writer.write(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise RuntimeError(line.decode())

    def subscribe(self, subject, sid, handler):
        self.handlers[sid.encode()] = handler
        self.writer.write(f"SUB {subject} {sid}\r\n".encode())

    async def request(self, subject, payload):
        """One request-reply (for the JetStream API)."""
        future = asyncio.get_running_loop().create_future()
        sid = f"r{len(self.handlers)}"
        self.subscribe(f"_R.{sid}", sid, lambda data: future.done() or future.set_result(data))
        self.writer.write(f"PUB {subject} _R.{sid} {len(payload)}\r\n".encode() + payload + b"\r\n")
        await self.writer.drain()
        return json.loads(await asyncio.wait_for(future, 10))


def serve_sink(host, port):
    """Answers CONNECT/PING like a NATS server and discards everything else: the driver alone.

    Plain blocking sockets, a thread per connection, reads into one reused 4 MiB buffer:
    it must cost less than the driver does, or it measures itself."""
    ping = b"\r\nPING\r\n"

    def session(connection):
        connection.sendall(b'INFO {"server_id":"sink","max_payload":1048576,"headers":true}\r\n')
        buffer = bytearray(8 + (4 << 20))
        view = memoryview(buffer)
        while True:
            n = connection.recv_into(view[8:])
            if n == 0:
                break
            # buffer[0:8] holds the previous read's last 8 bytes, so a PING split across
            # two reads is found; one lying wholly in them (index 0) was counted before.
            pings, at = 0, buffer.find(ping, 1, 8 + n)
            while at >= 0:
                pings += 1
                at = buffer.find(ping, at + 1, 8 + n)
            if pings:
                connection.sendall(b"PONG\r\n" * pings)
            buffer[0:8] = buffer[n:n + 8]
        connection.close()

    listener = socket.create_server((host, port))
    print(f"sink listening on {host}:{port}", flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=session, args=(connection,), daemon=True).start()


def open_publisher(host, port):
    """A blocking socket past the NATS handshake: the cheapest way Python can write."""
    publisher = socket.create_connection((host, port))
    publisher.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = publisher.makefile("rb")
    reader.readline()  # INFO
    publisher.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nPING\r\n')
    line = reader.readline()
    if not line.startswith(b"PONG"):
        raise RuntimeError(f"unexpected {line!r}")
    return publisher, reader


async def publish(args, filler):
    """No reply subject, so no PubAck: frames built once, written until the time is up."""
    frame = f"PUB bench.data {args.size}\r\n".encode() + b"\0" * 8 + filler + b"\r\n"
    block = frame * 1000
    publisher, reader = open_publisher(args.host, args.port)
    poller = None if args.sink else await Connection.open(args.host, args.port)
    start = time.perf_counter_ns()
    stop = start + int(args.duration * 1e9)
    sent = 0
    while time.perf_counter_ns() < stop:
        publisher.sendall(block)
        sent += 1000
    written = time.perf_counter_ns()
    stored = 0
    if args.sink:
        # The sink answers a PING after reading everything written before it.
        publisher.sendall(b"PING\r\n")
        while not reader.readline().startswith(b"PONG"):
            pass
        stored = sent
    else:
        deadline = time.perf_counter_ns() + 60 * 10**9
        while time.perf_counter_ns() < deadline:
            info = await poller.request("$JS.API.STREAM.INFO.BENCH", b"")
            stored = info["state"]["messages"]
            if stored >= sent:
                break
            await asyncio.sleep(0.005)
    done = time.perf_counter_ns()
    publisher.close()
    elapsed = (done - start) / 1e9
    return {"mode": "publish", "sink": args.sink, "sent": sent, "stored": stored, "seconds": elapsed,
            "write_seconds": (written - start) / 1e9, "completion": "pong" if args.sink else "stream info",
            "msgs_per_s": stored / elapsed, "mb_per_s": stored * args.size / 1e6 / elapsed}


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["ingest", "publish", "e2e", "sink"])
    parser.add_argument("--sink", action="store_true", help="publish: drive a `sink` server, not NATS")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4222)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rate", type=float, default=10000)
    parser.add_argument("--window", type=int, default=20000)
    args = parser.parse_args()
    if args.mode == "sink":
        serve_sink(args.host, args.port)
        return
    filler = bytes((i * 7919) & 0xFF for i in range(max(args.size - 8, 0)))
    assert b"\r\nPING\r\n" not in filler

    if args.mode == "publish" and args.sink:
        print(json.dumps(await publish(args, filler)))
        return
    nc = await Connection.open(args.host, args.port)
    await nc.request("$JS.API.STREAM.DELETE.BENCH", b"")
    created = await nc.request("$JS.API.STREAM.CREATE.BENCH", json.dumps(
        {"name": "BENCH", "subjects": ["bench.data"], "storage": "file", "num_replicas": 1}).encode())
    if "error" in created:
        raise RuntimeError(created)

    if args.mode == "publish":
        print(json.dumps(await publish(args, filler)))
        await nc.request("$JS.API.STREAM.DELETE.BENCH", b"")
        return

    head = f"PUB bench.data _ACK {args.size}\r\n".encode()
    state = {"acked": 0, "received": 0}
    ack_due = []          # due times in publish order; JetStream acks one stream in order
    ack_latencies = []
    e2e_latencies = []
    acked_event = asyncio.Event()

    def on_ack(data):
        now = time.perf_counter_ns()
        index = state["acked"]
        state["acked"] += 1
        if index < len(ack_due):
            ack_latencies.append(now - ack_due[index])
        acked_event.set()
    nc.subscribe("_ACK", "ack", on_ack)

    if args.mode == "e2e":
        subscriber = await Connection.open(args.host, args.port)

        def on_message(data):
            now = time.perf_counter_ns()
            (due,) = struct.unpack_from(">q", data)
            e2e_latencies.append(now - due)
            state["received"] += 1
        subscriber.subscribe("deliver.bench", "d", on_message)
        await subscriber.writer.drain()
        consumer = await subscriber.request("$JS.API.CONSUMER.CREATE.BENCH", json.dumps(
            {"stream_name": "BENCH", "config": {"deliver_subject": "deliver.bench", "deliver_policy": "new",
                                                "ack_policy": "none", "max_ack_pending": -1}}).encode())
        if "error" in consumer:
            raise RuntimeError(consumer)

    start = time.perf_counter_ns()
    stop = start + int(args.duration * 1e9)
    interval = 1e9 / args.rate
    total = int(args.duration * args.rate)
    sent = 0
    while True:
        now = time.perf_counter_ns()
        if args.mode == "e2e":
            # Open loop: everything due by now goes out at once, timed from its due time,
            # so a publisher that fell behind does not lower the offered load.
            if sent >= total:
                break
            due_count = min(int((now - start) / interval) + 1, total)
            burst = []
            while sent < due_count:
                due = start + int(sent * interval)
                ack_due.append(due)
                burst.append(head + struct.pack(">q", due) + filler + b"\r\n")
                sent += 1
            if burst:
                nc.writer.write(b"".join(burst))
                await nc.writer.drain()
            await asyncio.sleep(max(start + sent * interval - time.perf_counter_ns(), 0) / 1e9)
        else:
            if now >= stop:
                break
            while sent - state["acked"] >= args.window:
                acked_event.clear()
                await acked_event.wait()
            batch = min(1000, args.window - (sent - state["acked"]))
            frame = head + struct.pack(">q", now) + filler + b"\r\n"
            ack_due.extend([now] * batch)
            nc.writer.write(frame * batch)
            sent += batch
            await nc.writer.drain()
    deadline = time.perf_counter_ns() + 30 * 10**9
    while (state["acked"] < sent or (args.mode == "e2e" and state["received"] < sent)) and time.perf_counter_ns() < deadline:
        await asyncio.sleep(0.01)
    elapsed = (time.perf_counter_ns() - start) / 1e9
    result = {"mode": args.mode, "sent": sent, "acked": state["acked"], "seconds": elapsed,
              "msgs_per_s": state["acked"] / elapsed, "mb_per_s": state["acked"] * args.size / 1e6 / elapsed,
              "ack_latency": percentiles(ack_latencies)}
    if args.mode == "e2e":
        result["received"] = state["received"]
        result["e2e_latency"] = percentiles(e2e_latencies)
    print(json.dumps(result))
    await nc.request("$JS.API.STREAM.DELETE.BENCH", b"")


asyncio.run(main())
