#!/usr/bin/env python3
"""The Markdown of bench/run-all.sh from its results directory (JSON of each run).
Usage: python3 bench/run-all-report.py RESULTS_DIR STARTED SECONDS FIO_SIZE [all|surge|scale]"""
import json, os, re, subprocess, sys
results, started, seconds, fio_size = sys.argv[1:5]
mode = sys.argv[5] if len(sys.argv) > 5 else "all"

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
    try:
        text = open(os.path.join(results, "fio-" + name + ".json")).read()
        data = json.loads(text[text.index("{"):])
    except Exception:
        data = None
    if not data:
        return None
    job = data["jobs"][0]
    return job

def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

def ms(us):
    return f"{us / 1000:.3f}"

cpu = sh("lscpu | sed -n 's/^Model name: *//p'")
memory = sh("free -g | awk '/Mem:/ {print $2}'")
load_average = sh("cut -d' ' -f1-3 /proc/loadavg")
cores = sh("nproc")
disk = sh("df -T " + results + " | awk 'NR==2 {print $1\" (\"$2\")\"}'")
rota = sh("lsblk -d -n -o NAME,SIZE,ROTA | awk '$2 != \"0B\" {printf \"%s %s%s \", $1, $2, ($3 == 1 ? \" (rotational flag set)\" : \"\")}'")
commit = sh("git rev-parse --short HEAD")
print(f"### Run of bench/run-all.sh, {started} UTC (commit {commit})\n")
print(f"Machine: `nproc` = {cores}, {cpu}, {memory} GiB RAM, "
      f"data on {disk}, block devices: {rota.strip()}; load average at the end {load_average}. "
      f"Release build; {seconds} s measured per run after a 2 s warm-up; fio files of {fio_size}. "
      "MB/s are 10^6 bytes of message values (1 KiB = 1024 B messages).\n")

rows = []
def row(what, figure, target, how):
    rows.append(f"| {what} | {figure} | {target} | {'`' + how + '`' if how else ''} |")


def read(name):
    try:
        return open(os.path.join(results, name)).read().strip()
    except Exception:
        return None

def surge_rows():
    params = read("surge-params")
    r = load("surge")
    if not params or not r:
        if mode in ("all", "surge"):
            row("Surge: 10x the sustainable durable rate, RSS bound", "no result (see surge.err)", "RSS < idle + budget + overhead", command("surge"))
        return
    rate_from, sustained, budget, surge_seconds = params.split()
    sustained, budget, surge_seconds = int(sustained), int(budget), float(surge_seconds)
    idle = int(read("surge-idle-rss")) * 1024
    samples = [int(l.split()[1]) * 1024 for l in read("surge-rss").splitlines() if len(l.split()) == 2]
    peak = max(samples) if samples else 0
    overhead = 12 * 1024 * 1024 * r.get("producers", 4)  # per producer stream, docs/profiles.md
    bound = idle + budget + overhead
    mib = lambda b: f"{b / 1048576:.1f} MiB"
    offered = sustained * 10
    row(f"Surge: {surge_seconds:.0f} s offered at 10x the sustainable durable rate ({rate_from} {sustained:,} msgs/s), "
        f"fsync always, --max-inflight-bytes {budget}, {r.get('producers')} producers, acks=durable",
        f"offered {offered:,} msgs/s ({offered * surge_seconds:,.0f} msgs); sent {r['sent']:,}, acked {r['acked']:,} "
        f"({r['messagesPerSecond']:,.0f} msgs/s, {r['megabytesPerSecond']:.1f} MB/s accepted), failed {r['failed']}, "
        f"missing {r.get('missing')}, duplicates {r.get('duplicates')}, broker error lines {read('surge-serve-errors')}; "
        f"broker VmRSS idle {mib(idle)}, peak {mib(peak)} (growth {mib(peak - idle)}), {len(samples)} samples"
        + ("" if r.get("passed") else " (FAILED: " + "; ".join(r.get("errors", [])) + ")"),
        f"peak <= idle + budget {mib(budget)} + overhead {mib(overhead)} = {mib(bound)}: {'met' if peak <= bound else 'MISSED'}",
        command("surge"))
    l = r.get("ackLatency")
    if l:
        notes.append(f"- `surge` produce-to-ack from each message's due time (open loop, so it grows with the backlog the client holds): p50 {ms(l['p50'])}, p99 {ms(l['p99'])}, max {ms(l['max'])} ms")

def scale_rows():
    text = read("scale.txt")
    if not text:
        if mode == "scale":
            row("Scale: 10,000 partitions", "no result (see scale.err)", "", command("scale"))
        return
    def find(pattern):
        m = re.search(pattern, text)
        return m.group(1) if m else "not reached"
    row("Scale: partitions created (topics of 1,000), time", find(r"created (\d+ partitions in \d+ ms)"), "", command("scale"))
    row("Scale: per idle partition", find(r"per idle partition: (.*)"), "", "")
    row("Scale: empty broker / after creating", find(r"empty broker: (.*)") + "; " + find(r"after creating: (.*)"), "", "")
    row("Scale: restart over all partitions", find(r"restart over \d+ partitions: (.*)"), "", "")
    row("Scale: clean shutdown (SIGTERM)", find(r"clean shutdown: (.*)"), "", "")
    if "exit status" in text:
        row("Scale: run ended early", find(r"(exit status \d+)") + " (see scale.err)", "", "")

notes = []
nats_e2e = None
if mode == "all":
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

    # The peer is published to without PubAck (a memcpy a message for the driver) and its
    # end found from the stream's info; the driver alone, against a discarding sink, must be
    # far faster, or the peer's figure is the driver's and every ratio flatters Sluice.
    nats_publish = load("nats-publish")
    driver = load("nats-driver-alone")
    if driver:
        row("NATS driver alone: bench/nats-bench.py publishing to a discarding sink", f"{driver['msgs_per_s']:,.0f} msgs/s, {driver['mb_per_s']:.1f} MB/s", "well above the NATS figure below", f"python3 bench/nats-bench.py publish --sink --duration {seconds}")
    if nats_publish:
        bound = " (within 80% of the driver alone: driver-bound, not a NATS figure)" if driver and nats_publish["msgs_per_s"] > 0.8 * driver["msgs_per_s"] else ""
        row("NATS JetStream ingest (file, R1, 1 KiB, no PubAck, end by stream info)", f"{nats_publish['msgs_per_s']:,.0f} msgs/s, {nats_publish['mb_per_s']:.1f} MB/s{bound}", "peer", f"python3 bench/nats-bench.py publish --duration {seconds}")
    nats_ingest = load("nats-ingest")
    if nats_ingest:
        row("NATS JetStream ingest, every message PubAcked (Python reads each ack: driver-bound)", f"{nats_ingest['msgs_per_s']:,.0f} msgs/s, {nats_ingest['mb_per_s']:.1f} MB/s", "reference", f"python3 bench/nats-bench.py ingest --duration {seconds}")

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

    nats_rate = nats_publish["msgs_per_s"] if nats_publish else None
    sluice_row("ingest-1-none", "Sluice ingest, 1 partition, acks=none (end by the log end, as NATS above), fsync never",
               f"beside NATS {nats_rate:,.0f} msgs/s" if nats_rate else "")
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
        if nats_e2e["sent"] < 10000 * float(seconds) * 0.99:
            row("NATS JetStream: messages sent at the offered 10k msgs/s", f"{nats_e2e['sent']:,} of {int(10000 * float(seconds)):,} (the Python publisher fell behind)", "", "")
        row("NATS JetStream end-to-end latency, 10k msgs/s (push consumer)", f"p50 {ms(l['p50_us'])}, p99 {ms(l['p99_us'])}, p99.9 {ms(l['p999_us'])}, p99.99 {ms(l['p9999_us'])}, max {ms(l['max_us'])} ms", "peer", f"python3 bench/nats-bench.py e2e --rate 10000 --duration {seconds}")
    latency_row("e2e-durable", "Sluice produce-to-ack latency, 10k msgs/s, acks=durable, fsync always", "beside fio fdatasync latency", key="ackLatency")
    latency_row("e2e-durable", "Sluice end-to-end latency, 10k msgs/s, acks=durable, fsync always", "")
surge_rows()
scale_rows()

print("| figure | measured | target | command |")
print("|---|---|---|---|")
print("\n".join(rows))
print()
print("\n".join(notes))
for name in ["ingest-1-none", "ingest-1", "ingest-8", "durable-8", "catch-up", "e2e-leader", "e2e-durable"]:
    r = load(name)
    if r and r.get("ackLatency") and name != "catch-up":
        l = r["ackLatency"]
        print(f"- `{name}` produce-to-ack: p50 {ms(l['p50'])}, p99 {ms(l['p99'])}, p99.9 {ms(l['p999'])}, max {ms(l['max'])} ms; sent {r['sent']}, acked {r['acked']}, failed {r['failed']}" + (f", missing {r.get('missing')}, duplicates {r.get('duplicates')}" if r.get('missing') is not None else ""))
if nats_e2e:
    l = nats_e2e["ack_latency"]
    print(f"- NATS e2e run publish-to-PubAck: p50 {ms(l['p50_us'])}, p99 {ms(l['p99_us'])}, p99.9 {ms(l['p999_us'])} ms; received {nats_e2e.get('received')} of {nats_e2e['sent']}")
