"""logferry's log model against a real broker's log directory, live.

- `logferry verify` finds the broker's directory clean, while the broker runs.
- `logferry dump` prints exactly what Kafka's own DumpLogSegments prints, shallow and deep, for
  every segment and index of every workload (all codecs, transactions, compaction, retention).
- `logferry tail` follows the broker while it writes: appends, new partitions, rolls and the
  retention deletes they trigger, with the ends it reports equal to the broker's own end offsets.
"""
import glob
import os
import subprocess
import threading
import time

import pytest

import clients
from conftest import WORKLOADS

BIN = os.environ.get("LOGFERRY_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "logferry")


def logferry(*args, **kw):
    if not os.path.exists(BIN):
        raise RuntimeError(f"logferry binary missing at {BIN}: run cargo build --release")
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


def test_verify_clean_on_live_broker_dir(kafka):
    r = logferry("verify", kafka.log_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr.rstrip().endswith(": clean"), r.stderr
    # Every workload partition was walked (plus the broker's internal topics).
    partitions = int(r.stderr.split("logferry verify: ")[1].split()[0])
    assert partitions >= sum(100 if w == "many" else 3 for w in WORKLOADS)


@pytest.mark.parametrize("deep", [False, True])
def test_dump_matches_kafka_dump_log(kafka, deep):
    files = []
    for w in WORKLOADS:
        for d in sorted(glob.glob(os.path.join(kafka.log_dir, f"{w}-*")))[:3]:
            for suffix in ("log", "index", "timeindex", "txnindex"):
                files += sorted(glob.glob(os.path.join(d, f"*.{suffix}")))
    assert len(files) > 60
    args = ["dump", "--deep"] if deep else ["dump"]
    ours = logferry(*args, *files)
    assert ours.returncode == 0, ours.stderr
    theirs = clients.dump_log(files, deep=deep)
    assert ours.stdout.splitlines() == theirs.splitlines()


def test_verify_reports_corruption(tmp_path):
    """A copied segment with one flipped record byte is reported with path and position."""
    src = os.path.join(os.path.dirname(__file__), "..", "fixtures", "logdir")
    dst = tmp_path / "logdir"
    subprocess.run(["cp", "-r", src, str(dst)], check=True)
    seg = sorted(glob.glob(str(dst / "plain-0" / "*.log")))[0]
    with open(seg, "r+b") as f:
        f.seek(200)
        b = f.read(1)
        f.seek(200)
        f.write(bytes([b[0] ^ 0xFF]))
    r = logferry("verify", str(dst))
    assert r.returncode == 1
    assert f"{seg}: position 0: corrupt batch: crc mismatch" in r.stdout


class Tail:
    """`logferry tail` in the background, its lines collected."""

    def __init__(self, log_dir):
        self.proc = subprocess.Popen([BIN, "tail", "--rescan-ms", "1000", log_dir], stdout=subprocess.PIPE, text=True)
        self.lines = []
        self.ready = threading.Event()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        if not self.ready.wait(60):
            self.stop()
            raise TimeoutError("logferry tail did not print 'ready' within 60 s")

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line == "ready":
                self.ready.set()
            self.lines.append(line)

    def end(self, tp):
        """Latest end offset the tailer reported for `tp`."""
        end = None
        for l in list(self.lines):
            f = l.split()
            if len(f) >= 3 and f[1] == tp and f[0] in ("added", "advanced", "truncated"):
                end = int(f[2].split("=")[1])
        return end

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def wait_until(pred, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s: {what}")


def test_tail_follows_live_broker(kafka):
    tail = Tail(kafka.log_dir)
    try:
        # Existing partitions are reported with the broker's end offsets.
        committed = kafka.committed["plain"]
        ends = {}
        for line in committed:
            t, p, o = line.split()[:3]
            ends[f"{t}-{p}"] = max(ends.get(f"{t}-{p}", 0), int(o) + 1)
        for tp, end in ends.items():
            assert tail.end(tp) == end, (tp, tail.end(tp), end)
        # A new topic appears and its appends are followed, without waiting for a rescan tick.
        c, _ = clients.produce(kafka.bootstrap, "plain", "tail-live", 3000, seed=99)
        want = {}
        for line in c:
            t, p, o = line.split()[:3]
            want[f"{t}-{p}"] = max(want.get(f"{t}-{p}", 0), int(o) + 1)
        for tp, end in want.items():
            wait_until(lambda: tail.end(tp) == end, 30, f"tail to report {tp} end={end}, last {tail.end(tp)}")
        # More appends roll segments in the retention topic; retention deletes old ones.
        before = len([l for l in tail.lines if l.startswith("segment-removed retention-")])
        c2, _ = clients.produce(kafka.bootstrap, "retention", "retention", 6000, seed=98)
        wait_until(lambda: len([l for l in tail.lines if l.startswith("segment-removed retention-")]) > before, 60,
                   "tail to report a retention delete")
        for line in c2[-3:]:
            t, p, o = line.split()[:3]
            tp = f"{t}-{p}"
            top = max(int(l.split()[2]) for l in c2 if l.split()[1] == p) + 1
            wait_until(lambda: tail.end(tp) == top, 30, f"tail to report {tp} end={top}")
        assert all("truncated" not in l for l in tail.lines), [l for l in tail.lines if "truncated" in l]
    finally:
        tail.stop()
