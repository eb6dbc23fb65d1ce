"""The fleet: a real 3-node Kafka 4.4 cluster (KRaft, replication factor 2, so no broker holds
every partition) with one logferry beside each broker, each following its broker's metadata log.
Consumers of every stack bootstrap from ONE logferry and must read every partition of every topic
exactly as they read it from the brokers; topics created and deleted on the cluster show up in
logferry's Metadata within a second; a broker SIGKILLed mid-read moves its leaders and the fleet
follows; a partition reassigned to another broker under readers is followed too. The cluster and the fleet are started once for the module."""
import os
import socket
import struct
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))
import broker  # noqa: E402
import clients  # noqa: E402
import cluster as kcluster  # noqa: E402
from cluster import Fleet  # noqa: E402
from conftest import wait_for  # noqa: E402
from test_upstream import metric, stable_with  # noqa: E402

CLIENTS = ["kcat", "java", "franz-go", "kafka-python"]
# topic -> (workload, records, replica assignment): every broker lacks some partition.
TOPICS = {
    "fleet-plain": ("plain", 3000, [[1, 2], [2, 3], [3, 1]]),
    "fleet-txn": ("txn", 400, [[2, 1], [3, 2], [1, 3]]),
    "fleet-grouped": ("grouped", 1800, [[1, 2], [2, 3], [3, 1], [1, 3], [2, 1], [3, 2]]),
    # Led by broker 1, in sync on 2: for fetching from the closest replica (KIP-392).
    "fleet-rack": ("plain", 600, [[1, 2], [1, 2], [1, 2]]),
}


def metadata(bootstrap, timeout_s=5):
    """A raw Metadata v1 request for all topics: ({node: (host, port)}, {topic: {partition:
    (error, leader)}}). No client library in between, so nothing is cached."""
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout_s) as s:
        body = struct.pack(">hhih", 3, 1, 7, 4) + b"test" + struct.pack(">i", -1)
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv(s, 4))[0]
        b = memoryview(_recv(s, size))
    at = 4  # correlation id

    def i32():
        nonlocal at
        v = struct.unpack_from(">i", b, at)[0]
        at += 4
        return v

    def i16():
        nonlocal at
        v = struct.unpack_from(">h", b, at)[0]
        at += 2
        return v

    def string():
        nonlocal at
        n = i16()
        if n < 0:
            return None
        v = bytes(b[at:at + n]).decode()
        at += n
        return v

    nodes = {}
    for _ in range(i32()):
        node, h, p, _rack = i32(), string(), i32(), string()
        nodes[node] = (h, p)
    i32()  # controller
    topics = {}
    for _ in range(i32()):
        _err, name = i16(), string()
        at += 1  # is_internal
        parts = {}
        for _ in range(i32()):
            perr, index, leader = i16(), i32(), i32()
            for _ in range(2):  # replicas, isr
                for _ in range(i32()):
                    i32()
            parts[index] = (perr, leader)
        topics[name] = parts
    return nodes, topics


def _recv(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("fleet"))
    c = kcluster.Cluster(tmp)
    for n in c.nodes:
        n.extra["broker.rack"] = f"rack{n.node_id}"
    c.start()
    f = None
    try:
        committed, written = {}, {}
        for i, (topic, (workload, count, assignment)) in enumerate(TOPICS.items()):
            c.create_topic(topic, assignment, {"segment.bytes": str(1024 * 1024)})
            committed[topic], aborted = clients.produce(c.bootstrap, workload, topic, count, seed=40 + i)
            written[topic] = sorted(committed[topic] + aborted)
        # The cluster creates __consumer_offsets on a group's first FindCoordinator; logferry
        # cannot create topics, so one group consumer against the brokers makes it exist.
        from kafka import KafkaConsumer
        k = KafkaConsumer("fleet-plain", bootstrap_servers=c.bootstrap, group_id="fleet-init",
                          auto_offset_reset="earliest", consumer_timeout_ms=3000)
        list(k)
        k.commit()
        k.close()
        f = Fleet(c, tmp)
        f.committed = committed
        f.written = written  # what read_uncommitted sees: aborted transactions too
        yield f
    finally:
        if f is not None:
            f.stop()
        c.stop()


def wait_same_end_offsets(fleet, topic, via, timeout_s=30):
    want = clients.end_offsets(fleet.cluster.bootstrap, topic)
    wait_for(lambda: clients.end_offsets(via, topic) == want, timeout_s,
             f"logferry's end offsets of {topic} to match the cluster's {want}",
             lambda: str(clients.end_offsets(via, topic)))


def test_metadata_shows_the_whole_cluster_from_every_instance(fleet):
    answers = [metadata(fleet.bootstrap(n)) for n in (1, 2, 3)]
    nodes, topics = answers[0]
    assert nodes == {n: ("127.0.0.1", p) for n, p in fleet.ports.items()}, "the brokers are the fleet's instances"
    for topic, (_, _, assignment) in TOPICS.items():
        assert sorted(topics[topic]) == list(range(len(assignment))), f"{topic}: every partition"
        for p, (err, leader) in topics[topic].items():
            assert err == 0 and leader in assignment[p], (topic, p, err, leader)
    for other in answers[1:]:
        assert other == answers[0], "every instance gives the same answer"
    # The image is held below the metadata quorum's high watermark, learned from the broker.
    for n in (1, 2, 3):
        wait_for(lambda: metric(fleet.ferries[n], "metadata_commit_bound") > 0, 10,
                 f"node {n}'s logferry to learn the metadata quorum's high watermark")
        assert metric(fleet.ferries[n], "metadata_offset") <= metric(fleet.ferries[n], "metadata_commit_bound")
    # Each instance holds only some partitions: those it lacks are still listed.
    local = {d for d in os.listdir(fleet.cluster.node(1).log_dir) if d.startswith("fleet-plain-")}
    assert len(local) == 2 and len(topics["fleet-plain"]) == 3


@pytest.mark.parametrize("client", CLIENTS)
def test_every_partition_read_through_one_instance(fleet, client):
    via = fleet.bootstrap(1)
    for topic in TOPICS:
        wait_same_end_offsets(fleet, topic, via)
        for isolation, want in (("read_uncommitted", fleet.written), ("read_committed", fleet.committed)):
            if isolation == "read_committed" and topic != "fleet-txn":
                continue
            got = clients.consume(client, via, topic, isolation=isolation)
            # One broker address: the franz-go harness program takes a single seed.
            from_brokers = clients.consume(client, fleet.cluster.node(1).bootstrap, topic, isolation=isolation)
            assert got == from_brokers, f"{client} {topic} {isolation}: logferry and the brokers differ"
            assert got == clients.expected_for(client, want[topic]), f"{client} {topic} {isolation}"


def test_a_group_through_one_instance_shares_every_partition(fleet, tmp_path):
    topic = "fleet-grouped"
    via = fleet.bootstrap(2)
    members = [clients.GroupMember(c, via, topic, "fleet-group", str(tmp_path / f"{c}.out"))
               for c in ("java", "franz-go", "kcat")]  # one assignor in common: cooperative-sticky
    # kcat prints what it can show of a record (clients.kcat_view); the others the whole line.
    want = set(clients.expected_for("java", fleet.written[topic]))
    try:
        def seen():
            # kcat's lines mapped back to the full lines they stand for.
            back = {clients.kcat_view(l): l for l in fleet.written[topic]}
            out = set()
            for m in members:
                out |= {back.get(l, l) for l in m.lines()} if m.client == "kcat" else set(m.lines())
            return out

        def detail():
            return "\n".join(f"{m.client}: {len(m.lines())} lines, alive {m.alive()}\n{m.stderr_tail()}"
                              for m in members)
        # One generation of all three members sharing the 6 partitions, coordinated by the
        # instance that leads the group's __consumer_offsets partition, asked through another.
        wait_for(lambda: stable_with(via, "fleet-group", 3, 6), 120, "a stable group of 3 sharing 6 partitions",
                 detail)
        wait_for(lambda: want <= seen(), 120, "the group to consume every record of every partition", detail)
        assert seen() == want, "nothing invented"
    finally:
        for m in members:
            m.stop()


def fetches(ferry):
    import urllib.request
    with urllib.request.urlopen(f"http://{ferry.metrics}/metrics", timeout=10) as r:
        return sum(float(l.split()[-1]) for l in r.read().decode().splitlines()
                   if l.startswith("logferry_requests_total{") and 'api="Fetch"' in l)


def test_a_consumer_in_another_rack_is_sent_to_its_rack_replica(fleet):
    """KIP-392: kcat with client.rack=rack2 bootstraps from node 1's logferry; the partitions are
    led by broker 1 and in sync on broker 2, so node 1's logferry names node 2 as the preferred
    read replica and the records come from node 2's logferry, the same records."""
    topic = "fleet-rack"
    via = fleet.bootstrap(1)
    wait_same_end_offsets(fleet, topic, via)
    wait_same_end_offsets(fleet, topic, fleet.bootstrap(2))
    before = fetches(fleet.ferries[2])
    out = clients._run("kcat", ["kcat", "-C", "-b", via, "-t", topic, "-q", "-o", "beginning", "-e",
                                "-X", "client.rack=rack2", "-f", clients.KCAT_FORMAT], 90)
    got = clients.parse_kcat(out)
    assert got == clients.expected_for("kcat", fleet.written[topic])
    assert fetches(fleet.ferries[2]) > before, "the rack-2 consumer fetched from node 2's logferry"
    # Without a rack the leader's instance serves it and node 2's sees no fetch.
    before = fetches(fleet.ferries[2])
    assert clients.consume("kcat", via, topic) == got
    assert fetches(fleet.ferries[2]) == before


def test_topics_created_and_deleted_on_the_cluster_follow_within_a_second(fleet):
    via = fleet.bootstrap(3)
    fleet.cluster.create_topic("fleet-new", [[1, 2], [2, 3]])
    t0 = time.monotonic()
    wait_for(lambda: "fleet-new" in metadata(via)[1], 5, "fleet-new in logferry's Metadata")
    appeared = time.monotonic() - t0
    fleet.cluster.delete_topic("fleet-new")
    t0 = time.monotonic()
    wait_for(lambda: "fleet-new" not in metadata(via)[1], 5, "fleet-new gone from logferry's Metadata")
    gone = time.monotonic() - t0
    assert appeared < 1.0 and gone < 1.0, f"appeared after {appeared:.3f}s, gone after {gone:.3f}s"


def test_a_broker_killed_mid_read_moves_its_leaders_and_nothing_is_lost(fleet):
    topic = "fleet-plain"
    via = fleet.bootstrap(1)
    results = {}

    def read():
        try:
            results["java"] = clients.consume("java", via, topic, timeout_s=120)
        except Exception as e:  # noqa: BLE001 - reported below
            results["error"] = e

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(1.0)
    fleet.cluster.node(3).kill()
    try:
        wait_for(lambda: all(leader != 3 for parts in metadata(via)[1].values() for _, leader in parts.values()),
                 30, "every leader to move off the killed broker 3",
                 lambda: str(metadata(via)))
        reader.join(180)
        assert "error" not in results, results.get("error")
        assert results["java"] == clients.expected_for("java", fleet.written[topic]), "nothing lost, nothing invented"
        for client in ("kcat", "kafka-python"):
            got = clients.consume(client, via, topic)
            assert got == clients.expected_for(client, fleet.written[topic]), client
        assert fleet.ferries[3].proc.poll() is None, "the dead broker's logferry is still running"
        nodes, _ = metadata(fleet.bootstrap(3))
        assert 3 in nodes and set(nodes) == {1, 2, 3}
    finally:
        fleet.cluster.node(3).start(timeout_s=120)


def test_a_partition_moved_between_brokers_is_followed_by_the_fleet(fleet, tmp_path):
    """kafka-reassign-partitions.sh moves partition 0 from brokers [1, 2] to [3, 2] (throttled,
    so the copy to broker 3 takes seconds) while a producer writes and full reads go through the
    logferry beside broker 1: every read during the move serves only records the cluster holds
    and none is lost; once the move completes the leader moves off broker 1, broker 1 deletes
    its copy, consumers through that logferry read the topic as the cluster serves it (the
    partition now from the logferry beside broker 3), and logferry 1 holds no file of the
    deleted copy."""
    import json
    from test_faults import held_open, reassign
    topic = "fleet-moved"
    fleet.cluster.create_topic(topic, [[1, 2], [2, 1], [1, 2]], {"segment.bytes": str(1024 * 1024)})
    clients.produce(fleet.cluster.bootstrap, "plain", topic, 3000, seed=48)
    via = fleet.bootstrap(1)
    n1 = fleet.cluster.node(1)
    old = os.path.join(n1.log_dir, f"{topic}-0")
    size = sum(os.path.getsize(os.path.join(old, f)) for f in os.listdir(old) if f.endswith(".log"))
    plan = tmp_path / "move.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": [3, 2]}]}))
    b = fleet.cluster
    producing = clients.Producing(b.bootstrap, "plain", topic, 1500, seed=49)
    try:
        # About six seconds of copying at the throttle.
        reassign(b, str(plan), "--execute", "--throttle", str(max(size // 6, 10000)))
        reads, deadline = [], time.monotonic() + 180
        def done(verify):
            return "fleet-moved-0 is completed" in verify and "in progress" not in verify
        while not done(verify := reassign(b, str(plan), "--verify")) or not reads:
            assert time.monotonic() < deadline, "the move did not complete within 180 s:\n" + verify
            reads.append(clients.consume("kcat", via, topic, timeout_s=60))
        acked, _ = producing.result(timeout_s=240)
        producing = None
        wait_for(lambda: metadata(via)[1][topic][0][1] in (2, 3), 30, "partition 0's leader to move off broker 1",
                 lambda: str(metadata(via)[1].get(topic)))
        want = clients.consume("kcat", b.bootstrap, topic)
        assert len(want) == 4500 and {clients.kcat_view(l) for l in acked} <= set(want)
        for n, read in enumerate(reads):
            foreign = set(read) - set(want)
            assert not foreign, f"full read {n} during the move served records the cluster does not hold: {sorted(foreign)[:3]}"
            assert len(read) >= 3000, f"full read {n} during the move lost records: {len(read)}"
        print(f"moved between brokers: {len(reads)} full reads during the move", file=sys.stderr)
        wait_for(lambda: clients.consume("kcat", via, topic) == want, 60,
                 "consumers through logferry 1 to read the moved topic as the cluster serves it")
        for client in ("java", "kafka-python"):
            got = clients.consume(client, via, topic)
            assert sorted(got) == sorted(clients.consume(client, b.bootstrap, topic)), client
        wait_for(lambda: not os.path.exists(old), 90, "broker 1 to delete its copy")
        pid = fleet.ferries[1].proc.pid
        wait_for(lambda: not held_open(pid, lambda t: f"/{topic}-0" in t), 30,
                 "logferry 1 to close the files of the deleted copy",
                 lambda: "\n".join(held_open(pid, lambda t: f"/{topic}-0" in t)))
        assert all(f.proc.poll() is None for f in fleet.ferries.values())
        assert not [l for f in fleet.ferries.values() for l in f.log if "panicked" in l]
    finally:
        if producing:
            producing.proc.kill()
        reassign(b, str(plan), "--verify")  # removes the throttle
        fleet.cluster.delete_topic(topic)
