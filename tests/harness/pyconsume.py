"""The kafka-python consumer of the harness (default settings): assigns every partition of a
topic from the start, reads to the end offsets seen at start and prints one canonical line per
record: "topic partition offset timestamp key-hex value-sha256 headers".

Usage: python3 pyconsume.py BOOTSTRAP TOPIC [read_committed|read_uncommitted] [TIMEOUT_S] [START]
START: beginning (default), ts:MILLIS, end:N (see the Java consumer) or group:NAME (a member of
consumer group NAME with kafka-python's default (eager) assignors, auto commit every second and a
6 s session; prints each record as it arrives and runs until SIGTERM or the timeout).
"""
import hashlib
import os
import signal
import sys
import time

from kafka import KafkaConsumer, TopicPartition


def hex_or_null(b):
    return "null" if b is None else b.hex()


def sha_or_null(b):
    return "null" if b is None else hashlib.sha256(b).hexdigest()


def line(r):
    hs = ",".join(k.encode().hex() + "=" + hex_or_null(v) for k, v in r.headers) or "-"
    return (f"{r.topic} {r.partition} {r.offset} {r.timestamp} "
            f"{hex_or_null(r.key)} {sha_or_null(r.value)} {hs}\n")


def sasl():
    """Client settings from LOGFERRY_SASL=MECHANISM:USER:PASSWORD and LOGFERRY_TLS_CA=PEM (with
    LOGFERRY_TLS_CERT and LOGFERRY_TLS_KEY for a client certificate); unset: PLAINTEXT."""
    spec = os.environ.get("LOGFERRY_SASL")
    ca = os.environ.get("LOGFERRY_TLS_CA")
    out = {}
    if spec:
        mech, user, password = spec.split(":", 2)
        out.update(sasl_mechanism=mech, sasl_plain_username=user, sasl_plain_password=password)
    if ca:
        out.update(ssl_cafile=ca)
        if os.environ.get("LOGFERRY_TLS_CERT"):
            out.update(ssl_certfile=os.environ["LOGFERRY_TLS_CERT"], ssl_keyfile=os.environ["LOGFERRY_TLS_KEY"])
    if spec or ca:
        out["security_protocol"] = ("SASL_" if spec else "") + ("SSL" if ca else "PLAINTEXT")
    return out


def run_group(bootstrap, topic, group, isolation, timeout_s):
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, isolation_level=isolation, **sasl(),
                      auto_offset_reset="earliest", enable_auto_commit=True, auto_commit_interval_ms=1000,
                      session_timeout_ms=6000, heartbeat_interval_ms=1000)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    deadline = time.monotonic() + timeout_s
    while not stopping and time.monotonic() < deadline:
        for _, records in c.poll(timeout_ms=200).items():
            for r in records:
                sys.stdout.write(line(r))
            sys.stdout.flush()
    c.close()


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: pyconsume.py BOOTSTRAP TOPIC [ISOLATION] [TIMEOUT_S]")
    bootstrap, topic = sys.argv[1], sys.argv[2]
    isolation = sys.argv[3] if len(sys.argv) > 3 else "read_uncommitted"
    timeout_s = int(sys.argv[4]) if len(sys.argv) > 4 else 60
    start = sys.argv[5] if len(sys.argv) > 5 else "beginning"
    if start.startswith("group:"):
        return run_group(bootstrap, topic, start[len("group:"):], isolation, timeout_s)
    c = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                      enable_auto_commit=False, group_id=None, **sasl())
    deadline = time.monotonic() + timeout_s
    parts = None
    while parts is None and time.monotonic() < deadline:
        parts = c.partitions_for_topic(topic)
        if parts is None:
            time.sleep(0.1)
    if parts is None:
        sys.exit(f"topic {topic} not found")
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    c.assign(tps)
    end = c.end_offsets(tps)
    want = None
    if start.startswith("ts:"):
        found = c.offsets_for_times({tp: int(start[3:]) for tp in tps})
        for tp in tps:
            c.seek(tp, found[tp].offset if found.get(tp) is not None else end[tp])
    elif start.startswith("end:"):
        want = int(start[4:])
        for tp in tps:
            c.seek(tp, end[tp])
        sys.stderr.write("READY\n")
        sys.stderr.flush()
    else:
        c.seek_to_beginning(*tps)
    out = []

    def done():
        if want is not None:
            return len(out) >= want
        return all(c.position(tp) >= end[tp] for tp in tps)

    while not done():
        if time.monotonic() > deadline:
            sys.stdout.write("".join(out))
            sys.exit(f"timed out before reaching the end offsets {end}")
        for tp, records in c.poll(timeout_ms=200).items():
            for r in records:
                out.append(line(r))
    sys.stdout.write("".join(out))
    c.close()


if __name__ == "__main__":
    main()
