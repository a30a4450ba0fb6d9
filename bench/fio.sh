#!/usr/bin/env bash
# The fio jobs that match the storage benchmark's patterns, run in the same sitting so
# only ratios are compared (fdatasync costs differ up to twentyfold between machines).
# Usage: bench/fio.sh [directory]   (default $SLUICE_BENCH_DIR or /tmp/sluice-bench;
# use the same directory as the Swift benchmark so both hit the same file system).
# Prints one line per job: name, MB/s (10^6 bytes), operations/s, fdatasync p50 in ms.
set -euo pipefail
# A failed command names itself: a script never ends without saying why.
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

dir="${1:-${SLUICE_BENCH_DIR:-/tmp/sluice-bench}}/fio"
size="${SLUICE_FIO_SIZE:-512M}"
if ! command -v fio >/dev/null; then
    echo "fio missing: apt-get install -y fio" >&2
    exit 1
fi
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

run() {
    local name="$1"; shift
    # SLUICE_FIO_JOBS: space-separated job names to run (default all).
    if [[ -n "${SLUICE_FIO_JOBS:-}" && " $SLUICE_FIO_JOBS " != *" $name "* ]]; then return; fi
    rm -f "$dir/$name"
    fio --name="$name" --filename="$dir/$name" --size="$size" --ioengine=psync \
        --output-format=json "$@" > "$dir/$name.json"
    python3 - "$dir/$name.json" "$name" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side = job["write"] if job["write"]["io_bytes"] > 0 else job["read"]
sync = job.get("sync", {}).get("lat_ns", {}).get("percentile", {})
p50 = sync.get("50.000000")
print(f"{sys.argv[2]:<28} {side['bw_bytes'] / 1e6:9.1f} MB/s {side['iops']:10.0f} ops/s"
      + (f"   fdatasync p50 {p50 / 1e6:.2f} ms" if p50 else ""))
PY
}

echo "fio $(fio --version), size $size per job, in $dir"
# Durable appends: one fdatasync per write, like `fsync always` without group commit.
# fio preallocates the file by default (fallocate), which spares each fdatasync the
# size update a growing log pays; both are measured.
run write-64k-fdatasync-growing --rw=write --bs=64k --fdatasync=1 --fallocate=none
run write-1m-fdatasync-growing  --rw=write --bs=1m  --fdatasync=1 --fallocate=none
run write-64k-fdatasync  --rw=write --bs=64k --fdatasync=1
run write-1m-fdatasync   --rw=write --bs=1m  --fdatasync=1
# Buffered appends, one fsync at the end, like `fsync never` (and `interval` at large N).
run write-64k-buffered   --rw=write --bs=64k --end_fsync=1
run write-1m-buffered    --rw=write --bs=1m  --end_fsync=1
# Sequential read of the file just written, page cache warm as for a tailing subscriber.
run read-1m-cached       --rw=read  --bs=1m  --invalidate=0 --pre_read=1
