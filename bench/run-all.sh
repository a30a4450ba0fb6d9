#!/usr/bin/env bash
# One sitting of every broker figure of issue 6 and its ceilings and peer: fio (buffered
# sequential write, fdatasync every 1 MiB, fdatasync latency), NATS JetStream (file stream,
# one replica, 1 KiB: published without PubAck and with one, and its driver alone against a
# discarding sink), and Sluice (acks none beside the unacknowledged NATS figure), (ingest, durable ingest with syncs counted,
# catch-up read of a 2 GiB backlog, end-to-end latency at 10k msgs/s). Builds release first.
# Prints a Markdown section ready to paste into docs/benchmarks.md (progress goes to stderr;
# raw JSON and logs stay in $dir/results).
#
# Usage: bench/run-all.sh [all|surge|scale] > figures.md
#   all (default): every figure below, then the surge row (about 6-12 minutes in all);
#   surge: only the surge row (a brief durable-rate measurement, then the surge);
#   scale: only the scale row (bench/partitions-scale.sh, 10-20 minutes; SLUICE_SCALE=1 adds it to all).
# Env: SLUICE_SURGE_SECONDS (surge length, default 60), SLUICE_SURGE_BUDGET (broker
# --max-inflight-bytes in the surge, default 67108864), SLUICE_SCALE_PARTITIONS (default 10000),
# SLUICE_BENCH_DIR (default /tmp/sluice-bench; the disk measured), SLUICE_RUN_SECONDS
# (seconds per measured run, default 10), SLUICE_BACKLOG_MESSAGES (catch-up backlog in 1 KiB
# records, default 2097152 = 2 GiB), SLUICE_FIO_SIZE (default 1G), SLUICE_SKIP_BUILD=1.
# Needs fio, nats-server (apt-get install -y fio nats-server), python3; perf for sync counts
# (optional). Every step is bounded by `timeout` or the bench's --time-limit; the whole
# script takes about 6-10 minutes plus the surge (about 1.5 minutes at the default 60 s).
set -euo pipefail
# A failed command names itself: a script never ends without saying why.
trap 'echo "$(basename "$0"): failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
root=$(pwd)
dir="${SLUICE_BENCH_DIR:-/tmp/sluice-bench}"
seconds="${SLUICE_RUN_SECONDS:-10}"
backlog="${SLUICE_BACKLOG_MESSAGES:-2097152}"
fio_size="${SLUICE_FIO_SIZE:-1G}"
results="$dir/results"
mode="${1:-all}"
case "$mode" in all|surge|scale) ;; *) echo "usage: $0 [all|surge|scale]" >&2; exit 2 ;; esac
mkdir -p "$results"
if [[ "$mode" == all ]]; then rm -f "$results"/*.json "$results"/surge* "$results"/scale*; fi
log() { echo "run-all: $*" >&2; }

for tool in fio nats-server python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y fio nats-server python3" >&2; exit 1; }
done
if [[ "${SLUICE_SKIP_BUILD:-}" != 1 ]]; then
    log "building release"
    swift build -c release --product sluice >&2
fi
sluice="$root/.build/release/sluice"
started=$(date -u +"%Y-%m-%d %H:%M")

if [[ "$mode" == all ]]; then
# --- fio: the disk's ceilings, same file system as the broker's data directory ---------------
fio_dir="$dir/fio"
mkdir -p "$fio_dir"
fio_job() { # name, fio options...
    local name="$1"; shift
    rm -f "$fio_dir/$name"
    log "fio $name"
    timeout 120 fio --name="$name" --filename="$fio_dir/$name" --size="$fio_size" --ioengine=psync \
        --runtime=60 --output-format=json "$@" > "$results/fio-$name.json"
    rm -f "$fio_dir/$name"
}
# Buffered sequential write of 64 KiB blocks, one fsync at the end (counted in fio's time).
fio_job buffered --rw=write --bs=64k --end_fsync=1
# The same bytes in 64 KiB writes with an fdatasync after every 1 MiB (16 writes), file not
# preallocated: what group commit should approach under fsync always.
fio_job fdatasync-1m --rw=write --bs=64k --fdatasync=16 --fallocate=none
# The cost of one fdatasync: 4 KiB appends, each followed by fdatasync, 15 s.
fio_job fdatasync-latency --rw=write --bs=4k --fdatasync=1 --fallocate=none --runtime=15 --time_based

# --- NATS JetStream ----------------------------------------------------------------------------
nats_port=14222
rm -rf "$dir/nats"
nats-server -js -sd "$dir/nats" -a 127.0.0.1 -p "$nats_port" > "$results/nats-server.log" 2>&1 &
nats_pid=$!
trap 'kill $nats_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$nats_port) 2>/dev/null && break; sleep 0.1; done
log "nats publish (no PubAck; end found by stream info)"
timeout 180 python3 bench/nats-bench.py publish --port "$nats_port" --duration "$seconds" > "$results/nats-publish.json"
log "nats ingest (every message acknowledged)"
timeout 120 python3 bench/nats-bench.py ingest --port "$nats_port" --duration "$seconds" > "$results/nats-ingest.json"
log "nats end-to-end at 10k msgs/s"
timeout 120 python3 bench/nats-bench.py e2e --port "$nats_port" --duration "$seconds" --rate 10000 > "$results/nats-e2e.json"
kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true
trap - EXIT

# --- The NATS driver alone: the same publisher against a server that discards ------------------
sink_port=14223
python3 bench/nats-bench.py sink --port "$sink_port" > "$results/sink.log" 2>&1 &
sink_pid=$!
trap 'kill $sink_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$sink_port) 2>/dev/null && break; sleep 0.1; done
log "nats driver alone (publish --sink)"
timeout 120 python3 bench/nats-bench.py publish --sink --port "$sink_port" --duration "$seconds" > "$results/nats-driver-alone.json"
kill "$sink_pid"; wait "$sink_pid" 2>/dev/null || true
trap - EXIT
fi

# --- Sluice ------------------------------------------------------------------------------------
broker_pid=""
broker_port=""
start_broker() { # fsync policy, extra serve options...
    local fsync="$1"; shift
    rm -rf "$dir/sluice-data"
    : > "$results/serve.out"
    "$sluice" serve --listen 127.0.0.1:0 --data-dir "$dir/sluice-data" --log-level warning --fsync "$fsync" "$@" \
        > "$results/serve.out" 2>> "$results/serve.err" &
    broker_pid=$!
    for _ in $(seq 200); do
        broker_port=$(sed -n 's/^sluice listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$results/serve.out")
        [[ -n "$broker_port" ]] && return
        sleep 0.1
    done
    echo "sluice serve did not start" >&2; exit 1
}
stop_broker() {
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
}
trap 'stop_broker' EXIT
bench() { # name, bench arguments...
    local name="$1"; shift
    log "sluice $name: $*"
    echo "sluice bench $*" > "$results/$name.cmd"
    # A failed check (exit 1) still writes its JSON; the table shows it.
    "$sluice" bench "$@" --broker "127.0.0.1:$broker_port" --json --progress-interval 5 \
        --time-limit $((seconds * 3 + 120)) > "$results/$name.json" 2> "$results/$name.err" || true
}
count_syncs() { # name, then the bench arguments: counts fdatasync/fsync calls of the broker
    local name="$1"; shift
    if perf stat -e syscalls:sys_enter_fdatasync -a -- true >/dev/null 2>&1; then
        perf stat -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -p "$broker_pid" \
            -o "$results/$name.perf" &
        local perf_pid=$!
        local before=$(date +%s.%N)
        bench "$name" "$@"
        local after=$(date +%s.%N)
        kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
        echo "$before $after" > "$results/$name.window"
    else
        bench "$name" "$@"
    fi
}

if [[ "$mode" == all ]]; then
start_broker never
bench ingest-1-none produce --topic ingest-1-none --partitions 1 --acks none --profile throughput --warmup 2 --duration "$seconds"
bench ingest-1 produce --topic ingest-1 --partitions 1 --acks leader --profile throughput --warmup 2 --duration "$seconds"
bench ingest-8 produce --topic ingest-8 --partitions 8 --acks leader --profile throughput --warmup 2 --duration "$seconds"
bench e2e-leader end-to-end --topic e2e-leader --partitions 1 --acks leader --profile latency --rate 10000 --warmup 2 --duration "$seconds"
bench backlog-fill produce --topic backlog --partitions 1 --acks leader --profile throughput --messages "$backlog"
bench catch-up consume --topic backlog --consumers 1
stop_broker

start_broker always
count_syncs durable-8 produce --topic durable-8 --partitions 8 --acks durable --profile throughput --warmup 2 --duration "$seconds"
bench e2e-durable end-to-end --topic e2e-durable --partitions 1 --acks durable --profile latency --rate 10000 --warmup 2 --duration "$seconds"
stop_broker
fi

# --- Surge: 10x the sustainable durable rate against a bounded broker ---------------------------
# The broker syncs every append (--fsync always) and holds at most $budget bytes of produce
# data between reading a batch and answering it. Its sustainable rate is the durable-8 figure of
# this sitting (or, run alone, a 5 s measurement on the same broker); the surge offers 10x that,
# open loop, from 4 producers (each its own connection and 128 MiB client buffer: the client's
# bound decides how much of the offer ever reaches the broker), with subscribers reading
# everything back. VmRSS of the broker is sampled every second.
if [[ "$mode" == all || "$mode" == surge ]]; then
surge_seconds="${SLUICE_SURGE_SECONDS:-60}"
budget="${SLUICE_SURGE_BUDGET:-67108864}"
errors_before=$(grep -c . "$results/serve.err" 2>/dev/null || true)
start_broker always --max-inflight-bytes "$budget"
sleep 1  # the idle sample below is a sample after start-up, not synchronisation
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$broker_pid/status"; }
echo "$(rss_kib)" > "$results/surge-idle-rss"
if [[ "$mode" == surge || ! -s "$results/durable-8.json" ]]; then
    bench surge-rate produce --topic surge-rate --partitions 8 --acks durable --profile throughput --warmup 1 --duration 5
    rate_from=surge-rate
else
    rate_from=durable-8
fi
sustained=$(python3 -c "import json,sys; print(int(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])['messagesPerSecond']))" "$results/$rate_from.json")
echo "$rate_from $sustained $budget $surge_seconds" > "$results/surge-params"
: > "$results/surge-rss"
( while kill -0 "$broker_pid" 2>/dev/null; do
      echo "$(date +%s) $(rss_kib)" >> "$results/surge-rss"; sleep 1
  done ) 2>/dev/null &
sampler_pid=$!
seconds_saved="$seconds"; seconds="$surge_seconds"  # bench's --time-limit follows the run length
bench surge end-to-end --topic surge --partitions 8 --producers 4 --consumers 2 --acks durable \
    --profile throughput --rate $((sustained * 10)) --duration "$surge_seconds" --drain-timeout 120
seconds="$seconds_saved"
kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true
echo $(( $(grep -c . "$results/serve.err" 2>/dev/null || true) - ${errors_before:-0} )) > "$results/surge-serve-errors"
stop_broker
fi
trap - EXIT

# --- Scale: 10,000 partitions (bench/partitions-scale.sh) ----------------------------------------
if [[ "$mode" == scale || ( "$mode" == all && "${SLUICE_SCALE:-}" == 1 ) ]]; then
    log "scale: bench/partitions-scale.sh ${SLUICE_SCALE_PARTITIONS:-10000}"
    echo "bench/partitions-scale.sh ${SLUICE_SCALE_PARTITIONS:-10000} $sluice" > "$results/scale.cmd"
    SLUICE_BENCH_DIR="$dir" timeout 3600 bench/partitions-scale.sh "${SLUICE_SCALE_PARTITIONS:-10000}" "$sluice" \
        > "$results/scale.txt" 2> "$results/scale.err" || echo "exit status $?" >> "$results/scale.txt"
fi

# --- The Markdown --------------------------------------------------------------------------------
python3 bench/run-all-report.py "$results" "$started" "$seconds" "$fio_size" "$mode"
