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
