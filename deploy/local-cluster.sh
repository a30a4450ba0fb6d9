#!/usr/bin/env bash
# A local Sluice cluster in one command: a 3-member etcd and 3 brokers on loopback, every
# process's data and log under one directory.
#
#   deploy/local-cluster.sh start [DIR]    start it (DIR default ./sluice-cluster); prints the
#                                          bootstrap list once every broker listens
#   deploy/local-cluster.sh stop [DIR]     SIGTERM the brokers (they leave etcd), then etcd
#   deploy/local-cluster.sh status [DIR]   which processes are running
#
# Ports follow etcd's own local-cluster convention: etcd clients 2379, 22379, 32379 (peers
# 2380, 22380, 32380); brokers 9092, 9093, 9094. SLUICE_CLUSTER_PORT_OFFSET is added to every
# port (two clusters on one machine, or tests). The brokers register under
# /sluice/local/brokers/<1..3> (docs/architecture.md, "Cluster metadata in etcd").
#
# SLUICE_SERVE_ARGS adds flags to every broker's `sluice serve` (split on spaces), e.g.
# "--fsync interval:100" or "--profile latency".
#
# SLUICE_BIN names the sluice binary; without it the release binary is built (as
# scripts/run-broker.sh does, after scripts/install-deps.sh). Needs etcd (Debian
# etcd-server, which install-deps installs). Every wait is bounded; a failure says which
# step failed and stops what this run started.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v swift >/dev/null && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="$PATH:/opt/swift/usr/bin"
fi

command="${1:-}"
dir="${2:-./sluice-cluster}"
offset="${SLUICE_CLUSTER_PORT_OFFSET:-0}"
read -r -a serve_args <<< "${SLUICE_SERVE_ARGS:-}"
etcd_clients=($((2379 + offset)) $((22379 + offset)) $((32379 + offset)))
etcd_peers=($((2380 + offset)) $((22380 + offset)) $((32380 + offset)))
broker_ports=($((9092 + offset)) $((9093 + offset)) $((9094 + offset)))
step="starting"
trap 'status=$?; echo "local-cluster: failed while ${step} (exit ${status})" >&2' ERR

log() { echo "local-cluster: $*"; }
pid_of() { cat "$dir/run/$1.pid" 2>/dev/null || true; }
running() { local pid; pid=$(pid_of "$1"); [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Stops one process: SIGTERM, up to `seconds` for it to exit, then SIGKILL.
stop_process() {
    local name="$1" seconds="$2" pid
    pid=$(pid_of "$name")
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq $((seconds * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not stop within ${seconds}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$dir/run/$name.pid"
}

stop_all() {
    # Brokers first, so each revokes its lease while etcd still answers.
    for n in 1 2 3; do stop_process "broker-$n" 30; done
    for n in 1 2 3; do stop_process "etcd-$n" 15; done
}

# etcd answers /health with "true" once its cluster has a leader.
etcd_healthy() {
    python3 - "$1" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2) as answer:
    sys.exit(0 if json.loads(answer.read()).get("health") == "true" else 1)
PY
}

start() {
    step="checking that nothing of a cluster runs under $dir"
    mkdir -p "$dir/run" "$dir/logs"
    for name in etcd-1 etcd-2 etcd-3 broker-1 broker-2 broker-3; do
        if running "$name"; then echo "local-cluster: $name already runs (pid $(pid_of "$name")); stop it first" >&2; exit 1; fi
    done
    for port in "${etcd_clients[@]}" "${etcd_peers[@]}" "${broker_ports[@]}"; do
        if listening "$port"; then echo "local-cluster: port $port is in use (set SLUICE_CLUSTER_PORT_OFFSET)" >&2; exit 1; fi
    done
    # From here a failure stops what this run started.
    trap 'status=$?; echo "local-cluster: failed while ${step} (exit ${status}); stopping what was started" >&2; stop_all' ERR

    step="finding the sluice binary"
    local bin="${SLUICE_BIN:-}"
    if [[ -z "$bin" ]]; then
        step="installing dependencies (scripts/install-deps.sh)"
        log "$step"
        scripts/install-deps.sh
        step="building the release sluice binary"
        log "$step"
        swift build -c release --product sluice
        bin="$(swift build -c release --show-bin-path)/sluice"
    fi
    [[ -x "$bin" ]] || { echo "local-cluster: no sluice binary at $bin" >&2; false; }
    command -v etcd >/dev/null || { echo "local-cluster: no etcd on PATH (apt-get install etcd-server)" >&2; false; }

    step="starting 3 etcd members"
    local initial="" n
    for n in 1 2 3; do initial+="${initial:+,}etcd-$n=http://127.0.0.1:${etcd_peers[$((n - 1))]}"; done
    for n in 1 2 3; do
        local client="http://127.0.0.1:${etcd_clients[$((n - 1))]}" peer="http://127.0.0.1:${etcd_peers[$((n - 1))]}"
        setsid etcd --name "etcd-$n" --data-dir "$dir/etcd-$n" \
            --listen-client-urls "$client" --advertise-client-urls "$client" \
            --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
            --initial-cluster "$initial" --initial-cluster-token "sluice-local-$offset" \
            --initial-cluster-state new > "$dir/logs/etcd-$n.log" 2>&1 < /dev/null &
        echo $! > "$dir/run/etcd-$n.pid"
    done
    step="waiting (60 s at most) for etcd to elect a leader"
    local healthy=""
    for _ in $(seq 600); do
        if etcd_healthy "${etcd_clients[0]}"; then healthy=1; break; fi
        sleep 0.1
    done
    [[ -n "$healthy" ]] || { echo "local-cluster: etcd has no leader after 60 s (see $dir/logs/etcd-*.log)" >&2; false; }

    step="starting 3 brokers"
    local endpoints
    endpoints=$(printf '127.0.0.1:%s,' "${etcd_clients[@]}")
    endpoints="etcd://${endpoints%,}/local"
    for n in 1 2 3; do
        local address="127.0.0.1:${broker_ports[$((n - 1))]}"
        setsid "$bin" serve --listen "$address" --advertised-address "$address" --data-dir "$dir/broker-$n" \
            --cluster "$endpoints" --broker-id "$n" ${serve_args[@]+"${serve_args[@]}"} > "$dir/logs/broker-$n.out" 2> "$dir/logs/broker-$n.log" < /dev/null &
        echo $! > "$dir/run/broker-$n.pid"
    done
    step="waiting (60 s at most) for every broker to register and listen"
    for n in 1 2 3; do
        local up=""
        for _ in $(seq 600); do
            if grep -q "sluice listening on" "$dir/logs/broker-$n.out" 2>/dev/null; then up=1; break; fi
            running "broker-$n" || break
            sleep 0.1
        done
        if [[ -z "$up" ]]; then
            echo "local-cluster: broker $n did not start; its log ($dir/logs/broker-$n.log) ends:" >&2
            tail -n 5 "$dir/logs/broker-$n.log" >&2 || true
            false
        fi
    done
    trap 'status=$?; echo "local-cluster: failed while ${step} (exit ${status})" >&2' ERR

    local bootstrap
    bootstrap=$(printf '127.0.0.1:%s,' "${broker_ports[@]}")
    log "up: 3 etcd members, 3 brokers; data and logs under $dir"
    echo "etcd: $endpoints"
    echo "bootstrap: ${bootstrap%,}"
    echo "stop with: deploy/local-cluster.sh stop $dir"
}

case "$command" in
    start) start ;;
    stop)
        step="stopping the brokers, then etcd"
        stop_all
        log "stopped (data kept under $dir)"
        ;;
    status)
        for name in etcd-1 etcd-2 etcd-3 broker-1 broker-2 broker-3; do
            if running "$name"; then echo "$name running (pid $(pid_of "$name"))"; else echo "$name stopped"; fi
        done
        ;;
    *)
        echo "usage: deploy/local-cluster.sh start|stop|status [DIR]" >&2
        exit 2
        ;;
esac
