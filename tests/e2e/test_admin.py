"""The operators' tools against logferry (issue 15): the Kafka 4.4 `kafka-configs.sh`,
`kafka-topics.sh --describe` (DescribeTopicPartitions, ELR columns included), `kafka-log-dirs.sh`,
`kafka-cluster.sh cluster-id`, `kafka-get-offsets.sh` and `kafka-consumer-groups.sh` print for
logferry what they print for the broker beside it, from one live broker whose topics carry
overrides, whose server.properties sets topic defaults, and whose metadata log holds KRaft's
cluster-default min.insync.replicas. logferry is given --broker-config and nothing else. The
broker is started once for the module."""
import json
import re

import kafka.errors
from kafka import KafkaAdminClient, OffsetAndMetadata, TopicPartition

import pytest

import broker
import clients
from ferry import Ferry
from test_security import tool
from test_upstream import metric


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    b = broker.Broker(str(tmp_path_factory.mktemp("kafka-admin")), heap="384m")
    b.extra = {"log.retention.hours": "100", "log.cleaner.min.cleanable.ratio": "0.25", "compression.type": "lz4"}
    b.start()
    clients.produce(b.bootstrap, "plain", "conf-a", 50, seed=5)
    clients.produce(b.bootstrap, "plain", "conf-b", 50, seed=6)
    configs(b.bootstrap, "--alter", "--entity-type", "topics", "--entity-name", "conf-a", "--add-config",
            "retention.ms=1000,cleanup.policy=[compact,delete],max.message.bytes=2000000")
    port = broker.free_port()
    f = Ferry([b.log_dir], extra=["--broker-config", b.conf, "--metrics-listen", f"127.0.0.1:{port}"])
    f.metrics = f"127.0.0.1:{port}"
    yield b, f
    f.stop()
    b.stop()


def configs(bootstrap, *args):
    return tool("org.apache.kafka.tools.ConfigCommand", ["--bootstrap-server", bootstrap, *args])


def topics_describe(bootstrap, topic):
    out = tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", bootstrap, "--describe", "--topic", topic])
    lines = []
    for line in out.splitlines():
        # Configs print in the order of the tool's HashMap: compare them as a set.
        m = re.search(r"Configs: (.*)$", line)
        if m:
            parts = re.split(r",(?=[a-z.]+=)", m.group(1))
            line = line[:m.start(1)] + ",".join(sorted(parts))
        lines.append(line.rstrip())
    return lines


@pytest.mark.parametrize("topic", ["conf-a", "conf-b"])
@pytest.mark.parametrize("flags", [[], ["--all"]])
def test_kafka_configs_describe_prints_the_same(admin, topic, flags):
    b, f = admin
    args = ["--describe", "--entity-type", "topics", "--entity-name", topic, *flags]
    want = configs(b.bootstrap, *args)
    assert "synonyms" in want or not flags, want
    assert configs(f.bootstrap, *args) == want


@pytest.mark.parametrize("topic", ["conf-a", "conf-b"])
def test_kafka_topics_describe_prints_the_same(admin, topic):
    b, f = admin
    want = topics_describe(b.bootstrap, topic)
    assert any("compression.type=lz4" in l for l in want), want
    # The ELR columns come from DescribeTopicPartitions only (the Metadata fallback lacks them).
    assert any("\tElr: " in l for l in want), want
    assert topics_describe(f.bootstrap, topic) == want


def test_a_topic_override_made_now_shows_within_seconds(admin):
    from conftest import wait_for
    b, f = admin
    configs(b.bootstrap, "--alter", "--entity-type", "topics", "--entity-name", "conf-b", "--add-config",
            "segment.ms=3600000")
    args = ["--describe", "--entity-type", "topics", "--entity-name", "conf-b"]
    want = configs(b.bootstrap, *args)
    assert "segment.ms=3600000" in want
    wait_for(lambda: configs(f.bootstrap, *args) == want, 20, "the new override through logferry")


def test_unknown_topics_and_brokers_are_refused_as_on_the_broker(admin):
    b, f = admin
    for args in (["--describe", "--entity-type", "topics", "--entity-name", "no-such-topic"],):
        rb = broker.java("org.apache.kafka.tools.ConfigCommand", ["--bootstrap-server", b.bootstrap, *args],
                         capture_output=True, text=True, timeout=120)
        rf = broker.java("org.apache.kafka.tools.ConfigCommand", ["--bootstrap-server", f.bootstrap, *args],
                         capture_output=True, text=True, timeout=120)
        assert (rf.returncode, rf.stdout) == (rb.returncode, rb.stdout), (rb.stderr[-500:], rf.stderr[-500:])
        assert "no-such-topic" in rf.stdout
    # The broker resource: what server.properties and the metadata log hold for this node.
    out = configs(f.bootstrap, "--describe", "--entity-type", "brokers", "--entity-name", "1", "--all")
    assert "log.retention.hours=100" in out and "STATIC_BROKER_CONFIG" in out, out


def run_tool(main, bootstrap, *args):
    r = broker.java(main, ["--bootstrap-server", bootstrap, *args], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout


def test_kafka_log_dirs_describe_prints_the_same(admin):
    b, f = admin

    def dirs(bootstrap, *extra):
        code, out = run_tool("org.apache.kafka.tools.LogDirsCommand", bootstrap, "--describe", *extra)
        assert code == 0, out
        doc = json.loads(out.strip().splitlines()[-1])
        for br in doc["brokers"]:
            for d in br["logDirs"]:
                d["partitions"].sort(key=lambda p: p["partition"])
        return doc

    want = dirs(b.bootstrap)
    parts = [p["partition"] for br in want["brokers"] for d in br["logDirs"] for p in d["partitions"]]
    assert "conf-a-0" in parts and all(p["size"] >= 0 for br in want["brokers"] for d in br["logDirs"]
                                       for p in d["partitions"]), want
    assert dirs(f.bootstrap) == want
    assert dirs(f.bootstrap, "--topic-list", "conf-b") == dirs(b.bootstrap, "--topic-list", "conf-b")


def test_kafka_cluster_id_and_get_offsets_print_the_same(admin):
    b, f = admin
    # The tool's cluster-id subcommand takes the bootstrap after it.
    cid = broker.java("org.apache.kafka.tools.ClusterTool", ["cluster-id", "--bootstrap-server", f.bootstrap],
                      capture_output=True, text=True, timeout=120)
    want = broker.java("org.apache.kafka.tools.ClusterTool", ["cluster-id", "--bootstrap-server", b.bootstrap],
                       capture_output=True, text=True, timeout=120)
    assert (cid.returncode, cid.stdout) == (want.returncode, want.stdout) and "Cluster ID: " in want.stdout, want
    for args in (["--topic", "conf-a"], ["--topic", "conf-.*", "--time", "-2"], ["--topic-partitions", "conf-b:0"],
                 ["--topic", "conf-a", "--time", "-1"]):
        got, exp = run_tool("org.apache.kafka.tools.GetOffsetShell", f.bootstrap, *args), \
            run_tool("org.apache.kafka.tools.GetOffsetShell", b.bootstrap, *args)
        assert exp[0] == 0 and exp[1].strip(), (args, exp)
        assert got == exp, args


def test_kafka_consumer_groups_list_describe_and_reset_dry_run_print_the_same(admin):
    b, f = admin
    # The same commits in the broker's coordinator and in logferry's (its groups are local here).
    from conftest import wait_for

    def commit(bootstrap):
        a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        try:
            a.alter_group_offsets("g-admin", {TopicPartition("conf-a", 0): OffsetAndMetadata(20, "", -1),
                                              TopicPartition("conf-b", 0): OffsetAndMetadata(50, "", -1)})
            return True
        except kafka.errors.CoordinatorNotAvailableError:
            return False  # the broker creates __consumer_offsets on the first lookup
        finally:
            a.close()

    for bootstrap in (b.bootstrap, f.bootstrap):
        wait_for(lambda: commit(bootstrap), 60, f"a commit through {bootstrap}")
    group = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
    code, listed = run_tool(group, f.bootstrap, "--list")
    assert code == 0 and "g-admin" in listed.split(), listed
    assert set(listed.split()) <= set(run_tool(group, b.bootstrap, "--list")[1].split())
    for args in (["--describe", "--group", "g-admin"],
                 ["--describe", "--group", "g-admin", "--offsets", "--verbose"],
                 ["--reset-offsets", "--group", "g-admin", "--topic", "conf-a", "--to-earliest", "--dry-run"],
                 ["--reset-offsets", "--group", "g-admin", "--all-topics", "--shift-by", "-5", "--dry-run"],
                 ["--describe", "--group", "no-such-group"]):
        exp = run_tool(group, b.bootstrap, *args)
        assert exp[0] == 0 and exp[1].strip(), (args, exp)
        assert run_tool(group, f.bootstrap, *args) == exp, args


def test_kafka_broker_api_versions_lists_what_logferry_serves(admin):
    b, f = admin
    code, out = run_tool("org.apache.kafka.tools.BrokerApiVersionsCommand", f.bootstrap)
    assert code == 0, out
    # Addresses aside, each served API shows logferry's range and the version the tool would use.
    for line in ["Fetch(1): 4 to 18 [usable: 18]", "DescribeConfigs(32): 1 to 4 [usable: 4]",
                 "DescribeLogDirs(35): 1 to 4 [usable: 4]", "DescribeCluster(60): 0 to 2 [usable: 2]",
                 "DescribeTopicPartitions(75): 0 [usable: 0]", "CreateTopics(19): UNSUPPORTED"]:
        assert line in out, (line, out)


@pytest.mark.parametrize("client", ["java", "franz-go"])
def test_consumers_read_through_incremental_fetch_sessions(admin, client):
    """KIP-227: the Java consumer and franz-go open a fetch session with logferry and read the
    same records through it as from the broker."""
    b, f = admin
    from conftest import wait_for
    topic = f"sessions-{client}"
    clients.produce(b.bootstrap, "plain", topic, 300, seed=9)
    want = clients.consume(client, b.bootstrap, topic)
    assert len(want) == 300
    wait_for(lambda: clients.end_offsets(f.bootstrap, topic) == clients.end_offsets(b.bootstrap, topic),
             30, "logferry at the broker's end offsets")
    opened = metric(f, "fetch_sessions_opened")
    assert clients.consume(client, f.bootstrap, topic) == want
    assert metric(f, "fetch_sessions_opened") > opened, f"{client} opened no fetch session"
