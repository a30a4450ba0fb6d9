#!/usr/bin/env bash
# Builds and runs a single-node broker: installs what the build needs, builds the
# release `sluice` binary, then replaces itself with `sluice serve`. Arguments go to
# `sluice serve` (see `sluice serve --help`); without --data-dir / --listen it serves
# ./sluice-data on 127.0.0.1:9092. Stop it with Ctrl-C or SIGTERM (graceful shutdown).
set -euo pipefail
cd "$(dirname "$0")/.."
# The toolchain lives in /opt/swift; a login shell adds it to PATH, a bare CI shell may not.
if ! command -v swift >/dev/null && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="$PATH:/opt/swift/usr/bin"
fi

step="starting"
trap 'status=$?; echo "run-broker: failed while ${step} (exit ${status})" >&2' ERR

if ! command -v swift >/dev/null; then
    echo "run-broker: no swift toolchain on PATH (looked in PATH and /opt/swift/usr/bin)" >&2
    exit 1
fi
step="installing dependencies (scripts/install-deps.sh)"
echo "run-broker: ${step}"
scripts/install-deps.sh
step="building the release sluice binary (swift build -c release --product sluice)"
echo "run-broker: ${step}"
swift build -c release --product sluice
step="finding the built binary"
bin="$(swift build -c release --show-bin-path)/sluice"

args=("$@")
has_flag() {
    local flag="$1" arg
    for arg in "${args[@]}"; do
        if [[ "$arg" == "$flag" || "$arg" == "$flag="* ]]; then return 0; fi
    done
    return 1
}
defaults=()
if ! has_flag --data-dir; then defaults+=(--data-dir ./sluice-data); fi
if ! has_flag --listen; then defaults+=(--listen 127.0.0.1:9092); fi

echo "run-broker: exec $bin serve ${defaults[*]} ${args[*]}"
exec "$bin" serve "${defaults[@]}" "${args[@]}"
