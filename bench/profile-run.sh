#!/usr/bin/env bash
# "Where the time goes" for one figure of bench/run-all.sh: starts a fresh broker, runs one
# `sluice bench` under `perf record -g` while a second perf records the broker, counts the
# broker's fdatasync/fsync/sendmsg/recvfrom/futex calls, and prints each side's top costs
# (self time by library and symbol, Swift names demangled) and its CPU split by thread.
#
# Usage: bench/profile-run.sh NAME FSYNC -- BENCH ARGUMENTS...
#   e.g. bench/profile-run.sh ingest-8 never -- produce --topic ingest-8 --partitions 8 \
#            --acks leader --profile throughput --warmup 2 --duration 10
# Env: SLUICE_BENCH_DIR (default /tmp/sluice-bench; profiles go to $dir/profiles/NAME),
# SLUICE_BINARY (default .build/release/sluice), SLUICE_PERF_FREQ (default 499 Hz),
# SLUICE_PROFILE_PRELOAD (bench arguments run before the profiled one, e.g. to fill a
# backlog: "produce --topic backlog --partitions 1 --acks leader --messages 1048576").
# Every step is bounded by timeout or the bench's --time-limit.
set -euo pipefail
# A failed command names itself: a script never ends without saying why.
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
name="$1"; fsync="$2"; shift 2
[[ "${1:-}" == "--" ]] && shift
dir="${SLUICE_BENCH_DIR:-/tmp/sluice-bench}"
out="$dir/profiles/$name"
sluice="${SLUICE_BINARY:-.build/release/sluice}"
freq="${SLUICE_PERF_FREQ:-499}"
rm -rf "$out" "$dir/profile-data"; mkdir -p "$out"

"$sluice" serve --listen 127.0.0.1:0 --data-dir "$dir/profile-data" --log-level warning --fsync "$fsync" \
    > "$out/serve.out" 2> "$out/serve.err" &
broker=$!
trap 'kill $broker 2>/dev/null || true; wait $broker 2>/dev/null || true' EXIT
port=""
for _ in $(seq 200); do
    port=$(sed -n 's/^sluice listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$out/serve.out")
    [[ -n "$port" ]] && break
    sleep 0.1
done
[[ -n "$port" ]] || { echo "sluice serve did not start" >&2; exit 1; }

if [[ -n "${SLUICE_PROFILE_PRELOAD:-}" ]]; then
    # shellcheck disable=SC2086
    "$sluice" bench $SLUICE_PROFILE_PRELOAD --broker "127.0.0.1:$port" --json --time-limit 600 > "$out/preload.json" 2> "$out/preload.err" || true
fi

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$broker/stat"; }  # utime + stime, clock ticks
ticks_before=$(cpu_ticks); wall_before=$(date +%s.%N)
perf record -F "$freq" -g -p "$broker" -o "$out/broker.data" 2> "$out/perf-broker.err" &
perf_broker=$!
perf stat -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_enter_sendmsg,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_futex,sched:sched_switch \
    -p "$broker" -o "$out/broker.stat" 2> /dev/null &
perf_stat=$!
echo "sluice bench $*" > "$out/bench.cmd"
timeout 900 perf record -F "$freq" -g -o "$out/bench.data" -- \
    "$sluice" bench "$@" --broker "127.0.0.1:$port" --json --progress-interval 5 --time-limit 600 \
    > "$out/bench.json" 2> "$out/bench.err" || true
ticks_after=$(cpu_ticks); wall_after=$(date +%s.%N)
kill -INT "$perf_broker" "$perf_stat" 2>/dev/null || true
wait "$perf_broker" 2>/dev/null || true
wait "$perf_stat" 2>/dev/null || true

report() { # data file, title
    echo "## $2"
    perf report -i "$1" --stdio -g none --sort comm 2>/dev/null | grep -m1 "^# Samples" \
        | sed "s/\$/ (at $freq Hz: CPU seconds = samples \/ $freq)/"
    echo "### CPU by thread"
    perf report -i "$1" --stdio --no-children --sort comm -g none --percent-limit 2 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
    echo "### CPU by library"
    perf report -i "$1" --stdio --no-children --sort dso -g none --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
    echo "### top symbols (self)"
    perf report -i "$1" --stdio --no-children --no-demangle --sort dso,sym -g none --percent-limit 0.7 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -40 | swift demangle --simplified | cut -c1-200
}
{
    echo "# $name: sluice bench $*"
    echo "fsync $fsync; samples at $freq Hz"
    tail -n 1 "$out/bench.json"
    awk -v t=$((ticks_after - ticks_before)) -v hz="$(getconf CLK_TCK)" -v a="$wall_before" -v b="$wall_after" \
        'BEGIN { printf "broker CPU %.2f s over %.2f s of wall time (/proc/PID/stat)\n", t / hz, b - a }'
    echo "## broker syscalls and context switches during the run (perf stat)"
    grep -v '^#' "$out/broker.stat" | grep -v '^$' | cut -d, -f1,3
    report "$out/broker.data" "broker"
    report "$out/bench.data" "bench client"
} > "$out/summary.txt" 2>&1
cat "$out/summary.txt"
