#!/usr/bin/env bash
# Starts a release `sluice serve` (fsync never, a fresh data directory, a free port), runs
# SluiceWireBench against it, and stops it. Numbers go to docs/benchmarks-perf-notes.md.
# Usage: bench/wire.sh   (SluiceWireBench's SLUICE_WIRE_* variables pass through;
# SLUICE_WIRE_BROKER_WRAPPER, e.g. "valgrind --tool=callgrind", runs the broker under a tool)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product sluice >/dev/null
swift build -c release --package-path bench --product SluiceWireBench >/dev/null
dir=$(mktemp -d /tmp/sluice-wirebench.XXXXXX)
out="$dir/serve.out"
${SLUICE_WIRE_BROKER_WRAPPER:-} .build/release/sluice serve --data-dir "$dir/data" --listen 127.0.0.1:0 \
    --fsync never --log-level warning >"$out" 2>"$dir/serve.err" &
broker=$!
trap 'kill -INT $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 600); do
    grep -q "listening on" "$out" 2>/dev/null && break
    sleep 0.1
done
address=$(sed -n 's/^sluice listening on //p' "$out")
[[ -n "$address" ]] || { echo "the broker did not start:" >&2; cat "$dir/serve.err" >&2; exit 1; }
bench/.build/release/SluiceWireBench "$address"
