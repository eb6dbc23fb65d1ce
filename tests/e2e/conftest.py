"""Session fixtures for the end-to-end suite: one real Kafka broker (KRaft) with every harness
workload written to it. Tests that need the broker share it; it is stopped at session end."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import broker  # noqa: E402
import clients  # noqa: E402

# workload name -> record count (the topic carries the workload's name)
WORKLOADS = {
    "plain": 3000,
    "gzip": 2000,
    "snappy": 2000,
    "lz4": 2000,
    "zstd": 2000,
    "idempotent": 1000,
    "txn": 600,
    "compacted": 3000,
    "retention": 6000,
    "large": 12,
    "many": 2000,
}


def segment_bases(log_dir, topic):
    """{partition: [base offsets of live .log files]} read straight from the directory."""
    out = {}
    for name in os.listdir(log_dir):
        t, _, p = name.rpartition("-")
        if t != topic or not p.isdigit():
            continue
        bases = sorted(int(f[:-4]) for f in os.listdir(os.path.join(log_dir, name)) if f.endswith(".log"))
        out[int(p)] = bases
    return out


def wait_for(pred, timeout_s, what, detail=lambda: ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}\n{detail()}")


class Kafka:
    def __init__(self, b):
        self.broker = b
        self.bootstrap = b.bootstrap
        self.log_dir = b.log_dir
        self.committed = {}
        self.aborted = {}


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    b = broker.Broker(str(tmp_path_factory.mktemp("kafka"))).start()
    try:
        k = Kafka(b)
        for i, (workload, count) in enumerate(WORKLOADS.items()):
            k.committed[workload], k.aborted[workload] = clients.produce(b.bootstrap, workload, workload, count, seed=i + 1)
        # Compaction and retention run on broker timers: wait (bounded) until they have acted.
        wait_for(lambda: all(len(v) > 0 and v[0] > 0 for v in segment_bases(b.log_dir, "retention").values()),
                 90, "retention to delete the first segment of every 'retention' partition")
        wait_for(lambda: "compacted" in open(os.path.join(b.log_dir, "cleaner-offset-checkpoint")).read(),
                 90, "the log cleaner to compact the 'compacted' topic")
        # Deletions are renames first; wait until no .deleted file is left so reads are stable.
        wait_for(lambda: not any(f.endswith(".deleted") for _, _, fs in os.walk(b.log_dir) for f in fs),
                 90, ".deleted files to be removed")
        yield k
    finally:
        b.stop()
