"""Benchmark (not a test): logferry against the Kafka broker serving the same partition.

One run, one machine: a real broker (the test harness's, KRaft, Kafka 4.1) is filled with
LOGFERRY_BENCH_GIB GiB (default 2) by Kafka's own producer perf tool into a one-partition topic;
logferry serves the broker's log directory read-only beside it. The Rust load generator
(`cargo bench --bench loadgen`, Fetch v12, bytes discarded) and Kafka's consumer perf tool then
read the whole partition from each server in turn (a warm-up pass first, so both read from the
page cache); then a 1,000-partition topic (LOGFERRY_BENCH_GIB / 2 GiB) is read by one consumer
whose every Fetch names all 1,000 partitions. Reported: throughput, server CPU seconds per GiB
(user + system, from /proc), server RSS, and logferry's ratios to the broker. Writes
docs/benchmarks.md and the plots docs/bench-throughput.png and docs/bench-cpu.png (gnuplot).

Run: bash benches/install.sh && python3 benches/vs_broker.py
"""
import datetime
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
import broker  # noqa: E402
import clients  # noqa: E402
from ferry import Ferry  # noqa: E402

GIB = float(os.environ.get("LOGFERRY_BENCH_GIB", "2"))
RECORD = 1024


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def loadgen(bootstrap, end, connections, pmb=1 << 20, topic="bench", partition="0"):
    r = subprocess.run(["cargo", "bench", "-q", "--bench", "loadgen", "--", bootstrap, topic, partition, str(end),
                        str(connections), str(pmb)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    m = dict(kv.split("=") for kv in r.stdout.split())
    return float(m["bytes"]), float(m["seconds"])


def consumer_perf(bootstrap, messages):
    t = time.monotonic()
    out = clients.consumer_perf(bootstrap, "bench", messages, timeout_s=900)
    secs = time.monotonic() - t
    rows = [l for l in out.splitlines() if re.match(r"^\d{4}-", l)]
    return rows[-1] if rows else out.strip().splitlines()[-1], secs


def idle_connections(name, bootstrap, pid, end, count=10_000):
    """RSS growth per idle connection with `count` connections open (each sent one ApiVersions
    request, so the server has set it up fully), and one consumer's throughput meanwhile."""
    import socket
    host, port = bootstrap.rsplit(":", 1)
    base = rss_mib(pid)
    socks = []
    api_versions = bytes.fromhex("0000000c001200000000000100026964")  # size 12: key 18, v0, corr 1, client "id"
    try:
        for _ in range(count):
            s = socket.create_connection((host, int(port)))
            s.sendall(api_versions)
            socks.append(s)
        for s in socks:
            s.settimeout(30)
            size = int.from_bytes(s.recv(4, socket.MSG_WAITALL), "big")
            s.recv(size, socket.MSG_WAITALL)
        time.sleep(1)
        grown = rss_mib(pid) - base
        b, secs = loadgen(bootstrap, end, 1)
        return {"connections": count, "rss_mib": rss_mib(pid), "kib_per_connection": grown * 1024 / count,
                "consumer_gbps_meanwhile": b / secs / 1e9}
    finally:
        for s in socks:
            s.close()


def produce_perf(bootstrap, topic, partitions, n):
    subprocess.run([broker.JAVA, "-cp", broker.classpath(), "org.apache.kafka.tools.TopicCommand",
                    "--bootstrap-server", bootstrap, "--create", "--topic", topic, "--partitions", str(partitions),
                    "--replication-factor", "1"], check=True, capture_output=True, timeout=300)
    t = time.monotonic()
    subprocess.run([broker.JAVA, "-Xmx1g", "-cp", broker.classpath(), "org.apache.kafka.tools.ProducerPerformance",
                    "--topic", topic, "--num-records", str(n), "--record-size", str(RECORD), "--throughput", "-1",
                    "--producer-props", f"bootstrap.servers={bootstrap}", "acks=1", "batch.size=262144",
                    "linger.ms=20", "compression.type=none"], check=True, capture_output=True, timeout=1800)
    print(f"produced {n} records of {RECORD} bytes to {topic} ({partitions} partitions) in "
          f"{time.monotonic() - t:.1f} s", flush=True)


def tail_vs_broker(b, ferry, count=3000, interval_us=1000):
    """Send-to-receipt latency of records produced to the broker, read from the broker and from
    logferry at once: once with logferry in log-end visibility, once in checkpoint visibility."""
    subprocess.run([broker.JAVA, "-cp", broker.classpath(), "org.apache.kafka.tools.TopicCommand",
                    "--bootstrap-server", b.bootstrap, "--create", "--topic", "tail", "--partitions", "1",
                    "--replication-factor", "1"], check=True, capture_output=True, timeout=300)
    deadline = time.monotonic() + 30
    while clients.end_offsets(ferry.bootstrap, "tail").get(0) != 0:
        if time.monotonic() > deadline:
            raise TimeoutError("logferry did not see the new topic")
        time.sleep(0.2)
    out = []
    log_end = Ferry([b.log_dir], extra=["--visibility", "log-end"])
    try:
        for label, target, start in (("log-end", log_end.bootstrap, 0), ("checkpoint", ferry.bootstrap, count)):
            r = subprocess.run(["cargo", "bench", "-q", "--bench", "tail_vs_broker", "--", b.bootstrap, target, "tail",
                                str(start), str(count), str(interval_us)],
                               cwd=ROOT, capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(r.stderr[-2000:])
            print(label, r.stdout, flush=True)
            out.append((label, r.stdout.strip().splitlines()))
    finally:
        log_end.stop()
    return out


def measure(name, pid, run):
    run()  # warm-up: page cache, and logferry's one-time CRC check of each batch
    c0 = cpu(pid)
    b, s = run()
    c = cpu(pid) - c0
    gib = b / (1 << 30)
    return {"name": name, "gbps": b / s / 1e9, "cpu_per_gib": c / gib, "rss_mib": rss_mib(pid), "bytes": b, "seconds": s}


def main():
    work = os.path.join("/tmp", f"logferry-bench-{os.getpid()}")
    b = broker.Broker(work, extra={"log.segment.bytes": str(1 << 30)}).start()
    ferry = None
    try:
        n = int(GIB * (1 << 30) / RECORD)
        produce_perf(b.bootstrap, "bench", 1, n)
        produce_perf(b.bootstrap, "bench1k", 1000, n // 2)
        end = clients.end_offsets(b.bootstrap, "bench")[0]
        # 10,000 idle connections plus the active consumer: above the default connections_max.
        # The harness broker runs with group.initial.rebalance.delay.ms=0; so does logferry here,
        # so the consumer perf tool's rebalance time is comparable.
        ferry = Ferry([b.log_dir], extra=["--connections-max", "15000", "--group-initial-rebalance-delay-ms", "0"])
        deadline = time.monotonic() + 60
        while clients.end_offsets(ferry.bootstrap, "bench").get(0) != end:
            if time.monotonic() > deadline:
                raise TimeoutError("logferry did not reach the broker's end offset")
            time.sleep(0.5)
        results = []
        servers = (("broker", b.bootstrap, b.proc.pid), ("logferry", ferry.bootstrap, ferry.proc.pid))
        # 100 consumers read the first 1/8 of the partition each, to keep the run short.
        for conns, upto in ((1, end), (10, end), (100, end // 8)):
            for name, target, pid in servers:
                r = measure(name, pid, lambda: loadgen(target, upto, conns))
                r["scenario"] = f"loadgen, {conns} consumer(s), partition_max_bytes 1 MiB"
                results.append(r)
                print(r, flush=True)
        for name, target, pid in servers:
            r = measure(name, pid, lambda: loadgen(target, 0, 1, topic="bench1k", partition="all:1000"))
            r["scenario"] = "loadgen, 1 consumer of 1,000 partitions, partition_max_bytes 1 MiB"
            results.append(r)
            print(r, flush=True)
        tail_lines = tail_vs_broker(b, ferry)
        idle = {}
        for name, target, pid in servers:
            idle[name] = idle_connections(name, target, pid, end)
            print(name, idle[name], flush=True)
        perf = {}
        for name, target in (("broker", b.bootstrap), ("logferry", ferry.bootstrap)):
            # It subscribes with a group: on logferry that exercises the group coordinator too.
            consumer_perf(target, n)
            perf[name] = consumer_perf(target, n)
            print(name, perf[name], flush=True)
        write_report(results, perf, n, idle, tail_lines)
    finally:
        if ferry:
            ferry.stop()
        b.stop()


def write_report(results, perf, n, idle, tail_lines):
    lines = [
        "# Benchmarks: logferry vs the Kafka broker",
        "",
        f"Run {datetime.date.today()} on {os.cpu_count()} cores, Linux {platform.release()}, with "
        f"`python3 benches/vs_broker.py` (LOGFERRY_BENCH_GIB={GIB:g}): one partition of {n} records of "
        f"{RECORD} bytes written by Kafka's producer perf tool to a Kafka 4.1 broker (KRaft), served "
        "by the broker and by logferry (read-only, same log directory) in the same run, page cache warm "
        "(a warm-up pass precedes each measurement). Server CPU is user + system seconds from /proc.",
        "",
        "| scenario | server | GB/s | CPU s per GiB | RSS MiB | vs broker: throughput | vs broker: CPU per GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    by = {}
    for r in results:
        by.setdefault(r["scenario"], {})[r["name"]] = r
    for scenario, pair in by.items():
        br, lf = pair["broker"], pair["logferry"]
        for r in (br, lf):
            ratio_t = f"{r['gbps'] / br['gbps']:.2f}x" if r is lf else "1.00x"
            ratio_c = f"{r['cpu_per_gib'] / br['cpu_per_gib']:.2f}x" if r is lf else "1.00x"
            lines.append(f"| {scenario} | {r['name']} | {r['gbps']:.2f} | {r['cpu_per_gib']:.3f} | {r['rss_mib']:.0f} | {ratio_t} | {ratio_c} |")
    lines += ["", "Kafka's own consumer perf tool (`org.apache.kafka.tools.ConsumerPerformance`, default settings),"
              " last report line and wall time:", ""]
    lines.append("(columns: start, end, MB consumed, MB/s, records, records/s, rebalance ms, fetch ms, fetch MB/s, fetch records/s)")
    lines.append("")
    for name, (row, secs) in perf.items():
        lines.append(f"- {name}: `{row}`" + (f" ({secs:.1f} s including JVM start)" if secs else ""))
    lines += ["", "10,000 idle connections (each sent one ApiVersions request), then one consumer reading "
              "the partition meanwhile:", "",
              "| server | RSS MiB with 10k connections | KiB per idle connection | consumer GB/s meanwhile |",
              "|---|---|---|---|"]
    for name, r in idle.items():
        lines.append(f"| {name} | {r['rss_mib']:.0f} | {r['kib_per_connection']:.1f} | {r['consumer_gbps_meanwhile']:.2f} |")
    lines += ["", "Tail latency through the broker (`cargo bench --bench tail_vs_broker`): one record produced to "
              "the broker per millisecond (Produce v9, acks=1), read at once by a long-polling consumer on the "
              "broker and one on logferry, time from the produce request to receipt. With logferry in log-end "
              "visibility (a single-replica topic, or a copy) and in checkpoint visibility (it waits for the "
              "broker's high-watermark checkpoint, every 500 ms in the harness, 5 s by default):", ""]
    for label, out in tail_lines:
        lines.append(f"- logferry visibility {label}:")
        lines += [f"  - `{l}`" for l in out]
    lines += ["", "Plots: `docs/bench-throughput.png` (GB/s) and `docs/bench-cpu.png` (server CPU seconds per "
              "GiB), both servers per scenario.", "",
              "Tail latency (append to receipt through a long poll), with and without a cold catch-up read, "
              "is measured by `cargo bench --bench tail_latency`, the limits of the machine by "
              "`cargo bench --bench fetch_throughput`; see the README.", ""]
    with open(os.path.join(ROOT, "docs", "benchmarks.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    plot(by)


def plot(by):
    """Two clustered bar charts (gnuplot, PNG): throughput and CPU per GiB, broker vs logferry."""
    docs = os.path.join(ROOT, "docs")
    dat = os.path.join(docs, "bench.dat")
    with open(dat, "w") as f:
        for scenario, pair in by.items():
            label = scenario.replace("loadgen, ", "").replace(", partition_max_bytes 1 MiB", "")
            f.write(f'"{label}" {pair["broker"]["gbps"]:.3f} {pair["logferry"]["gbps"]:.3f} '
                    f'{pair["broker"]["cpu_per_gib"]:.3f} {pair["logferry"]["cpu_per_gib"]:.3f}\n')
    for out, cols, ylabel in (("bench-throughput.png", (2, 3), "GB/s (higher is better)"),
                              ("bench-cpu.png", (4, 5), "server CPU s per GiB (lower is better)")):
        script = f"""
set terminal pngcairo size 900,500 noenhanced
set yrange [0:*]
set output '{os.path.join(docs, out)}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set ylabel '{ylabel}'
set xtics rotate by -15
set title 'logferry vs Kafka 4.1 broker, same data, same run ({datetime.date.today()})'
plot '{dat}' using {cols[0]}:xtic(1) title 'broker', '' using {cols[1]} title 'logferry'
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True, timeout=60)
    os.remove(dat)


if __name__ == "__main__":
    main()
