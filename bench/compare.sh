#!/usr/bin/env bash
# Runs each fio job and its PartitionLog counterpart back to back, alternating, for
# several rounds, and prints the medians and the ratio log/fio as a Markdown table.
# The machines this runs on are shared and noisy (fdatasync latency varies 2x from one
# minute to the next), so only adjacent, repeated, paired runs give a usable ratio.
# Usage: bench/compare.sh [rounds]   (env: SLUICE_BENCH_DIR, SLUICE_COMPARE_SIZE=128M)
set -euo pipefail
# A failed command names itself: a script never ends without saying why.
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
rounds="${1:-3}"
size="${SLUICE_COMPARE_SIZE:-128M}"
bytes=$(( ${size%M} << 20 ))
dir="${SLUICE_BENCH_DIR:-/tmp/sluice-bench}"
swift build -c release --package-path bench >/dev/null
bench=bench/.build/release/SluiceStorageBench

pairs=(
    "write-64k-fdatasync-growing append-64k-always-1"
    "write-64k-fdatasync append-64k-always-1"
    "write-1m-fdatasync-growing append-1m-always-1"
    "write-1m-fdatasync append-1m-always-1"
    "write-64k-buffered append-64k-never"
    "write-1m-buffered append-1m-never"
    "read-1m-cached read-1m"
)
results=$(mktemp)
for round in $(seq "$rounds"); do
    for pair in "${pairs[@]}"; do
        set -- $pair
        fio_mbs=$(SLUICE_FIO_JOBS="$1" SLUICE_FIO_SIZE="$size" bench/fio.sh "$dir" | awk -v job="$1" '$1 == job { print $2 }')
        if [[ "$2" == read-1m ]]; then cases="append-1m-never,read-1m"; else cases="$2"; fi
        log_mbs=$(SLUICE_BENCH_CASES="$cases" SLUICE_BENCH_BYTES="$bytes" "$bench" "$dir" \
            | awk -F'|' -v c="$2" '{ gsub(/ /, "", $2) } $2 ~ "^"c { gsub(/ /, "", $3); print $3 }')
        echo "$1 $2 $fio_mbs $log_mbs" >> "$results"
        echo "round $round: $1 $fio_mbs MB/s, $2 $log_mbs MB/s" >&2
    done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    fio_job, case, fio, log = line.split()
    rows.setdefault((fio_job, case), []).append((float(fio), float(log)))
print("| fio job | fio MB/s (median) | log case | log MB/s (median) | log/fio (median of per-round ratios) |")
print("|---|---:|---|---:|---:|")
for (fio_job, case), values in rows.items():
    fio = statistics.median(v[0] for v in values)
    log = statistics.median(v[1] for v in values)
    ratio = statistics.median(v[1] / v[0] for v in values)
    print(f"| {fio_job} | {fio:.1f} | {case} | {log:.1f} | {ratio:.0%} |")
PY
rm -f "$results"
