"""Faults under logferry (issue 17), against the session's real broker.

The state dir full (ENOSPC) during OffsetCommit: logferry's state dir is a tiny tmpfs; a commit
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
    from kafka import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        got = a.list_group_offsets(GROUP)
        offs = got[GROUP] if GROUP in got else got
        return {tp.partition: om.offset for tp, om in offs.items() if tp.topic == TOPIC}
    finally:
        a.close()


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
