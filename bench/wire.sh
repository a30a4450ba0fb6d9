#!/usr/bin/env bash
# Starts a release `sluice serve` (fsync never, a fresh data directory, a free port), runs
# SluiceWireBench against it, prints both processes' CPU time, and stops the broker.
# Numbers: docs/benchmarks-perf-notes.md.
# Usage: bench/wire.sh   (SluiceWireBench's SLUICE_WIRE_* variables pass through)
#   SLUICE_WIRE_BROKER_WRAPPER  runs the broker under a tool, e.g. "valgrind --tool=callgrind"
#   SLUICE_WIRE_BROKER, SLUICE_WIRE_BENCH  binaries to use instead of building (to compare
#                               commits: save both binaries of each commit aside)
set -euo pipefail
# A failed command names itself: a script never ends without saying why.
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
broker_binary=${SLUICE_WIRE_BROKER:-.build/release/sluice}
bench_binary=${SLUICE_WIRE_BENCH:-bench/.build/release/SluiceWireBench}
if [[ -z "${SLUICE_WIRE_BROKER:-}" ]]; then swift build -c release --product sluice >/dev/null; fi
if [[ -z "${SLUICE_WIRE_BENCH:-}" ]]; then
    # SwiftPM does not notice source files added to the root package (a path dependency
    # here) until the bench manifest changes; without this the harness silently links stale code.
    touch bench/Package.swift
    swift build -c release --package-path bench --product SluiceWireBench >/dev/null
fi
dir=$(mktemp -d /tmp/sluice-wirebench.XXXXXX)
out="$dir/serve.out"
${SLUICE_WIRE_BROKER_WRAPPER:-} "$broker_binary" serve --data-dir "$dir/data" --listen 127.0.0.1:0 \
    --fsync never --log-level warning >"$out" 2>"$dir/serve.err" &
broker=$!
trap 'kill -INT $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 600); do
    grep -q "listening on" "$out" 2>/dev/null && break
    sleep 0.1
done
address=$(sed -n 's/^sluice listening on //p' "$out")
[[ -n "$address" ]] || { echo "the broker did not start:" >&2; cat "$dir/serve.err" >&2; exit 1; }
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "client cpu: %U s user, %S s sys, %e s wall" "$bench_binary" "$address"
else
    "$bench_binary" "$address"
fi
# The broker's utime and stime: fields 14 and 15 of /proc/PID/stat, in clock ticks.
awk -v t="$(getconf CLK_TCK)" '{ printf "broker cpu: %.2f s user, %.2f s sys\n", $14 / t, $15 / t }' "/proc/$broker/stat"
