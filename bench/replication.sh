#!/usr/bin/env bash
# Usage: bench/replication.sh [OUT-DIR]  (release binary: swift build -c release --product sluice).
# Two rounds of each: ingest (closed loop) and 10k msgs/s (open loop, latency profile), with
# acks=leader and acks=all, on one node and then on three (deploy/local-cluster.sh, ports +500),
# 1 partition, 1 KiB; JSON reports in OUT-DIR (default /tmp/repl-bench). docs/benchmarks.md.
set -uo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/sluice}
OUT=${1:-/tmp/repl-bench}
mkdir -p $OUT
run() { local name=$1; shift; timeout 120 $BIN bench produce "$@" --json > $OUT/$name.json 2> $OUT/$name.err; echo "$name rc $?"; }
# Two rounds of the four runs against one setup: rounds NAME TOPIC-PREFIX BROKERS.
rounds() {
  local name=$1 prefix=$2 brokers=$3 round
  for round in 1 2; do
    run $name-leader-$round --broker $brokers --topic $prefix-leader-$round --acks leader --duration 8 --warmup 2
    run $name-all-$round --broker $brokers --topic $prefix-all-$round --acks all --duration 8 --warmup 2
    run $name-rate-leader-$round --broker $brokers --topic $prefix-rl-$round --acks leader --rate 10000 --duration 8 --warmup 2 --profile latency
    run $name-rate-all-$round --broker $brokers --topic $prefix-ra-$round --acks all --rate 10000 --duration 8 --warmup 2 --profile latency
  done
}
D=$(mktemp -d)
$BIN serve --data-dir $D/data --listen 127.0.0.1:9192 --log-level error > $D/out 2>&1 &
SP=$!
for i in $(seq 100); do grep -q listening $D/out && break; sleep 0.1; done
grep -q listening $D/out || { echo "replication bench: the single node did not listen within 10 s:"; cat $D/out; kill $SP; exit 1; }
S=127.0.0.1:9192
rounds single s $S
kill $SP; wait $SP 2>/dev/null
rm -rf $D /tmp/rb-cluster
SLUICE_BIN=$BIN SLUICE_CLUSTER_PORT_OFFSET=500 bash "$(dirname "$0")/../deploy/local-cluster.sh" start /tmp/rb-cluster > $OUT/cluster-start.log 2>&1 || { echo cluster start failed; cat $OUT/cluster-start.log; exit 1; }
C=127.0.0.1:9592,127.0.0.1:9593,127.0.0.1:9594
for round in 1 2; do for t in leader all rl ra; do
  $BIN topic create c-$t-$round --replication-factor 3 --config min.insync.replicas=2 --broker $C > /dev/null
done; done
rounds three c $C
$BIN cluster status --broker $C > $OUT/cluster-status.txt 2>&1
SLUICE_CLUSTER_PORT_OFFSET=500 bash "$(dirname "$0")/../deploy/local-cluster.sh" stop /tmp/rb-cluster > /dev/null 2>&1
rm -rf /tmp/rb-cluster
