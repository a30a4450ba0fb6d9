#!/usr/bin/env bash
# 10,000 partitions on one broker: resident memory per idle partition, open files, and
# the time to create them and to start again over them (docs/profiles.md, "Scale").
#
# Usage: bench/partitions-scale.sh [partitions] [sluice binary]
#   partitions: default 10000, created as topics of at most 1000 partitions each;
#   binary: default .build/release/sluice if built, else .build/debug/sluice.
# Every wait is bounded (SLUICE_SCALE_TIMEOUT seconds each, default 300). The data
# directory is a fresh one under ${SLUICE_BENCH_DIR:-/tmp/sluice-bench}, removed at exit.
# Prints one "name: value" line per figure.
set -euo pipefail
# A failed command names itself: a script never ends without saying why.
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."

partitions="${1:-10000}"
binary="${2:-}"
if [[ -z "$binary" ]]; then
    if [[ -x .build/release/sluice ]]; then binary=.build/release/sluice; else binary=.build/debug/sluice; fi
fi
timeout_s="${SLUICE_SCALE_TIMEOUT:-300}"
root="${SLUICE_BENCH_DIR:-/tmp/sluice-bench}/scale-$$"
mkdir -p "$root"
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    rm -rf "$root"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }

# Starts the broker; sets pid, port and listen_ms (milliseconds until it listened).
start() {
    local out="$root/stdout" started
    : > "$out"
    started=$(now_ms)
    "$binary" serve --listen 127.0.0.1:0 --data-dir "$root/data" --log-level warning --fsync never \
        "$@" > "$out" 2> "$root/stderr" &
    pid=$!
    local deadline=$(( $(date +%s) + timeout_s ))
    until grep -q "sluice listening on" "$out"; do
        if ! kill -0 "$pid" 2>/dev/null; then echo "sluice serve exited:" >&2; cat "$root/stderr" >&2; exit 1; fi
        if (( $(date +%s) > deadline )); then echo "sluice serve did not listen within ${timeout_s}s" >&2; exit 1; fi
        sleep 0.05
    done
    listen_ms=$(( $(now_ms) - started ))
    port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$out")
}

stop() {
    kill -TERM "$pid"
    wait "$pid" || true
    pid=""
}

echo "binary: $binary"
echo "fd limit: $(ulimit -n)"
start
start_ms=$listen_ms
sleep 1  # let the process settle before the idle sample (a sample, not synchronisation)
idle_rss=$(rss_kib "$pid"); idle_fds=$(fds "$pid")
echo "empty broker: start ${start_ms} ms, RSS ${idle_rss} KiB, open files ${idle_fds}"

created_start=$(now_ms)
remaining=$partitions; index=0
while (( remaining > 0 )); do
    count=$(( remaining > 1000 ? 1000 : remaining ))
    timeout "$timeout_s" "$binary" topic create --broker "127.0.0.1:$port" --timeout "$timeout_s" \
        --partitions "$count" "scale-$index" > /dev/null
    remaining=$(( remaining - count )); index=$(( index + 1 ))
done
create_ms=$(( $(now_ms) - created_start ))
sleep 1
full_rss=$(rss_kib "$pid"); full_fds=$(fds "$pid")
echo "created ${partitions} partitions in ${create_ms} ms"
echo "after creating: RSS ${full_rss} KiB, open files ${full_fds}"
echo "per idle partition: $(( (full_rss - idle_rss) * 1024 / partitions )) bytes RSS, $(awk -v a="$full_fds" -v b="$idle_fds" -v p="$partitions" 'BEGIN { printf "%.2f", (a - b) / p }') open files"
stop

start
restart_ms=$listen_ms
sleep 1
echo "restart over ${partitions} partitions: listening after ${restart_ms} ms, RSS $(rss_kib "$pid") KiB, open files $(fds "$pid")"
stop_started=$(now_ms); stop
echo "clean shutdown: $(( $(now_ms) - stop_started )) ms"
echo "data directory: $(du -sh "$root/data" | cut -f1), $(find "$root/data" -type f | wc -l) files"
