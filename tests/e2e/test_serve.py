"""logferry serving a real broker's live log directory to unmodified clients.

For every workload, kcat, the Java consumer, franz-go and kafka-python read the topic from
logferry and from the broker itself; the outputs must be identical, record for record. Also from
a timestamp, both isolation levels for transactions, and tailing consumers that see records the
broker writes while they wait. A producer pointed at logferry fails fast with a clear message.
"""
import os
import shutil
import subprocess
import time

import pytest

import broker
import clients
from conftest import WORKLOADS
from ferry import Ferry


@pytest.fixture(scope="module")
def ferry(kafka):
    f = Ferry([kafka.log_dir])
    yield f
    f.stop()


@pytest.mark.parametrize("client", clients.CLIENTS)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_same_records_as_the_broker(kafka, ferry, workload, client):
    from_broker = clients.consume(client, kafka.bootstrap, workload)
    from_ferry = clients.consume(client, ferry.bootstrap, workload)
    assert len(from_ferry) > 0
    assert from_ferry == from_broker


@pytest.mark.parametrize("client", clients.CLIENTS)
def test_read_committed_same_as_the_broker(kafka, ferry, client):
    from_broker = clients.consume(client, kafka.bootstrap, "txn", "read_committed")
    from_ferry = clients.consume(client, ferry.bootstrap, "txn", "read_committed")
    assert from_ferry == from_broker
    assert len(from_ferry) == len(kafka.committed["txn"])


@pytest.fixture(scope="module")
def ferry_without_txnindex(kafka, tmp_path_factory):
    """The broker's transactional partitions copied with every .txnindex deleted: the aborted
    transactions must come from the markers in the log."""
    dst = str(tmp_path_factory.mktemp("txn-copy"))
    shutil.copy(os.path.join(kafka.log_dir, "meta.properties"), dst)
    indexed = segments = 0
    for name in os.listdir(kafka.log_dir):
        if not name.startswith("txn-"):
            continue
        shutil.copytree(os.path.join(kafka.log_dir, name), os.path.join(dst, name))
        for f in os.listdir(os.path.join(dst, name)):
            if f.endswith(".txnindex"):
                indexed += 1
                os.remove(os.path.join(dst, name, f))
            segments += f.endswith(".log")
    assert indexed > 0, "the broker indexed some aborted transactions"
    assert segments > 3, "the transactional partitions rolled (transactions span segments)"
    f = Ferry([dst], extra=["--visibility", "log-end"])
    yield f
    f.stop()


@pytest.mark.parametrize("client", clients.CLIENTS)
def test_read_committed_without_txnindex_same_as_the_broker(kafka, ferry_without_txnindex, client):
    from_broker = clients.consume(client, kafka.bootstrap, "txn", "read_committed")
    from_copy = clients.consume(client, ferry_without_txnindex.bootstrap, "txn", "read_committed")
    assert len(from_copy) == len(kafka.committed["txn"])
    assert from_copy == from_broker


@pytest.mark.parametrize("client", clients.CLIENTS)
@pytest.mark.parametrize("workload", ["plain", "zstd", "txn"])
def test_from_a_timestamp_same_as_the_broker(kafka, ferry, workload, client):
    stamps = sorted(int(l.split()[3]) for l in kafka.committed[workload])
    ts = stamps[len(stamps) // 2]
    from_broker = clients.consume(client, kafka.bootstrap, workload, start=f"ts:{ts}")
    from_ferry = clients.consume(client, ferry.bootstrap, workload, start=f"ts:{ts}")
    assert 0 < len(from_ferry) < len(kafka.committed[workload]) + len(kafka.aborted[workload])
    assert from_ferry == from_broker


@pytest.mark.parametrize("client", clients.CLIENTS)
def test_tailing_consumers_see_new_records(kafka, ferry, client):
    """Started at the end, each client receives exactly the records produced afterwards."""
    topic = "tail-" + client
    clients.produce(kafka.bootstrap, "plain", topic, 10, seed=7)  # create it with some history
    # "End" is the visibility bound: wait until logferry's view has caught up with the broker's
    # high watermark (checkpointed every 500 ms here), or "end" would be an older offset.
    want = clients.end_offsets(kafka.bootstrap, topic)
    deadline = time.monotonic() + 30
    while clients.end_offsets(ferry.bootstrap, topic) != want:
        assert time.monotonic() < deadline, "logferry did not catch up with the broker's end offsets"
        time.sleep(0.2)
    n = 300
    t = clients.Tailing(client, ferry.bootstrap, topic, partitions=3, count=n)
    t.wait_ready()
    produced, _ = clients.produce(kafka.bootstrap, "plain", topic, n, seed=8)
    got = t.result()
    assert got == clients.expected_for(client, produced)


def test_producer_pointed_at_logferry_fails_fast(ferry):
    """The Java producer gets a clear, non-retriable error instead of retrying forever."""
    cmd = [broker.JAVA, "-cp", broker.classpath(), "logferry.harness.Produce", ferry.bootstrap, "plain", "plain", "5"]
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert time.monotonic() - t < 60
    err = r.stderr
    assert "Exception" in err, err[-2000:]


def test_no_warnings_while_serving_real_clients(ferry):
    # Every client above disconnects normally; none of it is a protocol violation.
    bad = [l for l in ferry.warnings() if "read-only" not in l and "Produce" not in l and "InitProducerId" not in l]
    assert not bad, "\n".join(bad[-20:])
