"""Faults under logferry (issue 17), against the session's real broker.

A topic deleted while logferry serves it (see that test's doc). The state dir full (ENOSPC) during OffsetCommit: logferry's state dir is a tiny tmpfs; a commit
that needs a new page once the file system is full is not acknowledged (logferry closes the
connection instead of answering, with an error line), the commit acknowledged before is still
what OffsetFetch reads, the process lives, and once space returns commits are acknowledged
again and survive a SIGKILL. Needs root to mount the tmpfs (the CI machine runs as root); the
test fails loudly when it cannot.
"""
import errno
import os
import subprocess
import sys
import time

import pytest

import clients
from conftest import wait_for
from ferry import Ferry
from test_upstream import committed as committed_in

TOPIC = "faults-enospc"
GROUP = "g-enospc"
# Big enough that each commit record needs a page of its own (tmpfs allocates by pages), below
# offset.metadata.max.bytes (4096).
METADATA = 4000

COMMIT = """
import sys
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
bootstrap, topic, group, offset, meta = sys.argv[1:6]
c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                  request_timeout_ms=5000)
tp = TopicPartition(topic, 0)
c.assign([tp])
c.commit({tp: OffsetAndMetadata(int(offset), meta * %d, -1)})
c.close()
print("committed")
""" % METADATA


def commit(bootstrap, offset, meta, timeout_s):
    """Commits OFFSET for partition 0 in a child process; True when the commit was acknowledged
    within TIMEOUT_S (kafka-python retries a closed connection, so a refused commit hangs)."""
    global last_error
    try:
        r = subprocess.run([sys.executable, "-c", COMMIT, bootstrap, TOPIC, GROUP, str(offset), meta],
                           capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        last_error = "timed out"
        return False
    last_error = r.stderr[-2000:]
    return r.returncode == 0 and "committed" in r.stdout


last_error = ""


def committed(bootstrap):
    return committed_in(bootstrap, GROUP, TOPIC)


@pytest.fixture
def tiny_state_dir(tmp_path):
    mnt = tmp_path / "state"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    assert r.returncode == 0, f"mounting a tmpfs for the state dir failed (needs root): {r.stderr}"
    yield str(mnt)
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path):
    """Writes FILE until the file system says ENOSPC."""
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * 4096
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


def test_a_full_state_dir_refuses_commits_loses_nothing_and_recovers(kafka, tiny_state_dir):
    clients.produce(kafka.bootstrap, "plain", TOPIC, 20, seed=71)  # creates the topic
    ferry = Ferry([kafka.log_dir], state_dir=tiny_state_dir)
    try:
        assert commit(ferry.bootstrap, 5, "a", 60), f"a commit with space left is acknowledged: {last_error}"
        assert committed(ferry.bootstrap) == {0: 5}

        filler = os.path.join(tiny_state_dir, "filler")
        fill(filler)
        assert not commit(ferry.bootstrap, 9, "b", 15), "a commit the disk cannot hold was acknowledged"
        assert ferry.proc.poll() is None, "logferry died on ENOSPC"
        assert any("could not be made durable" in l for l in ferry.log), "\n".join(ferry.log[-20:])
        assert committed(ferry.bootstrap) == {0: 5}, "memory claims a commit the disk does not hold"

        os.unlink(filler)
        wait_for(lambda: commit(ferry.bootstrap, 9, "c", 30), 60, "commits acknowledged again once space returns")
        assert committed(ferry.bootstrap) == {0: 9}
        ferry.kill()
        ferry = Ferry([kafka.log_dir], state_dir=tiny_state_dir)
        assert committed(ferry.bootstrap) == {0: 9}, "an acknowledged commit was lost across SIGKILL"
        bad = [l for l in ferry.log if "torn tail" in l or "corrupt" in l]
        assert not bad, bad
    finally:
        ferry.stop()


def open_files(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_topic_deleted_under_readers_goes_away_cleanly(kafka):
    """kafka-topics.sh --delete while logferry serves the topic: the broker renames the folder
    `-delete` (and unlinks it later); logferry stops listing the topic, a consumer of it gets
    the broker's error instead of records, the other topics keep being served byte for byte,
    logferry's open files return to their baseline (nothing held on deleted files), and it lives."""
    from test_security import tool
    from kafka import KafkaConsumer
    doomed, kept = "faults-doomed", "faults-kept"
    clients.produce(kafka.bootstrap, "plain", doomed, 400, seed=72)
    clients.produce(kafka.bootstrap, "plain", kept, 100, seed=73)
    ferry = Ferry([kafka.log_dir])
    try:
        baseline = open_files(ferry.proc.pid)
        want = clients.consume("kcat", kafka.bootstrap, doomed)
        assert clients.consume("kcat", ferry.bootstrap, doomed) == want
        tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", kafka.bootstrap, "--delete", "--topic", doomed])

        def listed():
            c = KafkaConsumer(bootstrap_servers=ferry.bootstrap, request_timeout_ms=10000)
            try:
                return c.topics()
            finally:
                c.close()

        wait_for(lambda: doomed not in listed(), 60, "logferry to stop listing the deleted topic",
                 lambda: "\n".join(ferry.log[-20:]))
        assert kept in listed()
        # A consumer of the deleted topic gets no records (kcat reports the unknown topic and exits).
        r = subprocess.run(["kcat", "-C", "-b", ferry.bootstrap, *clients.kcat_sasl(), "-t", doomed, "-e", "-q",
                            "-o", "beginning", "-m", "10"], capture_output=True, timeout=60)
        assert not r.stdout, r.stdout[:200]
        # The other topic is served as the broker serves it.
        assert clients.consume("kcat", ferry.bootstrap, kept) == clients.consume("kcat", kafka.bootstrap, kept)
        wait_for(lambda: open_files(ferry.proc.pid) <= baseline, 60, "open files back to the baseline",
                 lambda: f"{open_files(ferry.proc.pid)} open, baseline {baseline}: " +
                 " ".join(sorted(os.readlink(f"/proc/{ferry.proc.pid}/fd/{f}")
                                 for f in os.listdir(f"/proc/{ferry.proc.pid}/fd"))))
        assert ferry.proc.poll() is None
        assert not [l for l in ferry.log if "panicked" in l]
    finally:
        ferry.stop()
