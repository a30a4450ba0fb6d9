"""Summarises bench/replication.sh's reports: usage: replication-summary.py OUT-DIR.

One line per run (msgs/s, ack latency p50/p99/p99.9 in ms), then the ratios issue 15 asks
for: three replicas' acks=all ingest against the single node's best ingest figure, and at
10k msgs/s the gap between acks=all's and acks=leader's p99 in each setup.
"""
import json
import os
import sys
from statistics import median

out = sys.argv[1]


def load(name):
    try:
        with open(os.path.join(out, name + ".json")) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def ms(report, key):
    return report["ackLatency"][key] / 1000


if os.path.exists(os.path.join(out, "fio-fdatasync.json")):
    with open(os.path.join(out, "fio-fdatasync.json")) as f:
        sync = json.load(f)["jobs"][0]["sync"]["lat_ns"]["percentile"]
    print(f"fio 4 KiB write + fdatasync: p50 {sync['50.000000'] / 1e6:.3f} ms, p99 {sync['99.000000'] / 1e6:.3f} ms")

rates = {}
for setup in ("single", "three", "interval"):
    for kind in ("leader", "all", "rate-leader", "rate-all"):
        for round_ in (1, 2):
            report = load(f"{setup}-{kind}-{round_}")
            if report is None:
                print(f"{setup}-{kind}-{round_}: no report")
                continue
            rate = report["messagesPerSecond"]
            rates.setdefault((setup, kind), []).append(report)
            print(f"{setup}-{kind}-{round_}: {rate:,.0f} msgs/s, ack p50 {ms(report, 'p50'):.2f} "
                  f"p99 {ms(report, 'p99'):.2f} p99.9 {ms(report, 'p999'):.2f} ms, failed {report.get('failed', 0)}")


def rate(setup, kind):
    reports = rates.get((setup, kind), [])
    return median(r["messagesPerSecond"] for r in reports) if reports else None


best_single = max(filter(None, (rate("single", "leader"), rate("single", "all"))), default=None)
for setup in ("three", "interval"):
    replicated = rate(setup, "all")
    if best_single and replicated:
        print(f"{setup}: acks=all ingest {replicated:,.0f} msgs/s = {replicated / best_single:.0%} of the single "
              f"node's best ({best_single:,.0f}; target 30 %)")
    leader = rates.get((setup, "rate-leader"), [])
    every = rates.get((setup, "rate-all"), [])
    if leader and every:
        gap = median(ms(r, "p99") for r in every) - median(ms(r, "p99") for r in leader)
        print(f"{setup}: at 10k msgs/s acks=all p99 - acks=leader p99 = {gap:+.2f} ms (target at most +1 ms)")
