#!/usr/bin/env bash
# Installs what building and testing Sluice needs on a Debian 12 machine, and nothing
# else. Idempotent: a second run checks versions and returns in about a second.
#
#   apt:  libnghttp2-dev (>= 1.52.0-1+deb12u3: Rapid Reset, CONTINUATION flood and
#         CVE-2026-27135 fixes), libzstd-dev and liblz4-dev (batch compression),
#         libprotobuf-c-dev, protobuf-c-compiler, protobuf-compiler,
#         etcd-server (the etcd interop test), python3-venv
#   pip:  tests/interop/requirements.txt, into a virtual environment (default
#         ~/.cache/sluice/interop-venv, or $SLUICE_VENV) that is rebuilt only when the
#         requirements file changes. scripts/test.sh runs pytest with its python.
#
# Prints the venv's python path as its last line ("python: PATH").
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libnghttp2-dev libzstd-dev liblz4-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler etcd-server python3-venv)
NGHTTP2_MIN="1.52.0-1+deb12u3"

installed_version() {
    dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '$3 == "installed" { print $4 }'
}

apt_missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    version="$(installed_version "$pkg")"
    if [[ -z "$version" ]]; then
        apt_missing+=("$pkg")
    elif [[ "$pkg" == libnghttp2-dev ]] && ! dpkg --compare-versions "$version" ge "$NGHTTP2_MIN"; then
        apt_missing+=("$pkg")
    fi
done

if (( ${#apt_missing[@]} > 0 )); then
    echo "install-deps: apt-get install ${apt_missing[*]}"
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q "${apt_missing[@]}"
    version="$(installed_version libnghttp2-dev)"
    if ! dpkg --compare-versions "$version" ge "$NGHTTP2_MIN"; then
        echo "install-deps: libnghttp2-dev $version is older than $NGHTTP2_MIN" >&2
        exit 1
    fi
else
    echo "install-deps: apt packages present"
fi

VENV="${SLUICE_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/sluice/interop-venv}"
REQUIREMENTS="tests/interop/requirements.txt"
STAMP="$VENV/.sluice-requirements.sha256"
wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$wanted" ]]; then
    echo "install-deps: python packages present in $VENV"
else
    echo "install-deps: creating $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    "$VENV/bin/python" -m pip install -q -r "$REQUIREMENTS"
    echo "$wanted" > "$STAMP"
fi
echo "python: $VENV/bin/python"
