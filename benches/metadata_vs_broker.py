"""Benchmark (not a test): a Metadata answer for a big cluster, logferry against the broker.

One run, one machine: a harness broker (KRaft) gets `LOGFERRY_BENCH_TOPICS` topics (default
1,000) of 10 partitions, created with the admin client in batches; logferry follows that broker's
own metadata log (the fleet presentation). Both are then asked the same raw Metadata v12 request
for every topic, `ROUNDS` times over one connection each (alternating), and the client-side time
per answer (median, p99) and the answer's bytes are reported, with the ratio. Also logferry's
start-up line (the image it built) and its RSS.

Writes docs/fleet-benchmarks.md. Run: bash tests/harness/install.sh && python3 benches/metadata_vs_broker.py
"""
import datetime
import os
import platform
import socket
import statistics
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
import broker  # noqa: E402
from ferry import Ferry  # noqa: E402

TOPICS = int(os.environ.get("LOGFERRY_BENCH_TOPICS", "1000"))
PARTITIONS = 10
ROUNDS = int(os.environ.get("LOGFERRY_BENCH_ROUNDS", "30"))


def recv(s, n):
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return bytes(out)


def metadata_v12(corr):
    # header v2: api key 3, version 12, correlation, client id, no tags; body: topics null
    # (compact array 0), allow_auto_topic_creation false, include_topic_authorized_operations
    # false, no tags.
    body = struct.pack(">hhih", 3, 12, corr, 5) + b"bench" + b"\x00" + b"\x00" + b"\x00\x00" + b"\x00"
    return struct.pack(">i", len(body)) + body


def ask(s, corr):
    t0 = time.perf_counter()
    s.sendall(metadata_v12(corr))
    size = struct.unpack(">i", recv(s, 4))[0]
    recv(s, size)
    return time.perf_counter() - t0, size + 4


def connect(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def create_topics(bootstrap):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=120000)
    try:
        names = [f"md-{i:05}" for i in range(TOPICS)]
        for i in range(0, len(names), 100):
            a.create_topics([NewTopic(n, PARTITIONS, 1) for n in names[i:i + 100]], timeout_ms=120000)
    finally:
        a.close()


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    b = broker.Broker(extra={"num.partitions": "1"}).start()
    try:
        t0 = time.monotonic()
        create_topics(b.bootstrap)
        created_s = time.monotonic() - t0
        f = Ferry([b.log_dir], extra=["--upstream", b.bootstrap])
        try:
            # Until both answers stop changing: the broker lists a topic without its partitions
            # while it is still creating their logs.
            deadline = time.monotonic() + 300
            last, same = None, 0
            while same < 3:
                with connect(b.bootstrap) as s1, connect(f.bootstrap) as s2:
                    _, nb = ask(s1, 1)
                    _, nf = ask(s2, 1)
                same = same + 1 if (nb, nf) == last and nb > 20 * TOPICS * PARTITIONS else 0
                last = (nb, nf)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"answers did not settle: broker {nb} bytes, logferry {nf} bytes")
                time.sleep(1)
            times = {"broker": [], "logferry": []}
            sizes = {}
            with connect(b.bootstrap) as sb, connect(f.bootstrap) as sf:
                for who, s in (("broker", sb), ("logferry", sf)):
                    for _ in range(3):
                        ask(s, 0)  # warm-up
                for r in range(ROUNDS):
                    for who, s in (("broker", sb), ("logferry", sf)):
                        dt, n = ask(s, r + 2)
                        times[who].append(dt * 1e3)
                        sizes[who] = n
            start_line = next((l for l in f.log if "serving on" in l), "")
            rss = rss_mib(f.proc.pid)
        finally:
            f.stop()
    finally:
        b.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    p99 = {k: sorted(v)[max(0, int(len(v) * 0.99) - 1)] for k, v in times.items()}
    lines = [
        "# Fleet benchmarks: a Metadata answer for a big cluster",
        "",
        f"Measured {datetime.date.today()} on {platform.machine()}, {os.cpu_count()} cores, by",
        "`python3 benches/metadata_vs_broker.py` (one run; both servers on this machine, asked in turn",
        f"over one connection each). {TOPICS} topics x {PARTITIONS} partitions = {TOPICS * PARTITIONS}",
        f"partitions, created on one Kafka 4.4 broker in {created_s:.0f} s; logferry follows that broker's metadata log.",
        "",
        "| server | median ms | p99 ms | answer bytes |",
        "|---|---|---|---|",
    ]
    for who in ("broker", "logferry"):
        lines.append(f"| {who} | {med[who]:.2f} | {p99[who]:.2f} | {sizes[who]} |")
    lines += [
        "",
        f"logferry / broker, median time: {med['logferry'] / med['broker']:.2f}; answer bytes: "
        f"{sizes['logferry'] / sizes['broker']:.3f}. logferry's RSS with this image: {rss:.0f} MiB.",
        "",
        "logferry's start-up line:",
        "",
        "```",
        start_line.strip(),
        "```",
        "",
        "Image build and follow cost (`cargo bench --bench metadata_image`): see the README's Fleet section.",
        "",
    ]
    out = os.path.join(ROOT, "docs", "fleet-benchmarks.md")
    with open(out, "w") as fh:
        fh.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
