"""Benchmark (not a test): what `--upstream` buys and what it costs the broker.

One run, one machine, a harness broker (KRaft) with Kafka's default high-watermark checkpoint
interval (5 s):
1. Produce-to-receipt latency (`cargo bench --bench tail_vs_broker`: one record a millisecond,
   a long-polling consumer on the broker and one on logferry, same records), with logferry in
   `checkpoint` visibility and in `upstream` visibility.
2. The broker's CPU while a producer writes 2,000 records/s for 20 s (after a warm-up run): with
   no consumer (before and after the others), with 10 tailing consumers (kcat) on the broker,
   and with the same 10 on logferry (`--upstream`, so the broker serves only logferry's one
   watch connection). The upstream's cost is its CPU over
   the no-consumer run, against what the 10 direct consumers cost.

Writes docs/upstream-benchmarks.md. Run: bash tests/harness/install.sh && python3 benches/upstream_latency.py
"""
import datetime
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
import broker  # noqa: E402
import clients  # noqa: E402
from ferry import Ferry  # noqa: E402

COUNT = int(os.environ.get("LOGFERRY_BENCH_RECORDS", "5000"))


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def create(b, topic):
    subprocess.run([broker.JAVA, "-cp", broker.classpath(), "org.apache.kafka.tools.TopicCommand",
                    "--bootstrap-server", b.bootstrap, "--create", "--topic", topic, "--partitions", "1",
                    "--replication-factor", "1"], check=True, capture_output=True, timeout=300)


def wait_visible(ferry, b, topic, timeout_s=60):
    want = clients.end_offsets(b.bootstrap, topic)
    deadline = time.monotonic() + timeout_s
    while clients.end_offsets(ferry.bootstrap, topic) != want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"logferry did not catch up on {topic}")
        time.sleep(0.2)
    return want.get(0, 0)


def latency(b, ferry, topic):
    start = wait_visible(ferry, b, topic)
    r = subprocess.run(["cargo", "bench", "-q", "--bench", "tail_vs_broker", "--", b.bootstrap, ferry.bootstrap, topic,
                        str(start), str(COUNT), "1000"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return r.stdout.strip().splitlines()


def broker_cpu(b, topic, consumers_at):
    """Broker CPU seconds over a 20 s produce at 2,000 records/s with 10 kcat tailing `consumers_at`."""
    tails = []
    if consumers_at:
        for _ in range(10):
            tails.append(subprocess.Popen(["kcat", "-C", "-b", consumers_at, "-t", topic, "-o", "end", "-q", "-u"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(3)
    try:
        c0 = cpu_s(b.proc.pid)
        subprocess.run([broker.JAVA, "-cp", broker.classpath(), "org.apache.kafka.tools.ProducerPerformance",
                        "--topic", topic, "--num-records", "40000", "--record-size", "100", "--throughput", "2000",
                        "--producer-props", f"bootstrap.servers={b.bootstrap}", "acks=all", "linger.ms=0"],
                       check=True, capture_output=True, timeout=300)
        return cpu_s(b.proc.pid) - c0
    finally:
        for t in tails:
            t.kill()
            t.wait()


def main():
    b = broker.Broker(extra={"replica.high.watermark.checkpoint.interval.ms": "5000"}).start()
    lines = []
    try:
        create(b, "tail-checkpoint")
        create(b, "tail-upstream")
        create(b, "load")
        checkpoint = Ferry([b.log_dir], extra=["--visibility", "checkpoint"])
        try:
            lat_checkpoint = latency(b, checkpoint, "tail-checkpoint")
        finally:
            checkpoint.stop()
        upstream = Ferry([b.log_dir], extra=["--upstream", b.bootstrap])
        try:
            lat_upstream = latency(b, upstream, "tail-upstream")
            broker_cpu(b, "load", None)  # warm-up: the broker's JIT, the topic's first segment
            idle_a = broker_cpu(b, "load", None)
            direct = broker_cpu(b, "load", b.bootstrap)
            via = broker_cpu(b, "load", upstream.bootstrap)
            idle_b = broker_cpu(b, "load", None)
            idle = (idle_a + idle_b) / 2
        finally:
            upstream.stop()
    finally:
        b.stop()
    when = datetime.date.today().isoformat()
    lines += [
        "# `--upstream`: latency gained, broker CPU spent",
        "",
        f"Run {when} on {os.cpu_count()} cores, Linux {platform.release()}, with `python3 benches/upstream_latency.py`: "
        "a harness broker (Kafka 4.1, KRaft) with the default 5 s high-watermark checkpoint interval.",
        "",
        f"Produce-to-receipt latency, {COUNT} records, one a millisecond (`cargo bench --bench tail_vs_broker`; "
        "each run measures a consumer on the broker and one on logferry, same records):",
        "",
        "logferry `--visibility checkpoint`:",
        "",
        "```",
        *lat_checkpoint,
        "```",
        "",
        "logferry `--upstream` (visibility upstream):",
        "",
        "```",
        *lat_upstream,
        "```",
        "",
        "Broker CPU seconds while a producer writes 40,000 records of 100 bytes at 2,000/s (acks=all):",
        "",
        "| consumers | broker CPU s | over no consumers |",
        "|---|---|---|",
        f"| none (mean of a run before and one after the others: {idle_a:.2f}, {idle_b:.2f}) | {idle:.2f} | — |",
        f"| 10 kcat tailing the broker | {direct:.2f} | {direct - idle:+.2f} |",
        f"| 10 kcat tailing logferry (`--upstream`: one watch connection to the broker) | {via:.2f} | {via - idle:+.2f} |",
        "",
        f"The upstream costs the broker {max(via - idle, 0) / max(direct - idle, 1e-9) * 100:.0f}% of what the 10 direct "
        "consumers cost it (CPU is read in clock ticks of 10 ms; the runs are 20 s each).",
    ]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(ROOT, "docs", "upstream-benchmarks.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
