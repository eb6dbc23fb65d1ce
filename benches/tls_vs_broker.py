"""Benchmark (not a test): one consumer over TLS through logferry vs through the broker's SSL
listener, on the same data, in one run (issue 14). Both servers copy (no kernel TLS on this
machine: no `tls` ULP), so this measures each one's TLS path: logferry's pread into a bounded
buffer and rustls (ring, AES-GCM), against the broker's JSSE engine.

A real broker (the test harness's) with PLAINTEXT and SSL listeners on a keytool-written PKCS12
keystore is filled with LOGFERRY_BENCH_GIB GiB (default 1) into a one-partition topic; logferry
serves the broker's log directory with --broker-config only (the same keystore). The Rust load
generator (`cargo bench --bench loadgen`: Fetch v12, rustls client, bytes discarded) reads the
whole partition from each server's TLS listener, a warm-up pass first, LOGFERRY_BENCH_ROUNDS
rounds (default 3) alternating. Reported: throughput, server CPU seconds per GiB (user + system,
from /proc) and logferry's ratios to the broker; the plaintext figures of the same run beside
them. Writes docs/bench-tls.md.

Run: bash benches/install.sh && python3 benches/tls_vs_broker.py
"""
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
sys.path.insert(0, os.path.join(ROOT, "benches"))
import broker  # noqa: E402
import clients  # noqa: E402
from ferry import Ferry  # noqa: E402
from pki import make_pki  # noqa: E402
from vs_broker import RECORD, cpu, loadgen, produce_perf  # noqa: E402

GIB = float(os.environ.get("LOGFERRY_BENCH_GIB", "1"))
ROUNDS = int(os.environ.get("LOGFERRY_BENCH_ROUNDS", "3"))


def once(pid, target, end):
    c0 = cpu(pid)
    nbytes, secs = loadgen(target, end, 1)
    c = cpu(pid) - c0
    return nbytes / secs / 1e9, c / (nbytes / (1 << 30))


def main():
    work = tempfile.mkdtemp(prefix="logferry-bench-tls-")
    os.makedirs(os.path.join(work, "pki"))
    pki = make_pki(os.path.join(work, "pki"))
    os.environ["LOGFERRY_BENCH_TLS_CA"] = pki["ca"]
    b = broker.Broker(os.path.join(work, "kafka"), extra={"log.segment.bytes": str(1 << 30)})
    b.ssl_port = broker.free_port()
    b.extra.update({
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},SSL://127.0.0.1:{b.ssl_port},"
                     f"CONTROLLER://127.0.0.1:{b.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{b.port},SSL://127.0.0.1:{b.ssl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": pki["keystore"],
        "ssl.keystore.password": "ks-secret",
        "ssl.key.password": "ks-secret",
    })
    b.start()
    ferry = None
    try:
        n = int(GIB * (1 << 30) / RECORD)
        produce_perf(b.bootstrap, "bench", 1, n)
        end = clients.end_offsets(b.bootstrap, "bench")[0]
        ferry = Ferry([b.log_dir], listen="SSL://127.0.0.1:0",
                      extra=["--broker-config", b.conf, "--listen", "127.0.0.1:0"])
        tls_ferry, plain_ferry = ferry.listeners[0][1], ferry.listeners[1][1]
        deadline = time.monotonic() + 60
        while clients.end_offsets(plain_ferry, "bench").get(0) != end:
            if time.monotonic() > deadline:
                raise TimeoutError("logferry did not reach the broker's end offset")
            time.sleep(0.5)
        targets = {
            ("broker", "TLS"): (b.proc.pid, f"SSL://127.0.0.1:{b.ssl_port}"),
            ("logferry", "TLS"): (ferry.proc.pid, f"SSL://{tls_ferry}"),
            ("broker", "plaintext"): (b.proc.pid, b.bootstrap),
            ("logferry", "plaintext"): (ferry.proc.pid, plain_ferry),
        }
        for pid, target in targets.values():
            loadgen(target, end, 1)  # warm-up: page cache, logferry's first CRC check
        runs = {k: [] for k in targets}
        for r in range(ROUNDS):
            for k, (pid, target) in targets.items():
                runs[k].append(once(pid, target, end))
                print(r, k, runs[k][-1], flush=True)
        write_report(runs, end)
    finally:
        if ferry:
            ferry.stop()
        b.stop()


def write_report(runs, end):
    med = {k: (statistics.median(g for g, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    lines = [
        "# Benchmark: one consumer over TLS, logferry vs the broker's SSL listener",
        "",
        f"Run {datetime.date.today()} on {os.cpu_count()} cores, Linux {platform.release()}, by "
        f"`python3 benches/tls_vs_broker.py`: {end:,} records of {RECORD} bytes "
        f"({GIB:g} GiB) in one partition, read whole by one `loadgen` consumer (Fetch v12, "
        f"partition_max_bytes 1 MiB, rustls client) from each server; median of {ROUNDS} rounds after a "
        "warm-up pass, servers alternating. Both servers copy record bytes through user space "
        "(this kernel has no `tls` ULP, so neither can use kernel TLS); the plaintext rows are the "
        "same run's figures without TLS (the broker and logferry both `sendfile` there).",
        "",
        "| transport | server | GB/s | server CPU s/GiB | throughput vs broker | CPU/GiB vs broker |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for transport in ("TLS", "plaintext"):
        bg, bc = med[("broker", transport)]
        for name in ("broker", "logferry"):
            g, c = med[(name, transport)]
            lines.append(f"| {transport} | {name} | {g:.3f} | {c:.3f} | {g / bg:.2f}x | {c / bc:.2f}x |")
    lines += ["", "Every round:", ""]
    for k, v in runs.items():
        lines.append(f"- {k[1]} {k[0]}: " + ", ".join(f"{g:.3f} GB/s at {c:.3f} CPU s/GiB" for g, c in v))
    os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
    with open(os.path.join(ROOT, "docs", "bench-tls.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
