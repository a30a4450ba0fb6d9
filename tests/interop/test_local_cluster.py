"""deploy/local-cluster.sh as a user runs it: start prints the bootstrap list once a 3-member
etcd and 3 brokers are up, every broker is registered in etcd and serves, and stop ends every
process it started and deregisters the brokers. The ports are shifted by
SLUICE_CLUSTER_PORT_OFFSET into a range no other test uses."""
import base64
import json
import os
import random
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, health_check

SCRIPT = REPO / "deploy" / "local-cluster.sh"


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_offset() -> int:
    """An offset whose nine ports (etcd 2379/2380 + 0, 20000, 30000; brokers 9092-9094) are free."""
    for _ in range(50):
        offset = random.randrange(1000, 3000)
        ports = [2379, 2380, 22379, 22380, 32379, 32380, 9092, 9093, 9094]
        if all(port_free(port + offset) for port in ports):
            return offset
    pytest.skip("no free port range for a local cluster")


def registered_brokers(etcd_port: int) -> dict:
    """What etcd holds under /sluice/local/brokers/, through its JSON gateway."""
    body = json.dumps({
        "key": base64.b64encode(b"/sluice/local/brokers/").decode(),
        "range_end": base64.b64encode(b"/sluice/local/brokers0").decode(),
    }).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{etcd_port}/v3/kv/range", data=body)
    with urllib.request.urlopen(request, timeout=5) as answer:
        kvs = json.loads(answer.read()).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): json.loads(base64.b64decode(kv["value"])) for kv in kvs}


def run(command: str, directory: Path, offset: int, binary: Path, timeout: float):
    environment = dict(os.environ, SLUICE_BIN=str(binary), SLUICE_CLUSTER_PORT_OFFSET=str(offset))
    return subprocess.run([str(SCRIPT), command, str(directory)], env=environment, capture_output=True,
                          text=True, timeout=timeout)


def test_a_local_cluster_starts_registers_serves_and_stops(binary, tmp_path):
    offset = free_offset()
    directory = tmp_path / "cluster"
    started = run("start", directory, offset, binary, timeout=150)
    try:
        assert started.returncode == 0, started.stderr + started.stdout
        brokers = [f"127.0.0.1:{9092 + offset + n}" for n in range(3)]
        assert f"bootstrap: {','.join(brokers)}" in started.stdout
        etcd_port = 2379 + offset
        assert registered_brokers(etcd_port) == {
            f"/sluice/local/brokers/{n + 1}": {"id": n + 1, "address": brokers[n]} for n in range(3)
        }
        for target in brokers:
            assert health_check(target, timeout=10) == 1, target  # SERVING

        # A second start over a running cluster refuses, touching nothing.
        again = run("start", directory, offset, binary, timeout=30)
        assert again.returncode == 1 and "already runs" in again.stderr
    finally:
        stopped = run("stop", directory, offset, binary, timeout=150)
    assert stopped.returncode == 0, stopped.stderr
    status = run("status", directory, offset, binary, timeout=30)
    assert status.stdout.count("stopped") == 6, status.stdout
    for port in [9092, 9093, 9094, 2379, 22379, 32379]:
        assert port_free(port + offset), f"port {port + offset} still listening after stop"


def test_a_usage_error_exits_2(tmp_path):
    result = subprocess.run([str(SCRIPT), "bogus"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "usage" in result.stderr
