"""Hand-made HTTP/2 clients for the cases no gRPC stack will produce.

`H2Client` drives the `h2` state machine over a plain socket, for well-formed HTTP/2
carrying chosen gRPC bytes and headers. `RawFrames` writes frames built with
`hyperframe` straight to the socket, for floods and malformed sequences that `h2`
refuses to produce. Every read has a socket timeout and every loop a deadline, so a
server that does not answer fails the test instead of hanging it.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack
from hyperframe.frame import Frame, GoAwayFrame, SettingsFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REFUSED_STREAM = 0x7
ENHANCE_YOUR_CALM = 0xB


def grpc_frame(payload: bytes, compressed: bool = False) -> bytes:
    """The gRPC length-prefixed message: flag byte, 4-byte big-endian length, payload."""
    return struct.pack(">BI", 1 if compressed else 0, len(payload)) + payload


def grpc_messages(data: bytes) -> list[bytes]:
    messages = []
    while len(data) >= 5:
        _, length = struct.unpack(">BI", data[:5])
        if len(data) < 5 + length:
            break
        messages.append(data[5 : 5 + length])
        data = data[5 + length :]
    return messages


def grpc_headers(host: str, port: int, path: str, content_type: str = "application/grpc", extra=()):
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", f"{host}:{port}"),
        ("content-type", content_type),
        ("te", "trailers"),
        *extra,
    ]


@dataclass
class StreamResult:
    headers: dict = field(default_factory=dict)
    # Left out of repr so an assertion message shows the length, not megabytes.
    data: bytes = field(default=b"", repr=False)
    trailers: dict = field(default_factory=dict)
    ended: bool = False
    reset_code: int | None = None
    connection_closed: bool = False
    goaway_code: int | None = None

    @property
    def http_status(self) -> int | None:
        status = self.headers.get(":status")
        return int(status) if status is not None else None

    @property
    def grpc_status(self) -> int | None:
        """grpc-status from the trailers, or from the headers of a trailers-only answer."""
        status = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return int(status) if status is not None else None

    @property
    def grpc_message(self) -> str:
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))

    @property
    def finished(self) -> bool:
        return self.ended or self.reset_code is not None or self.connection_closed


class H2Client:
    """A client-side h2 connection over a blocking socket with a read timeout."""

    def __init__(self, host: str, port: int, timeout_s: float = 5.0, local_settings=None):
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.settimeout(timeout_s)
        config = h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False
        )
        self.conn = h2.connection.H2Connection(config=config)
        if local_settings:
            # Sent in the first SETTINGS frame (update_settings would send a second one
            # ahead of the preface).
            initial = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                       h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536, **local_settings}
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=initial)
        self.conn.initiate_connection()
        self.results: dict[int, StreamResult] = {}
        self.closed = False
        self.goaway_code: int | None = None
        self.flush()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                self._mark_closed()

    def open_stream(self, path: str, content_type: str = "application/grpc", extra_headers=()) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, grpc_headers(self.host, self.port, path, content_type, extra_headers))
        self.results[stream_id] = StreamResult()
        self.flush()
        return stream_id

    def send(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Sends DATA within the peer's flow-control window (reads while it is closed)."""
        deadline = time.monotonic() + self.sock.gettimeout()
        while data:
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                if time.monotonic() > deadline or self.closed:
                    raise TimeoutError("flow-control window stayed closed")
                try:
                    self.receive_once()
                except socket.timeout:
                    pass
                continue
            chunk, data = data[:window], data[window:]
            self.conn.send_data(stream_id, chunk, end_stream=end_stream and not data)
            self.flush()
            if not data:
                return
        if end_stream:
            self.conn.end_stream(stream_id)
            self.flush()

    def end(self, stream_id: int) -> None:
        self.conn.end_stream(stream_id)
        self.flush()

    def reset(self, stream_id: int, code: int = 0x8) -> None:
        self.conn.reset_stream(stream_id, error_code=code)
        self.flush()

    def request(self, path: str, body: bytes, content_type: str = "application/grpc", extra_headers=(),
                end_stream: bool = True) -> int:
        stream_id = self.open_stream(path, content_type, extra_headers)
        if body or end_stream:
            self.send(stream_id, body, end_stream=end_stream)
        return stream_id

    def _mark_closed(self) -> None:
        self.closed = True
        for result in self.results.values():
            if not result.finished:
                result.connection_closed = True

    def receive_once(self) -> None:
        """Reads once from the socket and applies the events."""
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self._mark_closed()
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._mark_closed()
            return
        for event in events:
            result = self.results.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and result:
                result.headers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                if result:
                    result.data += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived) and result:
                result.trailers = dict(event.headers)
            elif isinstance(event, h2.events.StreamEnded) and result:
                result.ended = True
            elif isinstance(event, h2.events.StreamReset) and result:
                result.reset_code = int(event.error_code)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway_code = int(event.error_code)
                for other in self.results.values():
                    other.goaway_code = self.goaway_code
        self.flush()

    def wait(self, stream_id: int, bound_s: float = 10.0) -> StreamResult:
        """Reads until the stream finished (ended, reset, or the connection closed)."""
        result = self.results[stream_id]
        deadline = time.monotonic() + bound_s
        while not result.finished:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"stream {stream_id} not finished after {bound_s} s ({len(result.data)} bytes received): {result}"
                )
            try:
                self.receive_once()
            except socket.timeout:
                continue
        return result

    def call(self, path: str, body: bytes, bound_s: float = 10.0, **kwargs) -> StreamResult:
        return self.wait(self.request(path, body, **kwargs), bound_s)


class RawFrames:
    """A socket that speaks HTTP/2 frame by frame, with no state machine in the way."""

    def __init__(self, host: str, port: int, timeout_s: float = 5.0):
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.settimeout(timeout_s)
        self.encoder = hpack.Encoder()
        self.buffer = b""
        self.closed = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes) -> bool:
        """Writes bytes; False once the server closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.closed = True
            return False

    def handshake(self, settings: dict | None = None) -> dict:
        """Preface and SETTINGS; reads the server's SETTINGS, ACKs it, returns its values."""
        frame = SettingsFrame(0, settings=settings or {})
        assert self.send(PREFACE + frame.serialize())
        deadline = time.monotonic() + self.sock.gettimeout()
        while time.monotonic() < deadline:
            for received in self.read_frames(0.5):
                if isinstance(received, SettingsFrame) and "ACK" not in received.flags:
                    self.send(SettingsFrame(0, flags=["ACK"]).serialize())
                    return dict(received.settings)
        raise AssertionError("no SETTINGS from the server")

    def header_block(self, headers) -> bytes:
        return self.encoder.encode(headers)

    def read_frames(self, bound_s: float) -> list[Frame]:
        """Frames that arrive within bound_s (fewer if the connection closes)."""
        frames = []
        deadline = time.monotonic() + bound_s
        while not self.closed and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, min(0.5, deadline - time.monotonic())))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.closed = True
                break
            self.buffer += data
            frames.extend(self._parse())
        return frames

    def _parse(self) -> list[Frame]:
        frames = []
        while len(self.buffer) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
            if len(self.buffer) < 9 + length:
                break
            frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
            frames.append(frame)
            self.buffer = self.buffer[9 + length :]
        return frames

    def read_until_closed(self, bound_s: float) -> tuple[list[Frame], bool]:
        """Everything the server sends until it closes the connection or bound_s passes."""
        frames = self.read_frames(bound_s)
        return frames, self.closed


def goaway_codes(frames) -> list[int]:
    return [frame.error_code for frame in frames if isinstance(frame, GoAwayFrame)]


def max_concurrent_streams(settings: dict) -> int | None:
    return settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
