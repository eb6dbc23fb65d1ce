"""The metrics endpoint scraped by a real Prometheus text parser (prometheus_client's OpenMetrics
parser), while a real consumer (kcat) reads through logferry: the counters must move by what was
served."""
import os
import shutil
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

import broker
import clients
from ferry import Ferry

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "logdir")


def scrape(addr):
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture()
def served(tmp_path):
    logdir = tmp_path / "logdir"
    shutil.copytree(FIXTURE, logdir)
    port = broker.free_port()
    f = Ferry([str(logdir)], extra=["--metrics-listen", f"127.0.0.1:{port}"])
    yield f, f"127.0.0.1:{port}"
    f.stop()


def test_counters_move_as_a_consumer_reads(served):
    ferry, metrics_addr = served
    before = scrape(metrics_addr)
    assert value(before, "logferry_partition_exposed_end_offset", topic="gzip", partition="0") > 0
    lines = clients.consume("kcat", ferry.bootstrap, "gzip")
    assert len(lines) == 300
    after = scrape(metrics_addr)
    sendfile = value(after, "logferry_sent_bytes_total", path="sendfile") - value(before, "logferry_sent_bytes_total", path="sendfile")
    gzip_bytes = sum(os.path.getsize(os.path.join(FIXTURE, f"gzip-{p}", f)) for p in range(3)
                     for f in os.listdir(os.path.join(FIXTURE, f"gzip-{p}")) if f.endswith(".log"))
    assert sendfile >= gzip_bytes, (sendfile, gzip_bytes)
    fetches = sum(v for (n, l), v in after.items() if n == "logferry_requests_total" and ("api", "Fetch") in l)
    assert fetches >= 1
    assert value(after, "logferry_connections_accepted_total") > value(before, "logferry_connections_accepted_total")
    assert value(after, "logferry_fetch_send_seconds_count") > value(before, "logferry_fetch_send_seconds_count")
    assert value(after, "logferry_open_files") >= 1
    assert value(after, "logferry_loop_iteration_seconds_count") > value(before, "logferry_loop_iteration_seconds_count")
    # Reading from an offset past the end is answered with an error code, which is counted.
    assert value(after, "logferry_partition_visibility_lag_offsets", topic="gzip", partition="0") == 0


def test_unit_verifies_and_is_hardened(tmp_path):
    """systemd-analyze accepts the unit and rates its exposure 2.0 or better."""
    import re
    import subprocess
    unit = open(os.path.join(os.path.dirname(__file__), "..", "..", "systemd", "logferry.service")).read()
    path = tmp_path / "logferry.service"
    path.write_text(unit.replace("/usr/bin/logferry", os.path.abspath(broker_bin())))
    v = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr
    s = subprocess.run(["systemd-analyze", "security", "--offline=true", str(path)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for logferry.service: ([0-9.]+)", s.stdout + s.stderr)
    assert m, s.stdout + s.stderr
    assert float(m.group(1)) <= 2.0, m.group(0)


def broker_bin():
    from ferry import BIN
    return BIN
