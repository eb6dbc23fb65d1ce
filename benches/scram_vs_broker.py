"""Benchmark (not a test): SCRAM-SHA-512 logins per second, logferry vs the broker, in one run
(issue 14). A real broker (the test harness's) with SASL_PLAINTEXT and SASL_SSL listeners and one
SCRAM-SHA-512 user (4,096 iterations, made with kafka-configs.sh: the credential is in the
metadata log); logferry serves the broker's log directory with --broker-config only, so it reads
the same listeners' settings, keystore and credential. `cargo bench --bench scram_logins` runs
LOGFERRY_BENCH_THREADS clients (default 4), each logging in on a new connection in a loop
(ApiVersions, SaslHandshake, two SaslAuthenticate rounds, close) for LOGFERRY_BENCH_SECONDS
(default 10) per round, LOGFERRY_BENCH_ROUNDS rounds (default 3), servers alternating. Reported:
logins per second, server CPU milliseconds per login (user + system, from /proc), client-side
latency p50/p99 and logferry's ratios to the broker. Writes docs/bench-scram.md.

Run: bash benches/install.sh && python3 benches/scram_vs_broker.py
"""
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))
sys.path.insert(0, os.path.join(ROOT, "benches"))
import broker  # noqa: E402
from ferry import Ferry  # noqa: E402
from pki import make_pki  # noqa: E402
from vs_broker import cpu  # noqa: E402

THREADS = int(os.environ.get("LOGFERRY_BENCH_THREADS", "4"))
SECONDS = float(os.environ.get("LOGFERRY_BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("LOGFERRY_BENCH_ROUNDS", "3"))
USER, PASSWORD = "bench", "bench-scram-secret"
JAAS_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


def logins(addr, seconds=SECONDS):
    r = subprocess.run(["cargo", "bench", "-q", "--bench", "scram_logins", "--", addr, "SCRAM-SHA-512", USER,
                        PASSWORD, str(THREADS), str(seconds)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return {k: float(v) for k, v in (kv.split("=") for kv in r.stdout.split())}


def once(pid, addr):
    c0 = cpu(pid)
    m = logins(addr)
    c = cpu(pid) - c0
    return m["per_second"], c * 1000 / m["logins"], m["p50_us"], m["p99_us"]


def main():
    work = tempfile.mkdtemp(prefix="logferry-bench-scram-")
    os.makedirs(os.path.join(work, "pki"))
    pki = make_pki(os.path.join(work, "pki"))
    os.environ["LOGFERRY_BENCH_TLS_CA"] = pki["ca"]
    b = broker.Broker(os.path.join(work, "kafka"))
    b.sasl_port, b.sasl_ssl_port = broker.free_port(), broker.free_port()
    b.extra.update({
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{b.sasl_port},"
                     f"SASL_SSL://127.0.0.1:{b.sasl_ssl_port},CONTROLLER://127.0.0.1:{b.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{b.sasl_port},"
                                f"SASL_SSL://127.0.0.1:{b.sasl_ssl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,"
                                          "CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": JAAS_SCRAM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": JAAS_SCRAM,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": pki["keystore"],
        "ssl.keystore.password": "ks-secret",
        "ssl.key.password": "ks-secret",
    })
    b.start()
    ferry = None
    try:
        r = broker.java("org.apache.kafka.tools.ConfigCommand",
                        ["--bootstrap-server", b.bootstrap, "--alter", "--add-config",
                         f"SCRAM-SHA-512=[iterations=4096,password={PASSWORD}]", "--entity-type", "users",
                         "--entity-name", USER], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        ferry = Ferry([b.log_dir], listen="SASL_PLAINTEXT://127.0.0.1:0",
                      extra=["--broker-config", b.conf, "--listen", "SASL_SSL://127.0.0.1:0"])
        targets = {
            ("broker", "SASL_PLAINTEXT"): (b.proc.pid, f"SASL_PLAINTEXT://127.0.0.1:{b.sasl_port}"),
            ("logferry", "SASL_PLAINTEXT"): (ferry.proc.pid, f"SASL_PLAINTEXT://{ferry.listeners[0][1]}"),
            ("broker", "SASL_SSL"): (b.proc.pid, f"SASL_SSL://127.0.0.1:{b.sasl_ssl_port}"),
            ("logferry", "SASL_SSL"): (ferry.proc.pid, f"SASL_SSL://{ferry.listeners[1][1]}"),
        }
        # The credential reaches logferry through the metadata log within seconds.
        deadline = time.monotonic() + 60
        while True:
            try:
                logins(targets[("logferry", "SASL_PLAINTEXT")][1], 0.2)
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        for pid, addr in targets.values():
            logins(addr, 3)  # warm-up: the broker's JIT, both servers' first handshakes
        runs = {k: [] for k in targets}
        for r in range(ROUNDS):
            for k, (pid, addr) in targets.items():
                runs[k].append(once(pid, addr))
                print(r, k, runs[k][-1], flush=True)
        write_report(runs)
    finally:
        if ferry:
            ferry.stop()
        b.stop()


def write_report(runs):
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(4)) for k, v in runs.items()}
    lines = [
        "# Benchmark: SCRAM-SHA-512 logins per second, logferry vs the broker",
        "",
        f"Run {datetime.date.today()} on {os.cpu_count()} cores, Linux {platform.release()}, by "
        f"`python3 benches/scram_vs_broker.py`: {THREADS} clients on the same machine, each logging in "
        "on a new connection in a loop (ApiVersions v3, SaslHandshake v1, two SaslAuthenticate v2 rounds, "
        f"server signature checked, close) for {SECONDS:g} s per round; median of {ROUNDS} rounds after a "
        "warm-up, servers alternating. One SCRAM-SHA-512 user with 4,096 iterations made by "
        "`kafka-configs.sh`; logferry reads it from the metadata log. The clients cache the salted "
        "password (neither server runs PBKDF2 per login: both store the derived keys), so the figures "
        "are the servers' cost of a connection and a login; the clients share the two cores.",
        "",
        "| listener | server | logins/s | server CPU ms/login | p50 µs | p99 µs | logins/s vs broker "
        "| CPU/login vs broker |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for transport in ("SASL_PLAINTEXT", "SASL_SSL"):
        br, bc = med[("broker", transport)][:2]
        for name in ("broker", "logferry"):
            rate, c, p50, p99 = med[(name, transport)]
            lines.append(f"| {transport} | {name} | {rate:,.0f} | {c:.3f} | {p50:,.0f} | {p99:,.0f} "
                         f"| {rate / br:.2f}x | {c / bc:.2f}x |")
    lines += ["", "Every round (logins/s, server CPU ms/login):", ""]
    for k, v in runs.items():
        lines.append(f"- {k[1]} {k[0]}: " + ", ".join(f"{x[0]:,.0f} at {x[1]:.3f}" for x in v))
    with open(os.path.join(ROOT, "docs", "bench-scram.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
