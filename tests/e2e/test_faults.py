"""Faults under logferry (issue 17), against the session's real broker.

A topic deleted while logferry serves it, a partition moved between log dirs, the broker
killed mid-produce, a retention storm, a compaction storm, too few descriptors, 10,000 slow senders and a connection
storm at the accept limit (see each test's doc). The state dir full (ENOSPC) during OffsetCommit: logferry's state dir is a tiny tmpfs; a commit
that needs a new page once the file system is full is not acknowledged (logferry closes the
connection instead of answering, with an error line), the commit acknowledged before is still
what OffsetFetch reads, the process lives, and once space returns commits are acknowledged
again and survive a SIGKILL. Needs root to mount the tmpfs (the CI machine runs as root); the
test fails loudly when it cannot.
"""
import contextlib
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


# -- Faults that need a broker of their own: it is killed, restarted and given two log dirs. --

@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A broker of this module's own (small heap), with two log dirs, so the session broker the
    other modules share is never killed or reassigned."""
    import broker
    work = str(tmp_path_factory.mktemp("faults-broker"))
    b = broker.Broker(work, heap="512m")
    second = os.path.join(work, "kafka-logs-2")
    os.makedirs(second, exist_ok=True)
    # The cleaner looks for work every 200 ms (default 15 s) for the compaction storm.
    b.extra = {"log.dirs": f"{b.log_dir},{second}", "log.cleaner.backoff.ms": "200"}
    b.log_dirs = [b.log_dir, second]
    b.start()
    try:
        yield b
    finally:
        b.stop()


def metric(port, name):
    """The value of metric NAME (one sample, no labels) in a scrape of 127.0.0.1:PORT."""
    from test_package import families
    for fam in families(f"127.0.0.1:{port}").values():
        for s in fam.samples:
            if s.name == name:
                return s.value
    raise KeyError(name)


def test_too_few_descriptors_for_1000_partitions_and_200_connections(own):
    """`ulimit -n 256` with 1,000 partitions and 200 connections: logferry says at start which
    limits it lowered to fit 256 descriptors, serves every record of the 1,000 partitions as the
    broker does though their files cannot all be open at once (partitions it cannot open are
    answered without records and fetched again; the metric counts it), holds 144 of the 200
    connections and leaves the rest in the backlog, and serves again once they close."""
    import socket
    import broker
    topic = "faults-wide"
    clients.produce(own.bootstrap, "wide", topic, 3000, seed=74)
    port = broker.free_port()
    ferry = Ferry(own.log_dirs, extra=["--metrics-listen", f"127.0.0.1:{port}"], nofile=256)
    socks = []
    try:
        lowered = [l for l in ferry.log if "open-files limit (RLIMIT_NOFILE) is 256" in l]
        assert lowered and "at most 144 connections" in lowered[0] and "48 open segments" in lowered[0], ferry.log[:5]
        assert metric(port, "logferry_descriptors_max") == 256
        want = clients.consume("kcat", own.bootstrap, topic)
        assert len(want) == 3000
        assert clients.consume("kcat", ferry.bootstrap, topic) == want
        assert metric(port, "logferry_descriptor_exhaustions_total") > 0, "1,000 files fit in 256 descriptors?"
        assert any("out of file descriptors" in l for l in ferry.log)

        # (kcat's connections gone first: accepting resumes only 10% below the cap.)
        wait_for(lambda: metric(port, "logferry_connections") == 0, 30, "kcat's connections to close")
        host, p = ferry.bootstrap.rsplit(":", 1)
        for _ in range(200):
            socks.append(socket.create_connection((host, int(p)), timeout=10))
        wait_for(lambda: metric(port, "logferry_connections") == 144, 30, "144 connections accepted",
                 lambda: str(metric(port, "logferry_connections")))
        time.sleep(1)
        assert metric(port, "logferry_connections") == 144, "more connections than the lowered cap"
        assert any("connections_max (144) reached" in l for l in ferry.log)
        assert ferry.proc.poll() is None
        for s in socks:
            s.close()
        socks = []
        wait_for(lambda: metric(port, "logferry_connections") == 0, 30, "the connections to close")
        assert clients.consume("kcat", ferry.bootstrap, topic) == want, "not served again once load dropped"
        assert ferry.proc.poll() is None
        assert not [l for l in ferry.log if "panicked" in l]
    finally:
        for s in socks:
            s.close()
        ferry.stop()
        from test_security import tool
        tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", own.bootstrap, "--delete", "--topic", topic])


def partition_dir(b, topic, partition):
    """The folder of TOPIC-PARTITION in whichever of broker B's log dirs holds it."""
    for d in b.log_dirs:
        p = os.path.join(d, f"{topic}-{partition}")
        if os.path.isdir(p):
            return p
    raise FileNotFoundError(f"{topic}-{partition} in {b.log_dirs}")


def tear_tail(folder):
    """Appends to the active segment of FOLDER what a crash in the middle of appends can leave:
    a whole batch whose CRC does not match (a copy of the last batch at the next offsets with
    one record byte changed) and then the first 40 bytes of another, and deletes the segment's
    indexes, so the broker's recovery has to truncate the log and rebuild them. Returns the
    size the segment had."""
    import struct
    active = sorted(f for f in os.listdir(folder) if f.endswith(".log"))[-1]
    path = os.path.join(folder, active)
    with open(path, "rb") as f:
        data = f.read()
    pos, last = 0, None
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">i", data, pos + 8)
        if pos + 12 + length > len(data):
            break
        last = (pos, 12 + length)
        pos += 12 + length
    assert last, f"no batch in {path}"
    batch = bytearray(data[last[0]:last[0] + last[1]])
    (base,) = struct.unpack_from(">q", batch, 0)
    (delta,) = struct.unpack_from(">i", batch, 23)
    struct.pack_into(">q", batch, 0, base + delta + 1)
    batch[-1] ^= 0xFF
    torn = bytearray(batch)
    struct.pack_into(">q", torn, 0, base + 2 * (delta + 1))
    with open(path, "ab") as f:
        f.write(bytes(batch) + bytes(torn[:40]))
    for ext in (".index", ".timeindex"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path[:-len(".log")] + ext)
    return len(data)


def test_broker_killed_mid_produce_recovers_under_readers(own, tmp_path):
    """The broker SIGKILLed while a paced producer writes and a group member tails through
    logferry; the crash leaves a torn tail (a whole batch with a bad CRC, then part of a batch)
    and no indexes on one partition; the broker restarts, recovers (truncates the tail, rebuilds
    the indexes, rewrites its checkpoints) and the producer goes on. Nothing the member received
    through logferry is missing from the recovered log, everything acknowledged arrives, a full
    read through logferry is the broker's, and logferry lives."""
    topic, group = "faults-crash", "g-crash"
    clients.produce(own.bootstrap, "grouped", topic, 300, seed=75)
    ferry = Ferry(own.log_dirs, extra=["--visibility", "log-end"])
    member = clients.GroupMember("kcat", ferry.bootstrap, topic, group, str(tmp_path / "member.out"))
    producing = None
    try:
        wait_for(lambda: len(member.lines()) >= 300, 60, "the member to read the first records",
                 member.stderr_tail)
        producing = clients.Producing(own.bootstrap, "grouped", topic, 3000, seed=76)
        wait_for(lambda: len(member.lines()) >= 800, 60, "the member to read records of the paced producer",
                 member.stderr_tail)
        own.kill()
        folder = partition_dir(own, topic, 0)
        tear_tail(folder)
        time.sleep(3)  # logferry sees the torn tail (inotify) while the broker is down
        assert ferry.proc.poll() is None
        own.start()
        acked, _ = producing.result(timeout_s=240)
        producing = None
        want = clients.consume("kcat", own.bootstrap, topic)
        # kcat shows headers as clients.kcat_view does; the producer prints them whole.
        lost = {clients.kcat_view(l) for l in acked} - set(want)
        assert not lost, f"acknowledged but not in the recovered log: {sorted(lost)[:3]}"
        assert len(want) >= 3300
        wait_for(lambda: set(member.lines()) >= set(want), 90, "the member to read everything",
                 lambda: f"{len(set(member.lines()))} of {len(want)}\n{member.stderr_tail()}")
        served_not_held = set(member.lines()) - set(want)
        assert not served_not_held, f"served but not in the recovered log: {sorted(served_not_held)[:5]}"
        assert clients.consume("kcat", ferry.bootstrap, topic) == want
        assert ferry.proc.poll() is None
        assert not [l for l in ferry.log if "panicked" in l]
    finally:
        if producing:
            producing.proc.kill()
        member.stop()
        ferry.stop()
        if own.proc is None:
            own.start()


def deleted_open(pid, dirs):
    """The files under DIRS that process PID holds open and that are no longer in any folder.
    (Only under DIRS: its stdout is the test runner's, which pytest points at an unlinked
    temporary file.)"""
    roots = tuple(os.path.realpath(d).rstrip("/") + "/" for d in dirs)
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.endswith(" (deleted)") and target.startswith(roots):
                out.append(target)
    return out


def test_retention_storm_deletes_segments_under_in_flight_reads(own, tmp_path):
    """A topic that rolls every second and deletes segments three seconds old, written by a
    paced producer while a group member tails it and full reads from the beginning run back to
    back through logferry, so segments are unlinked under responses in flight: every record
    served is one the producer wrote, once the writes stop logferry serves what the broker
    does, and it holds no deleted file open."""
    from test_security import tool
    topic, group = "faults-storm", "g-storm"
    tool("org.apache.kafka.tools.TopicCommand",
         ["--bootstrap-server", own.bootstrap, "--create", "--topic", topic, "--partitions", "6",
          "--config", "segment.ms=1000", "--config", "retention.ms=3000", "--config", "cleanup.policy=delete"])
    ferry = Ferry(own.log_dirs, extra=["--visibility", "log-end"])
    member = clients.GroupMember("kcat", ferry.bootstrap, topic, group, str(tmp_path / "member.out"))
    producing = clients.Producing(own.bootstrap, "grouped", topic, 4000, seed=77)
    try:
        reads, during = [], 0
        # Full reads back to back while the producer runs, and at least three in all: retention
        # goes on deleting segments for seconds after the last write (on a loaded machine the
        # producer may be done after one read).
        while producing.proc.poll() is None or len(reads) < 3:
            running = producing.proc.poll() is None
            reads.append(clients.consume("kcat", ferry.bootstrap, topic, timeout_s=60))
            during += running
        acked, _ = producing.result(timeout_s=60)
        written = {clients.kcat_view(l) for l in acked}
        assert len(written) == 4000
        for n, read in enumerate(reads):
            foreign = set(read) - written
            assert not foreign, f"full read {n} served records never written: {sorted(foreign)[:3]}"
        assert during >= 1 and any(reads), f"{during} full reads started while the producer ran"
        wait_for(lambda: len(set(member.lines())) > 2000, 60, "the member to read along",
                 lambda: f"{len(set(member.lines()))} lines\n{member.stderr_tail()}")
        foreign = set(member.lines()) - written
        assert not foreign, f"the member was served records never written: {sorted(foreign)[:3]}"
        wait_for(lambda: len(clients.consume("kcat", own.bootstrap, topic)) < 4000, 60,
                 "retention to delete segments",
                 lambda: str(sorted(os.listdir(partition_dir(own, topic, 0)))))

        def same():
            # (Retention deletes the active segment too once it is old: the end may be empty.)
            return clients.consume("kcat", ferry.bootstrap, topic) == clients.consume("kcat", own.bootstrap, topic)
        def differ():
            want, got = clients.consume("kcat", own.bootstrap, topic), clients.consume("kcat", ferry.bootstrap, topic)
            return (f"broker {len(want)} logferry {len(got)}; only broker {sorted(set(want) - set(got))[:2]}; "
                    f"only logferry {sorted(set(got) - set(want))[:2]}; {sorted(os.listdir(partition_dir(own, topic, 0)))}")
        wait_for(same, 60, "logferry to serve what the broker holds once retention settles", differ)
        want = clients.consume("kcat", own.bootstrap, topic)
        wait_for(lambda: not deleted_open(ferry.proc.pid, own.log_dirs), 30, "logferry to close the deleted segments",
                 lambda: "\n".join(deleted_open(ferry.proc.pid, own.log_dirs)[:5]))
        assert ferry.proc.poll() is None
        assert not [l for l in ferry.log if "panicked" in l]
        print(f"storm: {len(reads)} full reads ({during} while producing), {len(set(member.lines()))} member lines, "
              f"{len(want)} of 4000 records left")
    finally:
        if producing.proc.poll() is None:
            producing.proc.kill()
        member.stop()
        ferry.stop()
        tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", own.bootstrap, "--delete", "--topic", topic])


def cleaned_to(b, topic):
    """The cleaner's checkpoint offsets of TOPIC's partitions in broker B's log dirs."""
    out = {}
    for d in b.log_dirs:
        path = os.path.join(d, "cleaner-offset-checkpoint")
        if os.path.exists(path):
            for line in open(path).read().splitlines()[2:]:
                t, part, off = line.split()
                if t == topic:
                    out[int(part)] = int(off)
    return out


def test_compaction_storm_swaps_segments_under_in_flight_reads(own, tmp_path):
    """A compacted topic that rolls every second, cleaned as soon as 1% is dirty and whose
    replaced segments are unlinked one second after the swap (`.cleaned` -> `.swap` -> `.log`,
    the old `.log` renamed `.deleted`), written by a paced producer while a group member tails
    it and full reads run back to back through logferry until the cleaner has passed over the
    log several times: every record served is one the producer wrote at that offset, logferry
    then serves what the broker does, and it holds no deleted file open."""
    from test_security import tool
    topic, group = "faults-compact", "g-compact"
    tool("org.apache.kafka.tools.TopicCommand",
         ["--bootstrap-server", own.bootstrap, "--create", "--topic", topic, "--partitions", "3",
          "--config", "cleanup.policy=compact", "--config", "segment.ms=1000",
          "--config", "min.cleanable.dirty.ratio=0.01", "--config", "file.delete.delay.ms=1000",
          "--config", "delete.retention.ms=600000"])
    ferry = Ferry(own.log_dirs, extra=["--visibility", "log-end"])
    member = clients.GroupMember("kcat", ferry.bootstrap, topic, group, str(tmp_path / "member.out"))
    producing = clients.Producing(own.bootstrap, "compacted", topic, 6000, seed=82)
    try:
        reads, passes = [], []
        # Read while the producer runs, then on until the cleaner has moved on three times.
        while producing.proc.poll() is None or len(passes) < 3:
            reads.append(clients.consume("kcat", ferry.bootstrap, topic, timeout_s=60))
            cleaned = cleaned_to(own, topic)
            if cleaned and (not passes or cleaned != passes[-1]):
                passes.append(cleaned)
            assert len(reads) < 200, f"the cleaner did not move on: {passes}"
        acked, _ = producing.result(timeout_s=60)
        written = {clients.kcat_view(l) for l in acked}
        assert len(written) == 6000
        for n, read in enumerate(reads):
            foreign = set(read) - written
            assert not foreign, f"full read {n} served records never written: {sorted(foreign)[:3]}"
        wait_for(lambda: len(set(member.lines())) >= 150, 60, "the member to read along",
                 lambda: f"{len(set(member.lines()))} lines\n{member.stderr_tail()}")
        foreign = set(member.lines()) - written
        assert not foreign, f"the member was served records never written: {sorted(foreign)[:3]}"
        want = clients.consume("kcat", own.bootstrap, topic)
        assert len(want) < 6000, "nothing was compacted away"

        def differ():
            want, got = clients.consume("kcat", own.bootstrap, topic), clients.consume("kcat", ferry.bootstrap, topic)
            return f"broker {len(want)} logferry {len(got)}; {sorted(os.listdir(partition_dir(own, topic, 0)))}"
        wait_for(lambda: clients.consume("kcat", ferry.bootstrap, topic) == clients.consume("kcat", own.bootstrap, topic),
                 60, "logferry to serve what the broker holds once the cleaner settles", differ)
        wait_for(lambda: not deleted_open(ferry.proc.pid, own.log_dirs), 30, "logferry to close the replaced segments",
                 lambda: "\n".join(deleted_open(ferry.proc.pid, own.log_dirs)[:5]))
        assert ferry.proc.poll() is None
        assert not [l for l in ferry.log if "panicked" in l]
        print(f"compaction storm: {len(reads)} full reads over {len(passes)} cleaner passes {passes[-1]}, "
              f"{len(set(member.lines()))} member lines, {len(want)} of 6000 records left")
    finally:
        if producing.proc.poll() is None:
            producing.proc.kill()
        member.stop()
        ferry.stop()
        tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", own.bootstrap, "--delete", "--topic", topic])


def held_open(pid, pred):
    """The targets of the files process PID holds open for which PRED is true."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if pred(target):
                out.append(target)
    return out


def reassign(b, plan_path, *args):
    from test_security import tool
    return tool("org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
                ["--bootstrap-server", b.bootstrap, "--reassignment-json-file", plan_path, *args])


def test_partition_moved_between_log_dirs_under_readers(own, tmp_path):
    """kafka-reassign-partitions.sh moves partition 0 to the broker's other log dir while a
    paced producer writes and a group member and full reads go through logferry: the broker
    copies it into a `-future` folder there (throttled, so the copy takes seconds), then swaps
    it in (renames the old folder `-delete`). Every record served while both copies exist is
    one the producer wrote, logferry then serves the partition from its new dir as the broker
    does (the member reads everything), holds no file of the old folder, and lives."""
    import json
    from test_security import tool
    topic, group = "faults-move", "g-move"
    clients.produce(own.bootstrap, "grouped", topic, 3000, seed=78)
    before = partition_dir(own, topic, 0)
    target = next(d for d in own.log_dirs if not before.startswith(d.rstrip("/") + "/"))
    size = sum(os.path.getsize(os.path.join(before, f)) for f in os.listdir(before) if f.endswith(".log"))
    plan = tmp_path / "move.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": 0, "replicas": [own.node_id], "log_dirs": [os.path.abspath(target)]}]}))
    ferry = Ferry(own.log_dirs)
    member = clients.GroupMember("kcat", ferry.bootstrap, topic, group, str(tmp_path / "member.out"))
    producing = clients.Producing(own.bootstrap, "grouped", topic, 2000, seed=79)
    try:
        wait_for(lambda: len(member.lines()) >= 3000, 60, "the member to read the first records",
                 member.stderr_tail)
        # About eight seconds of copying at the throttle.
        reassign(own, str(plan), "--execute", "--replica-alter-log-dirs-throttle", str(max(size // 8, 10000)))
        reads, futures = [], 0
        def moved():
            names = os.listdir(target)
            return f"{topic}-0" in names and not [f for f in names if f.endswith("-future")]
        deadline = time.monotonic() + 120
        while not moved():
            assert time.monotonic() < deadline, "the move did not complete within 120 s:\n" + \
                reassign(own, str(plan), "--verify")
            futures += any(f.startswith(f"{topic}-0.") and f.endswith("-future") for f in os.listdir(target))
            reads.append(clients.consume("kcat", ferry.bootstrap, topic, timeout_s=60))
        verify = reassign(own, str(plan), "--verify")  # (also removes the throttle)
        assert "still in progress" not in verify and "completed successfully" in verify, verify
        acked, _ = producing.result(timeout_s=240)
        producing = None
        print(f"move: {len(reads)} full reads, {futures} while the -future copy existed", file=sys.stderr)
        assert futures, "no read ran while the -future copy existed (the throttle did not hold the copy)"
        after = partition_dir(own, topic, 0)
        assert after.startswith(os.path.abspath(target).rstrip("/") + "/"), f"{after}: not moved"
        want = clients.consume("kcat", own.bootstrap, topic)
        assert len(want) == 5000
        for n, read in enumerate(reads):
            foreign = set(read) - set(want)
            assert not foreign, f"full read {n} during the move served records the broker does not hold: {sorted(foreign)[:3]}"
            assert len(read) >= 3000, f"full read {n} during the move lost records: {len(read)}"
        wait_for(lambda: clients.consume("kcat", ferry.bootstrap, topic) == want, 60,
                 "logferry to serve the moved partition as the broker does", lambda: "\n".join(ferry.log[-20:]))
        wait_for(lambda: set(member.lines()) >= set(want), 90, "the member to read everything",
                 lambda: f"{len(set(member.lines()))} of {len(want)}\n{member.stderr_tail()}")
        assert not set(member.lines()) - set(want)
        assert {clients.kcat_view(l) for l in acked} <= set(want)
        wait_for(lambda: not held_open(ferry.proc.pid, lambda t: "-delete/" in t or t.endswith(" (deleted)")
                                       and t.startswith(tuple(own.log_dirs))),
                 30, "logferry to close the files of the old folder",
                 lambda: "\n".join(held_open(ferry.proc.pid, lambda t: "-delete" in t)))
        assert ferry.proc.poll() is None
        assert not [l for l in ferry.log if "panicked" in l]
    finally:
        if producing:
            producing.proc.kill()
        member.stop()
        ferry.stop()
        tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", own.bootstrap, "--delete", "--topic", topic])


# -- Floods: slow senders and connection storms (the session broker; logferry is the target). --

def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise KeyError("VmRSS")


def raise_nofile(n):
    """Lets this process (and logferry, which inherits it) hold N descriptors (root may raise the
    hard limit); fails loudly when it cannot."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(n, min(hard, 65536)), max(n, hard)))
        except ValueError as e:
            raise AssertionError(f"cannot raise the open-files limit from {soft}/{hard} to {n}: {e}") from e


class Slowloris:
    """N connections that each declare a 60-byte request and send one byte of it per second
    (never idle, never a whole request), from a thread; counts the ones logferry has closed."""

    def __init__(self, bootstrap, n):
        import socket
        import struct
        import threading
        host, port = bootstrap.rsplit(":", 1)
        self.socks = []
        for _ in range(n):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(struct.pack(">i", 60))
            s.setblocking(False)
            self.socks.append(s)
        self.open = set(range(n))
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self):
        while not self.done.wait(1.0):
            for i in list(self.open):
                s = self.socks[i]
                try:
                    if s.recv(1) == b"":
                        self.open.discard(i)  # logferry closed it
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    self.open.discard(i)
                    continue
                try:
                    s.send(b"\0")
                except OSError:
                    self.open.discard(i)

    def close(self):
        self.done.set()
        self.thread.join(10)
        for s in self.socks:
            s.close()


def test_ten_thousand_slow_senders_are_closed_and_consumers_are_served(kafka):
    """10,000 connections that each send a byte a second (slowloris: never idle, so the idle
    timeout never fires): while they trickle a consumer reads the topic through logferry as the
    broker serves it; each of them is closed once its request has not arrived within
    --request-ms-max (counted in the metric); RSS stays bounded and open files return to
    their baseline."""
    import broker
    raise_nofile(12000)
    topic = "faults-slowloris"
    clients.produce(kafka.bootstrap, "plain", topic, 2000, seed=80)
    want = clients.consume("kcat", kafka.bootstrap, topic)
    assert len(want) == 2000
    port = broker.free_port()
    ferry = Ferry([kafka.log_dir], extra=["--metrics-listen", f"127.0.0.1:{port}", "--request-ms-max", "8000",
                                          "--connections-max", "10100"])
    slow = None
    try:
        pid = ferry.proc.pid
        # (After a read: the topic's segment files stay open in the log model's cache.)
        assert clients.consume("kcat", ferry.bootstrap, topic) == want
        baseline_files, baseline_rss = open_files(pid), rss_bytes(pid)
        t0 = time.monotonic()
        slow = Slowloris(ferry.bootstrap, 10000)
        opened_s = time.monotonic() - t0
        wait_for(lambda: metric(port, "logferry_connections") >= 10000, 30, "10,000 connections accepted",
                 lambda: str(metric(port, "logferry_connections")))
        reads, peak = 0, 0
        while time.monotonic() - t0 < 7 and reads < 3:
            assert clients.consume("kcat", ferry.bootstrap, topic) == want, "a consumer under the slowloris"
            reads += 1
            peak = max(peak, rss_bytes(pid))
        assert reads >= 1
        assert len(slow.open) == 10000, f"only {len(slow.open)} slow senders open before request_ms_max"
        wait_for(lambda: not slow.open, 60, "every slow sender to be closed", lambda: f"{len(slow.open)} open")
        closed_s = time.monotonic() - t0
        assert closed_s >= 8, f"closed before --request-ms-max: {closed_s:.1f} s"
        assert metric(port, "logferry_request_timeouts_total") == 10000
        assert any("did not arrive within request_ms_max 8000 ms" in l for l in ferry.log), ferry.log[-5:]
        peak = max(peak, rss_bytes(pid))
        print(f"slowloris: 10,000 connections opened in {opened_s:.1f} s, all closed {closed_s:.1f} s after the "
              f"first; kcat read {reads} times meanwhile; RSS {baseline_rss >> 20} -> {peak >> 20} MiB")
        assert peak < baseline_rss + (200 << 20), f"RSS peaked at {peak >> 20} MiB"
        wait_for(lambda: open_files(pid) <= baseline_files + 2, 30, "open files back to their baseline",
                 lambda: f"{open_files(pid)} vs {baseline_files}")
        assert clients.consume("kcat", ferry.bootstrap, topic) == want
        assert ferry.proc.poll() is None
        assert not [l for l in ferry.log if "panicked" in l]
    finally:
        if slow:
            slow.close()
        ferry.stop()


def test_connection_storm_at_the_accept_limit(kafka):
    """Four threads open connections 60 at a time, send an ApiVersions request on each and drop
    them (half with a reset), against --connections-max 100, for 15 s: accepting pauses at the
    cap and resumes, a consumer meanwhile reads the topic as the broker serves it, logferry
    lives, and its connections and open files return to their baseline after the storm."""
    import socket
    import struct
    import threading
    import broker
    topic = "faults-accept-storm"
    clients.produce(kafka.bootstrap, "plain", topic, 2000, seed=81)
    want = clients.consume("kcat", kafka.bootstrap, topic)
    port = broker.free_port()
    ferry = Ferry([kafka.log_dir], extra=["--metrics-listen", f"127.0.0.1:{port}", "--connections-max", "100"])
    host, p = ferry.bootstrap.rsplit(":", 1)
    # ApiVersions v0: size, api key 18, version 0, correlation id 1, client id "storm".
    request = struct.pack(">ihhih", 15, 18, 0, 1, 5) + b"storm"
    done = threading.Event()
    opened = [0] * 4
    errors = []

    def storm(k):
        while not done.is_set():
            batch = []
            try:
                for _ in range(60):
                    s = socket.create_connection((host, int(p)), timeout=10)
                    s.sendall(request)
                    batch.append(s)
                    opened[k] += 1
            except OSError as e:
                errors.append(repr(e))
            for j, s in enumerate(batch):
                if j % 2:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()

    try:
        pid = ferry.proc.pid
        assert clients.consume("kcat", ferry.bootstrap, topic) == want
        baseline_files = open_files(pid)
        threads = [threading.Thread(target=storm, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        t0, reads = time.monotonic(), 0
        while time.monotonic() - t0 < 15:
            assert clients.consume("kcat", ferry.bootstrap, topic) == want, "a consumer during the storm"
            reads += 1
        done.set()
        for t in threads:
            t.join(30)
        accepted = metric(port, "logferry_connections_accepted_total")
        print(f"storm: {sum(opened)} connections opened, {accepted:.0f} accepted, kcat read {reads} times; "
              f"connect errors {len(errors)}")
        assert sum(opened) > 2000 and accepted > 2000, (opened, accepted)
        assert len(errors) < sum(opened) // 100, errors[:5]
        assert any("connections_max (100) reached" in l for l in ferry.log), "the storm never reached the cap"
        wait_for(lambda: metric(port, "logferry_connections") == 0, 30, "the storm's connections to close",
                 lambda: str(metric(port, "logferry_connections")))
        wait_for(lambda: open_files(pid) <= baseline_files + 2, 30, "open files back to their baseline",
                 lambda: f"{open_files(pid)} vs {baseline_files}")
        assert clients.consume("kcat", ferry.bootstrap, topic) == want
        assert ferry.proc.poll() is None
        assert not [l for l in ferry.log if "panicked" in l]
    finally:
        done.set()
        ferry.stop()
