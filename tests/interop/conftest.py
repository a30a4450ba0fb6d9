"""Fixtures for the interop suite: a real `sluice serve` process and stubs from proto/.

Nothing is built here: scripts/test.sh ran `swift build --build-tests` first, and the
binary is found with `swift build --show-bin-path`. Stubs for grpcio and grpclib are
generated from proto/sluice/ into a temporary directory when this file is imported, so
the test modules import them as `sluice.v1.broker_pb2` and so on. The standard gRPC
health and reflection protos come from grpcio-health-checking, grpcio-reflection and
grpclib instead (generating them again would register the same file names twice in
protobuf's default descriptor pool).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
PROTO_DIR = REPO / "proto"

# How long a server may take to print its address and answer health checks. A bound,
# not a timing assumption: a healthy server needs a fraction of it.
STARTUP_BOUND_S = 60.0
# SIGTERM starts a graceful shutdown (streams get a 10 s grace period by default).
SHUTDOWN_BOUND_S = 20.0

LISTENING = re.compile(r"listening on \[?([0-9A-Za-z.:-]+?)\]?:(\d+)\b")


def soak() -> bool:
    """SLUICE_SOAK=1 makes every bounded flood and fuzz loop run longer."""
    return os.environ.get("SLUICE_SOAK", "") not in ("", "0")


def count(name: str, default: int, soak_default: int) -> int:
    """A loop bound: $name if set, else the soak or the default count."""
    value = os.environ.get(name)
    if value:
        return int(value)
    return soak_default if soak() else default


def _generate_stubs() -> Path:
    out = Path(tempfile.mkdtemp(prefix="sluice-stubs-"))
    atexit.register(shutil.rmtree, out, True)
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in (PROTO_DIR / "sluice").rglob("*.proto"))
    assert protos, f"no .proto files under {PROTO_DIR / 'sluice'}"
    # grpclib's protoc plugin is a script beside the venv's python. The venv is never
    # activated (scripts/test.sh runs its python directly), so it is not on PATH: on a
    # fresh machine, with no grpclib installed elsewhere, protoc could not find it.
    plugin = Path(sys.executable).parent / "protoc-gen-grpclib_python"
    plugin_args = [f"--plugin=protoc-gen-grpclib_python={plugin}"] if plugin.exists() else []
    command = [
        sys.executable, "-m", "grpc_tools.protoc",
        *plugin_args,
        f"-I{PROTO_DIR}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--grpclib_python_out={out}",
        *protos,
    ]
    result = subprocess.run(command, cwd=PROTO_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"protoc failed: {result.stderr}"
    sys.path.insert(0, str(out))
    return out


STUBS_DIR = _generate_stubs()


def sluice_binary() -> Path:
    result = subprocess.run(
        ["swift", "build", "--show-bin-path"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"swift build --show-bin-path failed: {result.stderr}"
    binary = Path(result.stdout.strip()) / "sluice"
    if not binary.exists():
        pytest.fail(f"{binary} does not exist: run `swift build` (scripts/test.sh does)")
    return binary


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def wait_for(predicate, bound_s: float, what: str, interval_s: float = 0.05):
    """Polls `predicate` until it returns a truthy value or `bound_s` passes."""
    deadline = time.monotonic() + bound_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {bound_s} s waiting for {what}")
        time.sleep(interval_s)


class SluiceServer:
    """One `sluice serve --test-services` process on an ephemeral port."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, extra_args=()):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen | None = None
        self.host = ""
        self.port = 0

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A restart appends to the same log: only lines after this offset count.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        command = [
            str(self.binary), "serve", "--test-services",
            "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir), *self.extra_args,
        ]
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.data_dir.parent
        )
        log.close()

        def address():
            if self.process.poll() is not None:
                raise AssertionError(f"sluice serve exited with {self.process.returncode}:\n{self.log_tail()}")
            match = None
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            for match in LISTENING.finditer(text):
                pass
            return match

        try:
            match = wait_for(address, STARTUP_BOUND_S, "the 'listening on HOST:PORT' line")
            self.host, self.port = match.group(1), int(match.group(2))
            wait_for(self._serving, STARTUP_BOUND_S, "health Check to answer SERVING", interval_s=0.1)
        except BaseException:
            self.stop()
            raise

    def _serving(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"sluice serve exited with {self.process.returncode}:\n{self.log_tail()}")
        return health_check(self.target) == health_pb2.HealthCheckResponse.SERVING

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after SHUTDOWN_BOUND_S; returns the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=SHUTDOWN_BOUND_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=SHUTDOWN_BOUND_S)
        return self.process.returncode

    def restart(self) -> None:
        """Stops gracefully and starts again on the same data directory."""
        self.stop()
        self.process = None
        self.start()


def isolated_channel(target: str) -> grpc.Channel:
    """A grpcio channel with its own TCP connection (no subchannel sharing)."""
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def health_check(target: str, service: str = "", timeout: float = 2.0):
    """One Check on a new connection; returns the status, or None if it failed."""
    with isolated_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status
        except grpc.RpcError:
            return None


@pytest.fixture(scope="session")
def binary() -> Path:
    return sluice_binary()


@pytest.fixture
def make_server(binary, tmp_path):
    """Starts servers on demand (each with its own data directory unless given one)."""
    servers: list[SluiceServer] = []

    def make(data_dir: Path | None = None, extra_args=()) -> SluiceServer:
        index = len(servers)
        server = SluiceServer(
            binary, data_dir or tmp_path / f"data-{index}", tmp_path / f"server-{index}.log", extra_args
        )
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def server(binary, tmp_path_factory):
    """The shared server of the suite."""
    base = tmp_path_factory.mktemp("sluice")
    instance = SluiceServer(binary, base / "data", base / "server.log")
    instance.start()
    yield instance
    status = instance.stop()
    assert status == 0, f"sluice serve exited with {status} after SIGTERM:\n{instance.log_tail()}"


@pytest.fixture(scope="session")
def channel(server):
    with grpc.insecure_channel(server.target) as shared:
        yield shared
