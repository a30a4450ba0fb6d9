"""scripts/install-deps.sh as a fresh machine sees it, with the package tools stubbed.

The machines that run CI already have every package, so a green CI says nothing about a
fresh one (a fresh machine once got a silent exit 1 here: `dpkg-query` exits non-zero for
a package it has never heard of, and `set -o pipefail` ended the script). These tests run
the real script with a PATH whose first entry holds stubs:

- `dpkg-query` knows only the packages listed in a state file (none at first), the way a
  machine with only the toolchain answers;
- `apt-get` records its arguments and "installs" what it is asked for by adding it to
  that state file, so the script's check after installing sees the packages;
- `python3 -m venv DIR` makes DIR/bin/python, a stub that records pip's arguments;
- `id` and `sudo` let a test play a non-root user.

Everything else (bash, awk, sha256sum, dpkg --compare-versions) is the real tool.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "install-deps.sh"
APT_PACKAGES = [
    "libnghttp2-dev", "libzstd-dev", "liblz4-dev", "libprotobuf-c-dev", "protobuf-c-compiler",
    "protobuf-compiler", "etcd-server", "python3-venv", "iproute2",
]
NGHTTP2_OK = "1.52.0-1+deb12u3"

DPKG_QUERY = r"""#!/bin/bash
# dpkg-query -W -f=FORMAT PACKAGE: prints "install ok installed VERSION" for a package in
# $STUB_STATE ("name version" lines); otherwise says what the real one says, exit 1.
pkg="${@: -1}"
line="$(grep -m1 "^$pkg " "$STUB_STATE" 2>/dev/null)"
if [[ -z "$line" ]]; then
    echo "dpkg-query: no packages found matching $pkg" >&2
    exit 1
fi
echo "install ok installed ${line#* }"
"""

APT_GET = r"""#!/bin/bash
echo "apt-get $*" >> "$STUB_LOG"
[[ -n "${STUB_APT_FAIL:-}" && "$1" == "$STUB_APT_FAIL" ]] && { echo "E: stubbed failure" >&2; exit 100; }
if [[ "$1" == install ]]; then
    for arg in "$@"; do
        [[ "$arg" == install || "$arg" == -* ]] || sed -i "/^$arg /d" "$STUB_STATE"
        case "$arg" in
            install|-*) ;;
            libnghttp2-dev) echo "$arg ${STUB_NGHTTP2_VERSION}" >> "$STUB_STATE" ;;
            *) echo "$arg 1.0-1" >> "$STUB_STATE" ;;
        esac
    done
fi
exit 0
"""

PYTHON3 = r"""#!/bin/bash
# Only `python3 -m venv DIR` is expected; its python records pip's arguments.
echo "python3 $*" >> "$STUB_LOG"
if [[ "$1" == -m && "$2" == venv ]]; then
    mkdir -p "$3/bin"
    cat > "$3/bin/python" <<'PY'
#!/bin/bash
echo "venv-python $*" >> "$STUB_LOG"
PY
    chmod +x "$3/bin/python"
    exit 0
fi
echo "python3 stub: unexpected arguments: $*" >&2
exit 2
"""

ID = r"""#!/bin/bash
if [[ "$1" == -u ]]; then echo "${STUB_UID:-0}"; else /usr/bin/id "$@"; fi
"""

SUDO = r"""#!/bin/bash
echo "sudo $1" >> "$STUB_LOG"
exec "$@"
"""


class FreshMachine:
    def __init__(self, root: Path):
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        for name, text in [("dpkg-query", DPKG_QUERY), ("apt-get", APT_GET), ("python3", PYTHON3),
                           ("id", ID), ("sudo", SUDO)]:
            path = self.bin / name
            path.write_text(text)
            path.chmod(0o755)
        self.state = root / "dpkg-state"
        self.state.write_text("")
        self.log = root / "calls.log"
        self.log.write_text("")
        self.venv = root / "cache" / "venv"

    def run(self, **env_overrides: str) -> subprocess.CompletedProcess:
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.root / "home"),
            "SLUICE_VENV": str(self.venv),
            "STUB_STATE": str(self.state),
            "STUB_LOG": str(self.log),
            "STUB_NGHTTP2_VERSION": NGHTTP2_OK,
        }
        env.update(env_overrides)
        return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture
def machine(tmp_path: Path) -> FreshMachine:
    return FreshMachine(tmp_path)


def test_fresh_machine_installs_every_package_and_reaches_the_last_line(machine: FreshMachine):
    result = machine.run()
    assert result.returncode == 0, result.stdout + result.stderr
    calls = machine.calls()
    assert "apt-get update -q" in calls
    install = [c for c in calls if c.startswith("apt-get install")]
    assert len(install) == 1, calls
    assert install[0].split()[-len(APT_PACKAGES):] == APT_PACKAGES
    assert f"python3 -m venv {machine.venv}" in calls
    pip = [c for c in calls if c.startswith("venv-python")]
    assert pip == [f"venv-python -m pip install -q -r tests/interop/requirements.txt"], calls
    lines = result.stdout.splitlines()
    assert lines[-1] == f"python: {machine.venv}/bin/python"
    assert f"install-deps: apt-get install {' '.join(APT_PACKAGES)}" in lines


def test_second_run_installs_nothing(machine: FreshMachine):
    assert machine.run().returncode == 0
    machine.log.write_text("")
    result = machine.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert machine.calls() == []
    assert "install-deps: apt packages present" in result.stdout
    assert result.stdout.splitlines()[-1] == f"python: {machine.venv}/bin/python"


def test_only_missing_packages_are_asked_for(machine: FreshMachine):
    machine.state.write_text("".join(f"{p} 1.0-1\n" for p in APT_PACKAGES if p not in ("etcd-server", "libzstd-dev"))
                             .replace("libnghttp2-dev 1.0-1", f"libnghttp2-dev {NGHTTP2_OK}"))
    result = machine.run()
    assert result.returncode == 0, result.stdout + result.stderr
    install = [c for c in machine.calls() if c.startswith("apt-get install")]
    assert install == ["apt-get install -y -q libzstd-dev etcd-server"]


def test_old_nghttp2_is_upgraded(machine: FreshMachine):
    machine.state.write_text("".join(f"{p} 1.0-1\n" for p in APT_PACKAGES if p != "libnghttp2-dev")
                             + "libnghttp2-dev 1.52.0-1+deb12u2\n")
    result = machine.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is older than" in result.stdout
    assert [c for c in machine.calls() if c.startswith("apt-get install")] == ["apt-get install -y -q libnghttp2-dev"]


def test_non_root_uses_sudo(machine: FreshMachine):
    result = machine.run(STUB_UID="1000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sudo apt-get" in machine.calls()


def test_a_failed_apt_get_names_the_step(machine: FreshMachine):
    result = machine.run(STUB_APT_FAIL="install")
    assert result.returncode != 0
    assert "install-deps: failed while running apt-get install" in result.stderr, result.stderr


def test_an_nghttp2_still_too_old_after_install_is_reported(machine: FreshMachine):
    result = machine.run(STUB_NGHTTP2_VERSION="1.52.0-1+deb12u2")
    assert result.returncode != 0
    assert "libnghttp2-dev 1.52.0-1+deb12u2 is older than" in result.stderr


def test_a_failed_venv_names_the_step(machine: FreshMachine):
    (machine.bin / "python3").write_text("#!/bin/bash\necho 'No module named venv' >&2\nexit 1\n")
    result = machine.run()
    assert result.returncode != 0
    assert "install-deps: failed while creating the venv" in result.stderr, result.stderr
