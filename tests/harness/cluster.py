"""A real 3-node Apache Kafka cluster (KRaft; each node broker+controller, so the three form the
controller quorum), with small heaps and free ports, for the fleet tests.

Topics are created with an explicit replica assignment (`create_topic`), so the tests know which
broker holds which partition: with replication factor 2 over 3 brokers no broker holds all of a
topic. Each node's `log_dir` is what the logferry beside it tails.
"""
import os
import subprocess
import sys
import time

import broker
from ferry import Ferry

HERE = os.path.dirname(os.path.abspath(__file__))


class Cluster:
    def __init__(self, work_dir, size=3, extra=None, heap="384m"):
        self.work_dir = work_dir
        ports = [broker.free_port() for _ in range(size)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(ports))
        common = {
            "offsets.topic.replication.factor": "2",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "2",
            "transaction.state.log.min.isr": "1",
            "default.replication.factor": "2",
            "min.insync.replicas": "1",
            # Failure detection in seconds, not the default 9 s, so a killed broker's partitions
            # move while a test waits.
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
            "replica.lag.time.max.ms": "5000",
        }
        common.update(extra or {})
        self.nodes = [
            broker.Broker(os.path.join(work_dir, f"node{i + 1}"), extra=dict(common), node_id=i + 1,
                          voters=voters, controller_port=ports[i], heap=heap)
            for i in range(size)
        ]
        for n in self.nodes:
            os.makedirs(n.work_dir, exist_ok=True)

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes if n.proc is not None)

    def node(self, node_id):
        return self.nodes[node_id - 1]

    def start(self, timeout_s=120):
        # The brokers wait for a quorum, so all are started before any is waited for.
        procs = []
        for n in self.nodes:
            procs.append(_Starting(n))
        for s in procs:
            s.finish(timeout_s)
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s=120):
        """Until every running broker is registered and unfenced (Metadata lists it)."""
        from kafka import KafkaAdminClient
        want = {n.node_id for n in self.nodes if n.proc is not None}
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                a = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
                try:
                    got = {b.get("node_id", b.get("broker_id")) for b in a.describe_cluster()["brokers"]}
                finally:
                    a.close()
                if want <= got:
                    return
                last = got
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                last = e
            time.sleep(0.5)
        raise TimeoutError(f"cluster brokers {want} not all registered within {timeout_s}s (last: {last})")

    def create_topic(self, topic, assignment, configs=None, timeout_s=60):
        """`assignment`: one replica list per partition, e.g. [[1, 2], [2, 3], [3, 1]]."""
        args = ["--bootstrap-server", self.bootstrap, "--create", "--topic", topic,
                "--replica-assignment", ",".join(":".join(str(b) for b in r) for r in assignment)]
        for k, v in (configs or {}).items():
            args += ["--config", f"{k}={v}"]
        r = broker.java("org.apache.kafka.tools.TopicCommand", args, capture_output=True, text=True,
                        timeout=timeout_s)
        if r.returncode != 0:
            raise RuntimeError(f"create topic {topic} failed: {r.stdout}{r.stderr}")

    def delete_topic(self, topic, timeout_s=60):
        r = broker.java("org.apache.kafka.tools.TopicCommand",
                        ["--bootstrap-server", self.bootstrap, "--delete", "--topic", topic],
                        capture_output=True, text=True, timeout=timeout_s)
        if r.returncode != 0:
            raise RuntimeError(f"delete topic {topic} failed: {r.stdout}{r.stderr}")

    def stop(self):
        # SIGTERM to every node first: a node stopped after the others lost the quorum waits
        # for it in its controlled shutdown.
        import threading
        threads = [threading.Thread(target=n.stop) for n in self.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Starting:
    """A node whose process has been started but not yet waited for."""

    def __init__(self, node):
        self.node = node
        self.node.start(timeout_s=None)

    def finish(self, timeout_s):
        broker.wait_port(self.node.port, timeout_s, f"kafka node {self.node.node_id}", self.node.proc)


if __name__ == "__main__":
    # Run a cluster by hand: python3 tests/harness/cluster.py WORK_DIR [KEY=VALUE ...]
    # Extra broker settings as KEY=VALUE arguments after the work dir.
    c = Cluster(sys.argv[1], extra=dict(a.split("=", 1) for a in sys.argv[2:])).start()
    print(f"bootstrap {c.bootstrap}", flush=True)
    try:
        while all(n.proc and n.proc.poll() is None for n in c.nodes):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()


class Fleet:
    """One logferry beside each node of cluster C (its broker config, the others as --peer,
    --upstream to its broker, local groups, a metrics port), state dirs under TMP."""

    def __init__(self, c, tmp):
        self.cluster = c
        ports = {n.node_id: broker.free_port() for n in c.nodes}
        self.ports = ports
        self.ferries = {}
        for n in c.nodes:
            peers = [a for i, p in ports.items() if i != n.node_id for a in ("--peer", f"{i}=127.0.0.1:{p}")]
            metrics = broker.free_port()
            # --upstream: real-time high watermarks, and the metadata quorum's committed offset.
            self.ferries[n.node_id] = Ferry([], extra=["--broker-config", n.conf, *peers,
                                                       "--upstream", n.bootstrap, "--groups", "local",
                                                       "--metrics-listen", f"127.0.0.1:{metrics}"],
                                            listen=f"127.0.0.1:{ports[n.node_id]}",
                                            state_dir=os.path.join(tmp, f"state{n.node_id}"))
            self.ferries[n.node_id].metrics = f"127.0.0.1:{metrics}"

    def bootstrap(self, node_id):
        return self.ferries[node_id].bootstrap

    def stop(self):
        for f in self.ferries.values():
            f.stop()
