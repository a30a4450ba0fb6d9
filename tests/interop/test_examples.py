"""The example packages under Examples/ are built against this checkout and run against a
real `sluice serve`, so the README's Swift snippet (which is Examples/QuickStart) cannot
drift from the client library.

Building an example resolves and compiles the whole dependency graph in its own .build,
so each build is bounded by EXAMPLE_BUILD_BOUND_S, a bound, not a timing assumption.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_BUILD_BOUND_S = 1200
EXAMPLE_RUN_BOUND_S = 120


def build_example(name: str) -> Path:
    package = REPO / "Examples" / name
    built = subprocess.run(["swift", "build", "--package-path", str(package)],
                           capture_output=True, text=True, timeout=EXAMPLE_BUILD_BOUND_S)
    assert built.returncode == 0, f"Examples/{name} does not build:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
    bin_path = subprocess.run(["swift", "build", "--package-path", str(package), "--show-bin-path"],
                              capture_output=True, text=True, timeout=120).stdout.strip()
    return Path(bin_path) / name


def test_quickstart_writes_reads_back_and_ends(make_server):
    server = make_server()
    executable = build_example("QuickStart")
    for attempt in (1, 2):  # the second run finds its topic already there
        ran = subprocess.run([str(executable), server.target], capture_output=True, text=True,
                             timeout=EXAMPLE_RUN_BOUND_S)
        assert ran.returncode == 0, f"run {attempt}: {ran.stdout}\n{ran.stderr}"
        lines = ran.stdout.splitlines()
        wrote = [line for line in lines if line.startswith("wrote ")]
        read = [line for line in lines if line.startswith("read ")]
        assert len(wrote) == 3 and len(read) == 3, ran.stdout
        # Every record written is read back with its key and value, and the run ends.
        assert sorted(line[len("wrote "):] for line in wrote) == sorted(line[len("read "):] for line in read)
        assert lines[-1] == "done"
