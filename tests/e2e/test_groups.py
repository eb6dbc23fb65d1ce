"""logferry as the group coordinator of real consumer groups, with the real broker writing.

Members of one group subscribe through logferry to a 6-partition topic while the broker's Java
producer keeps writing to it; they split the partitions and commit. Then one member is killed
with SIGKILL (no LeaveGroup): the others must take over its partitions after its session times
out. Then logferry itself is killed with SIGKILL and restarted on the same port and state dir:
acknowledged commits must still be there and the group must resume from them (not from the
beginning). Across the run every produced record is consumed at least once and no consumed
record is one that was not produced.

Run 1: the Java consumer, franz-go and kcat -G together (cooperative-sticky assignor).
Run 2: three kafka-python members (its default eager range/roundrobin assignors).
"""
import os
import threading
import time

import pytest

import broker
import clients
from ferry import Ferry
from kafka import KafkaAdminClient, OffsetAndMetadata, TopicPartition

TOPIC = "grouped"
PARTITIONS = 6
ROUND = 600


class Produced:
    """Every record the broker acknowledged on TOPIC, across the test module."""

    def __init__(self, bootstrap):
        self.bootstrap = bootstrap
        self.lines = set()
        self.seed = 100

    def round(self, n=ROUND):
        self.seed += 1
        committed, _ = clients.produce(self.bootstrap, "grouped", TOPIC, n, seed=self.seed)
        self.lines.update(committed)

    def in_background(self, n=ROUND):
        t = threading.Thread(target=self.round, args=(n,), daemon=True)
        t.start()
        return t


@pytest.fixture(scope="module")
def produced(kafka):
    p = Produced(kafka.bootstrap)
    p.round(60)  # creates the topic
    return p


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)


def committed_offsets(bootstrap, group):
    a = admin(bootstrap)
    try:
        got = a.list_group_offsets(group)
        offs = got[group] if group in got else got
        return {tp.partition: om.offset for tp, om in offs.items() if tp.topic == TOPIC}
    finally:
        a.close()


def describe(bootstrap, group):
    a = admin(bootstrap)
    try:
        return a.describe_groups([group])[group]
    finally:
        a.close()


def wait_for(pred, timeout_s, what, detail=lambda: ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{detail()}")


def covered(members, produced_lines):
    """(missing, invented): produced records nobody consumed, consumed records never produced."""
    plain, kcat = set(), set()
    for m in members:
        (kcat if m.client == "kcat" else plain).update(m.lines())
    missing = [l for l in produced_lines if l not in plain and clients.kcat_view(l) not in kcat]
    kcat_produced = {clients.kcat_view(l) for l in produced_lines}
    invented = [l for l in plain if l not in produced_lines] + [l for l in kcat if l not in kcat_produced]
    return missing, invented


def offset_of(line):
    _, partition, offset, _ = line.split(" ", 3)
    return int(partition), int(offset)


def run_group_scenario(kafka, produced, tmp_path, member_clients, group):
    port = broker.free_port()
    state = str(tmp_path / "state")
    ferry = Ferry([kafka.log_dir], listen=f"127.0.0.1:{port}", state_dir=state)
    members = []
    try:
        writer = produced.in_background()
        for i, c in enumerate(member_clients):
            members.append(clients.GroupMember(c, ferry.bootstrap, TOPIC, group, str(tmp_path / f"{i}-{c}.out")))

        def detail():
            return "\n".join(f"--- {m.client} alive={m.alive()}\n{m.stderr_tail()}" for m in members) + \
                "\n--- logferry\n" + "\n".join(ferry.log[-30:])

        # 1. All members join one generation and split the partitions.
        wait_for(lambda: (lambda d: d["group_state"] == "Stable" and len(d["members"]) == len(members))(
            describe(ferry.bootstrap, group)), 120, "a stable group of every member", detail)
        writer.join(120)
        wait_for(lambda: not covered(members, produced.lines)[0], 120, "round 1 consumed", detail)
        for m in members:
            assert m.lines(), f"{m.client} got no partitions: the group did not split the topic"
        owners = {}
        for m in members:
            for line in m.lines():
                owners.setdefault(offset_of(line)[0], set()).add(m.client if m.client != "kafka-python" else id(m))
        assert sorted(owners) == list(range(PARTITIONS))

        # 2. SIGKILL one member: after its session times out the others take its partitions.
        victim = members[0]
        victim.kill()
        before_kill = len(produced.lines)
        produced.round()
        survivors = members[1:]
        wait_for(lambda: not covered(members, produced.lines)[0], 120, "round 2 consumed", detail)
        missing, _ = covered(members, produced.lines)
        assert not missing, f"{len(missing)} records of round 2 not consumed after a member died"
        d = describe(ferry.bootstrap, group)
        assert len(d["members"]) == len(survivors), d
        assert len(produced.lines) > before_kill

        # 3. Commits are acknowledged, then logferry is SIGKILLed and restarted on the same
        # port and state dir. Nothing acknowledged is lost; the group resumes from there.
        wait_for(lambda: len(committed_offsets(ferry.bootstrap, group)) == PARTITIONS, 60,
                 "commits for every partition", detail)
        acked = committed_offsets(ferry.bootstrap, group)
        ferry.kill()
        marks = [len(m.lines()) for m in members]
        ferry = Ferry([kafka.log_dir], listen=f"127.0.0.1:{port}", state_dir=state)
        after = committed_offsets(ferry.bootstrap, group)
        for p, off in acked.items():
            assert after.get(p, -1) >= off, f"partition {p}: committed {off} before SIGKILL, {after.get(p)} after"
        produced.round()

        def revive():
            # kcat exits by design when all its broker connections are down ("terminating"),
            # which a SIGKILLed logferry causes; a supervisor would start it again, so does this.
            for m in survivors:
                if not m.alive() and m.client == "kcat" and m.restarts < 3:
                    m.restart()
            return True

        wait_for(lambda: revive() and not covered(members, produced.lines)[0], 180,
                 "round 3 consumed after the restart", detail)
        for m, mark in zip(members, marks):
            for line in m.lines()[mark:]:
                p, off = offset_of(line)
                assert off >= acked[p], (
                    f"{m.client} re-read partition {p} from {off}, below the committed {acked[p]}: "
                    "the group did not resume from its committed offsets")
        wait_for(lambda: revive() and (lambda d: d["group_state"] == "Stable" and len(d["members"]) == len(survivors))(
            describe(ferry.bootstrap, group)), 60, "the group to be stable again after the restart", detail)
        assert all(m.alive() for m in survivors), detail()
    finally:
        for m in members:
            m.stop()
        ferry.stop()
    missing, invented = covered(members, produced.lines)
    assert not missing, f"{len(missing)} produced records never consumed, e.g. {missing[:3]}"
    assert not invented, f"{len(invented)} consumed records were never produced, e.g. {invented[:3]}"
    bad = [l for l in ferry.warnings() if "WARN" in l and "closing" in l and "protocol" in l]
    assert not bad, "\n".join(bad[-10:])
    return ferry


def test_java_franz_go_and_kcat_in_one_group(kafka, produced, tmp_path):
    run_group_scenario(kafka, produced, tmp_path, ["java", "franz-go", "kcat"], "mixed-group")


def test_kafka_python_group(kafka, produced, tmp_path):
    run_group_scenario(kafka, produced, tmp_path, ["kafka-python"] * 3, "python-group")


def test_offsets_are_only_in_the_state_dir(kafka, tmp_path):
    """logferry writes nothing into the broker's log dir; its offsets file is in --state-dir."""
    state = tmp_path / "state"
    ferry = Ferry([kafka.log_dir], state_dir=str(state))
    try:
        a = admin(ferry.bootstrap)
        a.alter_group_offsets("simple-group", {TopicPartition("plain", 0): OffsetAndMetadata(3, "note", -1)})
        got = a.list_group_offsets("simple-group")
        a.close()
        offs = got.get("simple-group", got)
        assert {(tp.topic, tp.partition): (om.offset, om.metadata) for tp, om in offs.items()} == {("plain", 0): (3, "note")}
    finally:
        ferry.stop()
    assert os.path.getsize(state / "offsets.log") > 8
    assert not [f for f in os.listdir(kafka.log_dir) if "offsets.log" in f or f == "lock"]


def consumer_groups(bootstrap, *args):
    from test_security import tool
    return tool("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", ["--bootstrap-server", bootstrap, *args])


def table(out):
    """The rows of a kafka-consumer-groups.sh table as dicts by column header."""
    rows, header = [], None
    for line in out.splitlines():
        cells = line.split()
        if not cells:
            continue
        if cells[0] == "GROUP":
            header = cells
        elif header and len(cells) == len(header):
            rows.append(dict(zip(header, cells)))
    return rows


def group_view(bootstrap, group):
    """(state, assignor, sorted partition counts of the members), as kafka-consumer-groups.sh
    prints them (ConsumerGroupDescribe first, as the Kafka 4 admin client does)."""
    state = table(consumer_groups(bootstrap, "--describe", "--group", group, "--state"))
    members = table(consumer_groups(bootstrap, "--describe", "--group", group, "--members"))
    if not state:
        return None, None, []
    return state[0]["STATE"], state[0]["ASSIGNMENT-STRATEGY"], sorted(int(m["#PARTITIONS"]) for m in members)


def ends_of(lines):
    ends = {}
    for l in lines:
        p, off = offset_of(l)
        ends[p] = max(ends.get(p, 0), off + 1)
    return ends


def test_kip848_members_split_commit_resume_and_replace_a_dead_one(kafka, produced, tmp_path):
    """KIP-848 (group.protocol=consumer) against logferry's own coordinator: two Java members
    split the topic (the server's uniform assignor, revocation before assignment) and commit;
    after both leave, a franz-go member (ServerSideBalancer) resumes from the commits; a Java
    member joins it and, when the franz-go member is SIGKILLed, takes all partitions once its
    session (6 s here) times out. Every produced record is consumed, none invented."""
    ferry = Ferry([kafka.log_dir], extra=["--group-consumer-session-timeout-ms", "6000",
                                          "--group-consumer-heartbeat-interval-ms", "500"])
    group = "g-kip848"
    members = []

    def member(client):
        m = clients.GroupMember(client, ferry.bootstrap, TOPIC, group, str(tmp_path / f"{len(members)}-{client}.out"))
        members.append(m)
        return m

    def detail():
        return "\n".join(f"--- {m.client} alive={m.alive()}\n{m.stderr_tail()}" for m in members) + \
            "\n--- logferry\n" + "\n".join(ferry.log[-30:])

    def settled(counts):
        def check():
            state, assignor, got = group_view(ferry.bootstrap, group)
            return state == "Stable" and assignor == "uniform" and got == counts
        return check

    try:
        writer = produced.in_background()
        a, b = member("java-848"), member("java-848")
        wait_for(settled([3, 3]), 120, "two consumer-protocol members with 3 partitions each", detail)
        writer.join(120)
        wait_for(lambda: not covered(members, produced.lines)[0], 120, "round 1 consumed", detail)
        assert a.lines() and b.lines(), "both members consumed"
        ends = ends_of(produced.lines)
        wait_for(lambda: all(committed_offsets(ferry.bootstrap, group).get(p, -1) >= e for p, e in ends.items()), 60,
                 "commits up to the end of round 1", detail)
        a.stop()
        b.stop()
        acked = committed_offsets(ferry.bootstrap, group)

        # A third member resumes from the commits.
        produced.round()
        c = member("franz-go-848")
        wait_for(lambda: not covered(members, produced.lines)[0], 120, "round 2 consumed by the third member", detail)
        for line in c.lines():
            p, off = offset_of(line)
            assert off >= acked[p], f"partition {p} re-read from {off}, below the committed {acked[p]}"
        wait_for(settled([6]), 60, "the franz-go member alone with 6 partitions", detail)

        # A fourth joins; the third is SIGKILLed and replaced after its session times out.
        d = member("java-848")
        wait_for(settled([3, 3]), 120, "franz-go and Java sharing the topic", detail)
        c.kill()
        killed = time.monotonic()
        produced.round()
        wait_for(settled([6]), 60, "the Java member to take over the dead member's partitions", detail)
        assert time.monotonic() - killed >= 5, "partitions moved before the dead member's session ended"
        wait_for(lambda: not covered(members, produced.lines)[0], 120, "round 3 consumed", detail)
        assert d.lines()
    finally:
        for m in members:
            m.stop()
        ferry.stop()
    missing, invented = covered(members, produced.lines)
    assert not missing, f"{len(missing)} produced records never consumed, e.g. {missing[:3]}"
    assert not invented, f"{len(invented)} consumed records were never produced, e.g. {invented[:3]}"
    bad = [l for l in ferry.warnings() if "WARN" in l and "closing" in l]
    assert not bad, "\n".join(bad[-10:])
