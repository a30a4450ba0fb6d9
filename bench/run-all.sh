#!/usr/bin/env bash
# One sitting of every broker figure of issue 6 and its ceilings and peer: fio (buffered
# sequential write, fdatasync every 1 MiB, fdatasync latency), NATS JetStream (file stream,
# one replica, 1 KiB, pipelined), and Sluice (ingest, durable ingest with syncs counted,
# catch-up read of a 2 GiB backlog, end-to-end latency at 10k msgs/s). Builds release first.
# Prints a Markdown section ready to paste into docs/benchmarks.md (progress goes to stderr;
# raw JSON and logs stay in $dir/results).
#
# Usage: bench/run-all.sh > figures.md
# Env: SLUICE_BENCH_DIR (default /tmp/sluice-bench; the disk measured), SLUICE_RUN_SECONDS
# (seconds per measured run, default 10), SLUICE_BACKLOG_MESSAGES (catch-up backlog in 1 KiB
# records, default 2097152 = 2 GiB), SLUICE_FIO_SIZE (default 1G), SLUICE_SKIP_BUILD=1.
# Needs fio, nats-server (apt-get install -y fio nats-server), python3; perf for sync counts
# (optional). Every step is bounded by `timeout` or the bench's --time-limit; the whole
# script takes about 6-10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir="${SLUICE_BENCH_DIR:-/tmp/sluice-bench}"
seconds="${SLUICE_RUN_SECONDS:-10}"
backlog="${SLUICE_BACKLOG_MESSAGES:-2097152}"
fio_size="${SLUICE_FIO_SIZE:-1G}"
results="$dir/results"
mkdir -p "$results"
rm -f "$results"/*.json
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
log "nats ingest"
timeout 120 python3 bench/nats-bench.py ingest --port "$nats_port" --duration "$seconds" > "$results/nats-ingest.json"
log "nats end-to-end at 10k msgs/s"
timeout 120 python3 bench/nats-bench.py e2e --port "$nats_port" --duration "$seconds" --rate 10000 > "$results/nats-e2e.json"
kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true
trap - EXIT

# --- Sluice ------------------------------------------------------------------------------------
broker_pid=""
broker_port=""
start_broker() { # fsync policy
    rm -rf "$dir/sluice-data"
    : > "$results/serve.out"
    "$sluice" serve --listen 127.0.0.1:0 --data-dir "$dir/sluice-data" --log-level warning --fsync "$1" \
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

start_broker never
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
trap - EXIT

# --- The Markdown --------------------------------------------------------------------------------
python3 - "$results" "$started" "$seconds" "$fio_size" <<'PY'
import json, os, subprocess, sys
results, started, seconds, fio_size = sys.argv[1:5]

def load(name):
    try:
        with open(os.path.join(results, name + ".json")) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        return None

def command(name):
    try:
        return open(os.path.join(results, name + ".cmd")).read().strip()
    except Exception:
        return ""

def fio(name):
    data = load("fio-" + name)
    if not data:
        return None
    job = data["jobs"][0]
    return job

def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

def ms(us):
    return f"{us / 1000:.3f}"

cpu = sh("lscpu | sed -n 's/^Model name: *//p'")
disk = sh("df -T " + results + " | awk 'NR==2 {print $1\" (\"$2\")\"}'")
rota = sh("lsblk -d -o NAME,ROTA,SIZE | awk 'NR>1' | tr '\\n' ';'")
commit = sh("git rev-parse --short HEAD")
print(f"### Run of bench/run-all.sh, {started} UTC (commit {commit})\n")
print(f"Machine: `nproc` = {sh('nproc')}, {cpu}, {sh('free -g | awk \"/Mem:/ {print \\$2}\"')} GiB RAM, "
      f"data on {disk}, block devices {rota} load average at the end {sh('cut -d\" \" -f1-3 /proc/loadavg')}. "
      f"Release build; {seconds} s measured per run after a 2 s warm-up; fio files of {fio_size}. "
      "MB/s are 10^6 bytes of message values (1 KiB = 1024 B messages).\n")

rows = []
def row(what, figure, target, how):
    rows.append(f"| {what} | {figure} | {target} | `{how}` |")

buffered = fio("buffered")
fio_buffered = buffered["write"]["bw_bytes"] / 1e6 if buffered else None
synced = fio("fdatasync-1m")
fio_synced = synced["write"]["bw_bytes"] / 1e6 if synced else None
lat = fio("fdatasync-latency")
sync_lat = lat["sync"]["lat_ns"]["percentile"] if lat and "sync" in lat else None
if fio_buffered is not None:
    row("fio buffered sequential write (64 KiB, end fsync)", f"{fio_buffered:.1f} MB/s ({fio_buffered * 1e6 / 1024:,.0f} 1 KiB msgs/s)", "ceiling", f"fio --rw=write --bs=64k --end_fsync=1 --size={fio_size}")
if fio_synced is not None:
    row("fio 64 KiB writes, fdatasync every 1 MiB", f"{fio_synced:.1f} MB/s", "ceiling", f"fio --rw=write --bs=64k --fdatasync=16 --fallocate=none --size={fio_size}")
if sync_lat:
    row("fio fdatasync latency (4 KiB appends)", f"p50 {sync_lat['50.000000'] / 1e6:.3f} ms, p99 {sync_lat['99.000000'] / 1e6:.3f} ms, p99.9 {sync_lat['99.900000'] / 1e6:.3f} ms", "reference", "fio --rw=write --bs=4k --fdatasync=1 --runtime=15 --time_based")

nats_ingest = load("nats-ingest")
if nats_ingest:
    row("NATS JetStream ingest (file, R1, 1 KiB, pipelined)", f"{nats_ingest['msgs_per_s']:,.0f} msgs/s, {nats_ingest['mb_per_s']:.1f} MB/s", "peer", f"python3 bench/nats-bench.py ingest --duration {seconds}")

def sluice_row(name, what, target):
    r = load(name)
    if not r:
        row(what, "no result (see " + name + ".err)", target, command(name))
        return r
    figure = f"{r['messagesPerSecond']:,.0f} msgs/s, {r['megabytesPerSecond']:.1f} MB/s"
    if not r.get("passed", False):
        figure += " (FAILED: " + "; ".join(r.get("errors", [])) + ")"
    row(what, figure, target, command(name))
    return r

nats_rate = nats_ingest["msgs_per_s"] if nats_ingest else None
ingest_target = []
if nats_rate: ingest_target.append(f">= 1.5 x NATS = {1.5 * nats_rate:,.0f} msgs/s")
if fio_buffered: ingest_target.append(f"or 85% of fio = {0.85 * fio_buffered:.1f} MB/s")
for name, what in [("ingest-1", "Sluice ingest, 1 partition, acks=leader, fsync never"),
                   ("ingest-8", "Sluice ingest, 8 partitions, acks=leader, fsync never")]:
    r = sluice_row(name, what, " ".join(ingest_target) or "")
    if r and r.get("ackLatency"):
        pass

durable = sluice_row("durable-8", "Sluice durable ingest, 8 partitions, acks=durable, fsync always (group commit)",
                     f">= 85% of fio fdatasync/1 MiB = {0.85 * fio_synced:.1f} MB/s" if fio_synced else "")
perf_path = os.path.join(results, "durable-8.perf")
if durable and os.path.exists(perf_path):
    syncs = 0
    for line in open(perf_path):
        parts = line.split(",")
        if len(parts) > 2 and parts[2].startswith("syscalls:sys_enter_f"):
            try: syncs += int(parts[0])
            except ValueError: pass
    before, after = map(float, open(os.path.join(results, "durable-8.window")).read().split())
    if syncs:
        per_second = syncs / (after - before)
        per_sync = durable["acked"] * durable["messageSize"] / syncs
        row("Sluice durable ingest: broker fdatasync+fsync calls (perf, whole run incl. warm-up)", f"{per_second:,.0f} syncs/s, {per_sync / 1024:,.1f} KiB per sync", "amortised", "perf stat -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -p BROKER")
elif durable:
    row("Sluice durable ingest: syncs/s, bytes per sync", "not measured (perf unavailable; the broker exposes no sync counters)", "", "")

fill = load("backlog-fill")
catch = sluice_row("catch-up", f"Sluice catch-up read, {fill['acked'] if fill else '?'} x 1 KiB backlog from the page cache, 1 subscriber", ">= 600 MB/s")

def latency_row(name, what, target, key="endToEndLatency"):
    r = load(name)
    if not r or not r.get(key):
        row(what, "no result", target, command(name))
        return
    l = r[key]
    figure = f"p50 {ms(l['p50'])}, p99 {ms(l['p99'])}, p99.9 {ms(l['p999'])}, p99.99 {ms(l['p9999'])}, max {ms(l['max'])} ms"
    if not r.get("passed", False):
        figure += " (FAILED: " + "; ".join(r.get("errors", [])) + f", missing {r.get('missing')}, duplicates {r.get('duplicates')})"
    row(what, figure, target, command(name))

latency_row("e2e-leader", "Sluice end-to-end latency, 10k msgs/s, --profile latency, acks=leader", "p99 <= 1 ms, p99.9 <= 3 ms")
nats_e2e = load("nats-e2e")
if nats_e2e:
    l = nats_e2e["e2e_latency"]
    row("NATS JetStream end-to-end latency, 10k msgs/s (push consumer)", f"p50 {ms(l['p50_us'] * 1000)}, p99 {ms(l['p99_us'] * 1000)}, p99.9 {ms(l['p999_us'] * 1000)}, p99.99 {ms(l['p9999_us'] * 1000)}, max {ms(l['max_us'] * 1000)} ms", "peer", f"python3 bench/nats-bench.py e2e --rate 10000 --duration {seconds}")
latency_row("e2e-durable", "Sluice produce-to-ack latency, 10k msgs/s, acks=durable, fsync always", "beside fio fdatasync latency", key="ackLatency")
latency_row("e2e-durable", "Sluice end-to-end latency, 10k msgs/s, acks=durable, fsync always", "")
row("Surge: 60 s at 10x the sustainable rate, RSS bound", "TODO (profiles/backpressure work)", "RSS < idle + budget + overhead", "")
row("Scale: 10,000 partitions (memory per idle partition, open files, startup)", "TODO (profiles/backpressure work)", "", "")

print("| figure | measured | target | command |")
print("|---|---|---|---|")
print("\n".join(rows))
print()
for name in ["ingest-1", "ingest-8", "durable-8", "catch-up", "e2e-leader", "e2e-durable"]:
    r = load(name)
    if r and r.get("ackLatency") and name != "catch-up":
        l = r["ackLatency"]
        print(f"- `{name}` produce-to-ack: p50 {ms(l['p50'])}, p99 {ms(l['p99'])}, p99.9 {ms(l['p999'])}, max {ms(l['max'])} ms; sent {r['sent']}, acked {r['acked']}, failed {r['failed']}" + (f", missing {r.get('missing')}, duplicates {r.get('duplicates')}" if r.get('missing') is not None else ""))
if nats_e2e:
    l = nats_e2e["ack_latency"]
    print(f"- NATS e2e run publish-to-PubAck: p50 {ms(l['p50_us'] * 1000)}, p99 {ms(l['p99_us'] * 1000)}, p99.9 {ms(l['p999_us'] * 1000)} ms; received {nats_e2e.get('received')} of {nats_e2e['sent']}")
PY
