#!/usr/bin/env bash
# Usage: bench/replication.sh [OUT-DIR]  (release binary: swift build -c release --product sluice).
# One sitting, written up in docs/benchmarks.md ("Replication"). Two rounds of each of:
# ingest (closed loop) and 10k msgs/s (open loop, latency profile), with acks=leader and
# acks=all, 1 partition, 1 KiB records, the producer's defaults otherwise (idempotent and
# pipelined with acks=all). Setups, in order: one node (`--fsync always`, the default);
# three replicas (deploy/local-cluster.sh, ports +500, replication factor 3,
# min.insync.replicas 2) under `--fsync always`; the same under `--fsync interval:100`,
# where acks=all syncs nothing (Kafka's acks=all). fio's 4 KiB fdatasync latency is
# measured first, when fio is installed, since every `always` figure rests on it. JSON
# reports and summary.txt in OUT-DIR (default /tmp/repl-bench).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/.build/release/sluice}
OUT=${1:-/tmp/repl-bench}
[[ -x $BIN ]] || { echo "replication bench: no binary at $BIN (swift build -c release --product sluice)"; exit 1; }
mkdir -p "$OUT"
run() { local name=$1; shift; timeout 120 "$BIN" bench produce "$@" --json > "$OUT/$name.json" 2> "$OUT/$name.err"; echo "$name rc $?"; }
# Two rounds of the four runs against one setup: rounds NAME TOPIC-PREFIX BROKERS.
rounds() {
  local name=$1 prefix=$2 brokers=$3 round
  for round in 1 2; do
    run "$name-leader-$round" --broker "$brokers" --topic "$prefix-leader-$round" --acks leader --duration 8 --warmup 2
    run "$name-all-$round" --broker "$brokers" --topic "$prefix-all-$round" --acks all --duration 8 --warmup 2
    run "$name-rate-leader-$round" --broker "$brokers" --topic "$prefix-rl-$round" --acks leader --rate 10000 --duration 8 --warmup 2 --profile latency
    run "$name-rate-all-$round" --broker "$brokers" --topic "$prefix-ra-$round" --acks all --rate 10000 --duration 8 --warmup 2 --profile latency
  done
}
# A three-replica setup: three NAME PREFIX SERVE-ARGS.
three() {
  local name=$1 prefix=$2 args=$3 dir=/tmp/rb-cluster-$1 C=127.0.0.1:9592,127.0.0.1:9593,127.0.0.1:9594 round t
  rm -rf "$dir"
  if ! SLUICE_SERVE_ARGS="$args" SLUICE_BIN=$BIN SLUICE_CLUSTER_PORT_OFFSET=500 bash "$ROOT/deploy/local-cluster.sh" start "$dir" > "$OUT/$name-start.log" 2>&1; then
    echo "replication bench: the $name cluster did not start:"; cat "$OUT/$name-start.log"; exit 1
  fi
  for round in 1 2; do for t in leader all rl ra; do
    "$BIN" topic create "$prefix-$t-$round" --replication-factor 3 --config min.insync.replicas=2 --broker $C > /dev/null
  done; done
  rounds "$name" "$prefix" $C
  "$BIN" cluster status --broker $C > "$OUT/$name-status.txt" 2>&1
  SLUICE_CLUSTER_PORT_OFFSET=500 bash "$ROOT/deploy/local-cluster.sh" stop "$dir" > /dev/null 2>&1
  rm -rf "$dir"
}

if command -v fio > /dev/null; then
  F=$(mktemp -d)
  fio --name=fdatasync --rw=write --bs=4k --size=16m --fdatasync=1 --directory="$F" --output-format=json > "$OUT/fio-fdatasync.json" 2> /dev/null
  rm -rf "$F"
fi
D=$(mktemp -d)
"$BIN" serve --data-dir "$D/data" --listen 127.0.0.1:9192 --log-level error > "$D/out" 2>&1 &
SP=$!
for _ in $(seq 100); do grep -q listening "$D/out" && break; sleep 0.1; done
grep -q listening "$D/out" || { echo "replication bench: the single node did not listen within 10 s:"; cat "$D/out"; kill $SP; exit 1; }
rounds single s 127.0.0.1:9192
kill $SP; wait $SP 2>/dev/null
rm -rf "$D"
three three c ""
three interval i "--fsync interval:100"
python3 "$ROOT/bench/replication-summary.py" "$OUT" | tee "$OUT/summary.txt"
