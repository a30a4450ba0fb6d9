#!/usr/bin/env bash
# Usage: bench/replication.sh [OUT-DIR]  (release binary: swift build -c release --product sluice).
# Two rounds of each: ingest (closed loop) and 10k msgs/s (open loop, latency profile), with
# acks=leader and acks=all, on one node and then on three (deploy/local-cluster.sh, ports +500),
# 1 partition, 1 KiB; JSON reports in OUT-DIR (default /tmp/repl-bench). docs/benchmarks.md.
# One sitting: single node vs three replicas (local-cluster.sh), 1 partition, 1 KiB.
set -uo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/sluice}
OUT=${1:-/tmp/repl-bench}
mkdir -p $OUT
run() { local name=$1; shift; timeout 120 $BIN bench produce "$@" --json > $OUT/$name.json 2> $OUT/$name.err; echo "$name rc $?"; }
D=$(mktemp -d)
$BIN serve --data-dir $D/data --listen 127.0.0.1:9192 --log-level error > $D/out 2>&1 &
SP=$!
for i in $(seq 100); do grep -q listening $D/out && break; sleep 0.1; done
S=127.0.0.1:9192
for round in 1 2; do
  run single-leader-$round --broker $S --topic s-leader-$round --acks leader --duration 8 --warmup 2
  run single-all-$round --broker $S --topic s-all-$round --acks all --duration 8 --warmup 2
  run single-rate-leader-$round --broker $S --topic s-rl-$round --acks leader --rate 10000 --duration 8 --warmup 2 --profile latency
  run single-rate-all-$round --broker $S --topic s-ra-$round --acks all --rate 10000 --duration 8 --warmup 2 --profile latency
done
kill $SP; wait $SP 2>/dev/null
rm -rf $D /tmp/rb-cluster
SLUICE_BIN=$BIN SLUICE_CLUSTER_PORT_OFFSET=500 bash "$(dirname "$0")/../deploy/local-cluster.sh" start /tmp/rb-cluster > $OUT/cluster-start.log 2>&1 || { echo cluster start failed; cat $OUT/cluster-start.log; exit 1; }
C=127.0.0.1:9592,127.0.0.1:9593,127.0.0.1:9594
for round in 1 2; do for t in leader all rl ra; do
  $BIN topic create c-$t-$round --replication-factor 3 --config min.insync.replicas=2 --broker $C > /dev/null
done; done
for round in 1 2; do
  run three-leader-$round --broker $C --topic c-leader-$round --acks leader --duration 8 --warmup 2
  run three-all-$round --broker $C --topic c-all-$round --acks all --duration 8 --warmup 2
  run three-rate-leader-$round --broker $C --topic c-rl-$round --acks leader --rate 10000 --duration 8 --warmup 2 --profile latency
  run three-rate-all-$round --broker $C --topic c-ra-$round --acks all --rate 10000 --duration 8 --warmup 2 --profile latency
done
$BIN cluster status --broker $C > $OUT/cluster-status.txt 2>&1
SLUICE_CLUSTER_PORT_OFFSET=500 bash "$(dirname "$0")/../deploy/local-cluster.sh" stop /tmp/rb-cluster > /dev/null 2>&1
rm -rf /tmp/rb-cluster
