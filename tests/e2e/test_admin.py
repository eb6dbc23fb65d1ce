"""The operators' tools against logferry (issue 15): the Kafka 4.4 `kafka-configs.sh` and
`kafka-topics.sh --describe` print for logferry what they print for the broker beside it, from
one live broker whose topics carry overrides, whose server.properties sets topic defaults, and
whose metadata log holds KRaft's cluster-default min.insync.replicas. logferry is given
--broker-config and nothing else. The broker is started once for the module."""
import re

import pytest

import broker
import clients
from ferry import Ferry
from test_security import tool


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    b = broker.Broker(str(tmp_path_factory.mktemp("kafka-admin")), heap="384m")
    b.extra = {"log.retention.hours": "100", "log.cleaner.min.cleanable.ratio": "0.25", "compression.type": "lz4"}
    b.start()
    clients.produce(b.bootstrap, "plain", "conf-a", 50, seed=5)
    clients.produce(b.bootstrap, "plain", "conf-b", 50, seed=6)
    configs(b.bootstrap, "--alter", "--entity-type", "topics", "--entity-name", "conf-a", "--add-config",
            "retention.ms=1000,cleanup.policy=[compact,delete],max.message.bytes=2000000")
    f = Ferry([b.log_dir], extra=["--broker-config", b.conf])
    yield b, f
    f.stop()
    b.stop()


def configs(bootstrap, *args):
    return tool("org.apache.kafka.tools.ConfigCommand", ["--bootstrap-server", bootstrap, *args])


def topics_describe(bootstrap, topic):
    out = tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", bootstrap, "--describe", "--topic", topic])
    lines = []
    for line in out.splitlines():
        # DescribeTopicPartitions (ELR columns) is not served yet: the tool falls back to Metadata.
        line = re.sub(r"\tElr:.*$", "", line)
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
