#!/usr/bin/env bash
# Installs what building and testing Sluice needs on a Debian 12 machine, and nothing
# else. Idempotent: a second run checks versions and returns in about a second.
#
#   apt:  libnghttp2-dev (>= 1.52.0-1+deb12u3: Rapid Reset, CONTINUATION flood and
#         CVE-2026-27135 fixes), libzstd-dev and liblz4-dev (batch compression),
#         libprotobuf-c-dev, protobuf-c-compiler, protobuf-compiler,
#         etcd-server (the etcd interop test), python3-venv, iproute2 (`ip netns`: the
#         fault suite's network namespaces)
#   pip:  tests/interop/requirements.txt, into a virtual environment (default
#         ~/.cache/sluice/interop-venv, or $SLUICE_VENV) that is rebuilt only when the
#         requirements file changes. scripts/test.sh runs pytest with its python.
#
# Prints what it does, each step on its own line; the venv's python path is the last
# line ("python: PATH"). On any failure it says which step failed and exits non-zero:
# it never ends silently (tests/interop/test_install_deps.py runs it against stubbed
# dpkg-query, apt-get and python3, as a fresh machine would look).
set -euo pipefail
cd "$(dirname "$0")/.."

step="starting"
trap 'status=$?; echo "install-deps: failed while ${step} (exit ${status}, line ${LINENO})" >&2' ERR

APT_PACKAGES=(libnghttp2-dev libzstd-dev liblz4-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler etcd-server python3-venv iproute2)
NGHTTP2_MIN="1.52.0-1+deb12u3"

# The installed version of a package, or nothing when it is not installed. dpkg-query
# exits non-zero for a package it has never heard of (a fresh machine): that is an
# answer here, not a failure, so the pipeline's status is deliberately ignored.
installed_version() {
    { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null || true; } \
        | awk '$3 == "installed" { print $4 }'
}

step="checking installed apt packages"
apt_missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    version="$(installed_version "$pkg")"
    if [[ -z "$version" ]]; then
        apt_missing+=("$pkg")
    elif [[ "$pkg" == libnghttp2-dev ]] && ! dpkg --compare-versions "$version" ge "$NGHTTP2_MIN"; then
        echo "install-deps: libnghttp2-dev $version is older than $NGHTTP2_MIN; upgrading"
        apt_missing+=("$pkg")
    fi
done

if (( ${#apt_missing[@]} > 0 )); then
    echo "install-deps: apt-get install ${apt_missing[*]}"
    SUDO=""
    if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    step="running apt-get update"
    $SUDO apt-get update -q
    step="running apt-get install ${apt_missing[*]}"
    $SUDO apt-get install -y -q "${apt_missing[@]}"
    step="checking the libnghttp2-dev version"
    version="$(installed_version libnghttp2-dev)"
    if [[ -z "$version" ]] || ! dpkg --compare-versions "$version" ge "$NGHTTP2_MIN"; then
        echo "install-deps: libnghttp2-dev ${version:-(not installed)} is older than $NGHTTP2_MIN" >&2
        exit 1
    fi
else
    echo "install-deps: apt packages present"
fi

step="setting up the python venv"
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
    step="creating the venv $VENV (python3 -m venv)"
    python3 -m venv "$VENV"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    step="installing $REQUIREMENTS into $VENV"
    "$VENV/bin/python" -m pip install -q -r "$REQUIREMENTS"
    echo "$wanted" > "$STAMP"
fi
step="finishing"
echo "install-deps: done"
echo "python: $VENV/bin/python"
