"""The harness proves itself before logferry is compared against it: every workload written by
the real Java producer is read back from the real broker by kcat, the Java consumer, franz-go
and kafka-python, and the four outputs agree with each other and with what was produced."""
import collections

import pytest

import clients
from conftest import WORKLOADS, segment_bases

EXACT = ["plain", "gzip", "snappy", "lz4", "zstd", "idempotent", "large", "many"]


def offset_of(line):
    t, p, o = line.split(" ")[:3]
    return int(p), int(o)


@pytest.mark.parametrize("client", clients.CLIENTS)
@pytest.mark.parametrize("workload", EXACT)
def test_exact_workloads(kafka, workload, client):
    """Nothing compacted or deleted: a client reads exactly what was produced."""
    got = clients.consume(client, kafka.bootstrap, workload)
    assert len(got) == WORKLOADS[workload]
    assert got == clients.expected_for(client, kafka.committed[workload])


@pytest.mark.parametrize("client", clients.CLIENTS)
@pytest.mark.parametrize("isolation", ["read_uncommitted", "read_committed"])
def test_transactions(kafka, client, isolation):
    """Aborted records are seen by read_uncommitted only; markers are never records."""
    committed, aborted = kafka.committed["txn"], kafka.aborted["txn"]
    assert aborted and committed
    got = clients.consume(client, kafka.bootstrap, "txn", isolation)
    want = committed + aborted if isolation == "read_uncommitted" else committed
    assert got == clients.expected_for(client, want)


def test_compacted(kafka):
    """After the cleaner ran: all clients agree, every record read was produced, some were
    removed, and the latest value of every key survives."""
    outs = {c: clients.consume(c, kafka.bootstrap, "compacted") for c in clients.CLIENTS}
    produced = kafka.committed["compacted"]
    base = outs["java"]
    for c, got in outs.items():
        assert got == clients.expected_for(c, base), c
    assert set(base) <= set(produced)
    assert len(base) < len(produced), "the cleaner removed nothing"
    latest = {}
    for line in sorted(produced, key=offset_of):
        f = line.split(" ")
        latest[(f[1], f[4])] = line
    assert set(latest.values()) <= set(base)


def test_retention(kafka):
    """Retention deleted old segments: every client reads exactly the produced records from
    the first remaining segment on, per partition."""
    starts = {p: bases[0] for p, bases in segment_bases(kafka.log_dir, "retention").items()}
    assert all(s > 0 for s in starts.values())
    want = [l for l in kafka.committed["retention"] if offset_of(l)[1] >= starts[offset_of(l)[0]]]
    for c in clients.CLIENTS:
        assert clients.consume(c, kafka.bootstrap, "retention") == clients.expected_for(c, want), c


def test_many_partitions_spread(kafka):
    """The 'many' workload really uses 100 partitions."""
    per = collections.Counter(offset_of(l)[0] for l in kafka.committed["many"])
    assert len(per) == 100
