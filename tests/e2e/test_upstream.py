"""logferry beside a live broker with `--upstream`: visibility follows the broker's high
watermark in real time instead of its checkpoint file.

The module's broker checkpoints its high watermarks only every 10 minutes, so anything a
consumer receives through logferry within seconds of being produced came from the upstream
watch, not from `replication-offset-checkpoint`. Also: the broker stopped and restarted under
logferry, and a broker of another cluster refused at start.
"""
import subprocess
import urllib.request

import pytest

import broker
import clients
from conftest import wait_for
from ferry import BIN, Ferry


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    b = broker.Broker(str(tmp_path_factory.mktemp("kafka-upstream")),
                      extra={"replica.high.watermark.checkpoint.interval.ms": "600000"}).start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def ferry(cluster):
    port = broker.free_port()
    f = Ferry([cluster.log_dir], extra=["--upstream", cluster.bootstrap, "--metrics-listen", f"127.0.0.1:{port}"])
    f.metrics = f"127.0.0.1:{port}"
    yield f
    f.stop()


def metric(ferry, name):
    with urllib.request.urlopen(f"http://{ferry.metrics}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(f"logferry_{name} ") or line.startswith(f"logferry_{name}_total "):
                return float(line.split()[-1])
    raise KeyError(name)


def same_end_offsets(cluster, ferry, topic, timeout_s):
    want = clients.end_offsets(cluster.bootstrap, topic)
    wait_for(lambda: clients.end_offsets(ferry.bootstrap, topic) == want, timeout_s,
             f"logferry's end offsets of {topic} to reach the broker's {want}")


def test_visibility_is_upstream_and_the_checkpoint_would_not_do(cluster, ferry):
    assert any("visibility upstream" in l for l in ferry.log), ferry.log[-5:]
    clients.produce(cluster.bootstrap, "plain", "up-probe", 30, seed=3)
    # Nothing is in the checkpoint yet (10 min interval), yet logferry shows the records.
    same_end_offsets(cluster, ferry, "up-probe", 20)
    assert metric(ferry, "upstream_connected") == 1


@pytest.mark.parametrize("client", clients.CLIENTS)
def test_tailing_consumers_see_records_at_once(cluster, ferry, client):
    topic = "up-tail-" + client
    clients.produce(cluster.bootstrap, "plain", topic, 10, seed=7)
    same_end_offsets(cluster, ferry, topic, 20)
    n = 300
    t = clients.Tailing(client, ferry.bootstrap, topic, partitions=3, count=n, timeout_s=60)
    t.wait_ready()
    produced, _ = clients.produce(cluster.bootstrap, "plain", topic, n, seed=8)
    assert t.result() == clients.expected_for(client, produced)


@pytest.fixture(scope="module")
def same_topic(cluster, ferry):
    clients.produce(cluster.bootstrap, "zstd", "up-same", 500, seed=11)
    same_end_offsets(cluster, ferry, "up-same", 20)
    return "up-same"


@pytest.mark.parametrize("client", clients.CLIENTS)
def test_same_records_as_the_broker(cluster, ferry, same_topic, client):
    assert clients.consume(client, ferry.bootstrap, "up-same") == clients.consume(client, cluster.bootstrap, "up-same")


def describe(bootstrap, group):
    """The group's description, or None while its coordinator is not available yet (a new
    cluster creates __consumer_offsets on the first lookup)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        return a.describe_groups([group])[group]
    except KafkaError:
        return None
    finally:
        a.close()


def assigned_partitions(member):
    """How many partitions a described member is assigned (its decoded consumer assignment)."""
    def count(x):
        if isinstance(x, dict):
            return sum(len(v) if k == "partitions" and isinstance(v, list) else count(v) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return sum(count(v) for v in x)
        return 0
    return count(member.get("member_assignment"))


def stable_with(bootstrap, group, n, partitions):
    """The group is Stable with `n` members that share all `partitions`, each some of them (a
    kafka-python leader that joined before its metadata arrived assigns nothing at first, then
    rebalances)."""
    d = describe(bootstrap, group)
    if d is None or d["group_state"] != "Stable" or len(d["members"]) != n:
        return False
    counts = [assigned_partitions(m) for m in d["members"]]
    return all(c > 0 for c in counts) and sum(counts) == partitions


def committed(bootstrap, group, topic):
    from kafka import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        got = a.list_group_offsets(group)
        offs = got[group] if group in got else got
        return {tp.partition: om.offset for tp, om in offs.items() if tp.topic == topic}
    finally:
        a.close()


def seen(members):
    """Every record the members printed, in the broker-independent (partition, offset) form."""
    out = set()
    for m in members:
        for line in m.lines():
            _, partition, offset, _ = line.split(" ", 3)
            out.add((int(partition), int(offset)))
    return out


@pytest.mark.parametrize("on_broker,through_ferry", [
    ("java", ["franz-go", "kcat"]),
    ("kafka-python", ["kafka-python"]),
])
def test_one_group_across_the_broker_and_logferry(cluster, ferry, tmp_path, on_broker, through_ferry):
    """One member on the broker, the others through logferry: the cluster's coordinator runs one
    generation of all of them, they split the partitions, their commits are the cluster's, and a
    member that moves from the broker to logferry resumes at the committed offsets."""
    topic, group = f"up-grouped-{on_broker}", f"up-group-{on_broker}"
    clients.produce(cluster.bootstrap, "grouped", topic, 12, seed=21)  # creates it
    members = [clients.GroupMember(on_broker, cluster.bootstrap, topic, group, str(tmp_path / "broker.out"))]
    members += [clients.GroupMember(c, ferry.bootstrap, topic, group, str(tmp_path / f"{i}-{c}.out"))
                for i, c in enumerate(through_ferry)]
    try:
        def detail():
            return "\n".join(f"--- {m.client} alive={m.alive()}\n{m.stderr_tail()}" for m in members) + \
                "\n--- logferry warnings\n" + "\n".join(ferry.warnings()[-20:])

        wait_for(lambda: stable_with(cluster.bootstrap, group, len(members), 6), 120,
                 "one stable generation of every member (on the broker)")
        # The same group, seen through logferry (relayed): the very same members.
        assert len(describe(ferry.bootstrap, group)["members"]) == len(members)
        first = clients.end_offsets(cluster.bootstrap, topic)
        clients.produce(cluster.bootstrap, "grouped", topic, 300, seed=22)
        ends = clients.end_offsets(cluster.bootstrap, topic)
        everything = {(p, o) for p, end in ends.items() for o in range(end)}
        wait_for(lambda: seen(members) >= everything, 120, "every record consumed by the group", detail)
        # In the stable generation the partitions are split: of the records produced after it
        # formed, every member consumed some, from partitions no other member read.
        owners = {}
        for m in members:
            got = {p for (p, o) in seen([m]) if o >= first.get(p, 0)}
            assert got, (m.client, detail())
            for p in got:
                assert owners.setdefault(p, m.client) == m.client, (p, owners[p], m.client)
    finally:
        for m in members:
            m.stop()
    # Commits made through logferry are the cluster's: the broker reports them.
    wait_for(lambda: committed(cluster.bootstrap, group, topic) == ends, 30, "the group's offsets at the end on the broker")
    # The broker-side member moves to logferry: it resumes at the committed offsets.
    more, _ = clients.produce(cluster.bootstrap, "grouped", topic, 30, seed=23)
    same_end_offsets(cluster, ferry, topic, 20)
    moved = clients.GroupMember(on_broker, ferry.bootstrap, topic, group, str(tmp_path / "moved.out"))
    try:
        new = {(int(l.split()[1]), int(l.split()[2])) for l in more}
        wait_for(lambda: stable_with(cluster.bootstrap, group, 1, 6), 120, "the moved member to own every partition",
                 lambda: moved.stderr_tail() + "\n--- logferry warnings\n" + "\n".join(ferry.warnings()[-20:]))
        wait_for(lambda: seen([moved]) >= new, 120, "the moved member to read the new records",
                 lambda: moved.stderr_tail() + "\n--- logferry warnings\n" + "\n".join(ferry.warnings()[-20:]))
        assert seen([moved]) == new, "it resumed at the committed offsets, not from the beginning"
    finally:
        moved.stop()


def test_a_kip848_group_is_the_clusters(cluster, ferry, tmp_path):
    """group.protocol=consumer with --groups upstream: ConsumerGroupHeartbeat and
    ConsumerGroupDescribe are relayed, so one Java member on the broker and a Java and a franz-go
    member through logferry are one KIP-848 group of the cluster's coordinator; kafka-consumer-groups.sh
    shows the same group through either; the commits are the cluster's."""
    from test_groups import group_view
    topic, group = "up-grouped-848", "up-group-848"
    clients.produce(cluster.bootstrap, "grouped", topic, 12, seed=31)  # creates it
    members = [clients.GroupMember("java-848", cluster.bootstrap, topic, group, str(tmp_path / "broker.out"))]
    members += [clients.GroupMember(c, ferry.bootstrap, topic, group, str(tmp_path / f"{i}-{c}.out"))
                for i, c in enumerate(["java-848", "franz-go-848"])]
    try:
        def detail():
            return "\n".join(f"--- {m.client} alive={m.alive()}\n{m.stderr_tail()}" for m in members) + \
                "\n--- logferry warnings\n" + "\n".join(ferry.warnings()[-20:])

        want = ("Stable", "uniform", [2, 2, 2])
        wait_for(lambda: group_view(cluster.bootstrap, group) == want, 120, "one KIP-848 group of 3 members", detail)
        assert group_view(ferry.bootstrap, group) == want, "the same group through logferry"
        clients.produce(cluster.bootstrap, "grouped", topic, 300, seed=32)
        ends = clients.end_offsets(cluster.bootstrap, topic)
        everything = {(p, o) for p, end in ends.items() for o in range(end)}
        wait_for(lambda: seen(members) >= everything, 120, "every record consumed by the group", detail)
        assert all(m.lines() for m in members), detail()
        wait_for(lambda: committed(cluster.bootstrap, group, topic) == ends, 60, "the group's offsets on the broker",
                 detail)
    finally:
        for m in members:
            m.stop()


def test_broker_stopped_and_restarted_under_logferry(cluster, ferry):
    clients.produce(cluster.bootstrap, "plain", "up-restart", 50, seed=5)
    same_end_offsets(cluster, ferry, "up-restart", 20)
    before = clients.consume("kafka-python", ferry.bootstrap, "up-restart")
    fallbacks = metric(ferry, "upstream_fallbacks")
    cluster.stop()
    try:
        wait_for(lambda: metric(ferry, "upstream_connected") == 0, 20, "logferry to notice the broker is gone")
        # What was visible stays visible while the broker is down.
        assert clients.consume("kafka-python", ferry.bootstrap, "up-restart") == before
        assert metric(ferry, "upstream_fallbacks") == fallbacks + 1
        assert ferry.proc.poll() is None
    finally:
        cluster.start()
    wait_for(lambda: metric(ferry, "upstream_connected") == 1, 30, "logferry to watch the broker again")
    clients.produce(cluster.bootstrap, "plain", "up-restart", 20, seed=6)
    same_end_offsets(cluster, ferry, "up-restart", 20)
    assert len(clients.consume("kafka-python", ferry.bootstrap, "up-restart")) == len(before) + 20
    downs = [l for l in ferry.warnings() if "upstream" in l]
    assert len(downs) == 1, "the outage is logged once:\n" + "\n".join(downs)


def test_a_broker_of_another_cluster_is_refused(cluster, tmp_path):
    logdir = tmp_path / "other-cluster"
    logdir.mkdir()
    (logdir / "meta.properties").write_text("version=1\nnode.id=1\ncluster.id=AnotherClusterIdAAAAAA\n")
    r = subprocess.run([BIN, "serve", "--log-dir", str(logdir), "--listen", "127.0.0.1:0",
                        "--state-dir", str(tmp_path / "state"), "--upstream", cluster.bootstrap],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "AnotherClusterIdAAAAAA" in r.stderr and broker.CLUSTER_ID in r.stderr, r.stderr
