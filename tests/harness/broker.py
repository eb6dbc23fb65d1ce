"""Start and stop a real single-node Apache Kafka broker (KRaft, broker+controller in one JVM).

The jars come from Maven (tests/harness/target/lib, filled by install.sh). Ports are picked
free at run time; every wait is bounded and names what did not come up; the process group is
killed on every exit path (context manager and atexit).
"""
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "target", "lib")
CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"
JAVA = os.environ.get("JAVA", "java")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def classpath():
    if not os.path.isdir(LIB):
        raise SystemExit(f"broker jars missing: {LIB} (run tests/harness/install.sh)")
    jars = [os.path.join(LIB, j) for j in sorted(os.listdir(LIB)) if j.endswith(".jar")]
    own = os.path.join(HERE, "target", "classes")
    return os.pathsep.join([own] + jars)


def java(main, args, **kw):
    cmd = [JAVA, "-Xms256m", "-Xmx1g", "-cp", classpath(),
           f"-Dlog4j2.configurationFile={os.path.join(HERE, 'log4j2.properties')}", main] + list(args)
    return subprocess.run(cmd, **kw)


def wait_port(port, timeout_s, what, proc=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s}s")


class Broker:
    """One KRaft broker+controller. `log_dir` is what logferry tails."""

    def __init__(self, work_dir=None, extra=None, node_id=1, voters=None, controller_port=None, heap="1g"):
        self.work_dir = work_dir or tempfile.mkdtemp(prefix="logferry-kafka-")
        self.log_dir = os.path.join(self.work_dir, "kafka-logs")
        self.port = free_port()
        self.controller_port = controller_port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.extra = extra or {}
        self.node_id = node_id
        # "1@host:port,2@host:port,..." for a cluster (see cluster.py); a lone node votes alone.
        self.voters = voters or f"{node_id}@127.0.0.1:{self.controller_port}"
        self.heap = heap
        self.proc = None

    def properties(self):
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": self.log_dir,
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # Small, fast-moving logs so tests see rolls, retention and compaction quickly.
            "log.segment.bytes": str(1024 * 1024),
            "log.retention.check.interval.ms": "1000",
            "log.segment.delete.delay.ms": "1000",
            "file.delete.delay.ms": "1000",
            "log.cleaner.backoff.ms": "500",
            "replica.high.watermark.checkpoint.interval.ms": "500",
            "log.flush.offset.checkpoint.interval.ms": "1000",
            "log.flush.start.offset.checkpoint.interval.ms": "1000",
        }
        props.update(self.extra)
        return props

    def start(self, timeout_s=120):
        os.makedirs(self.log_dir, exist_ok=True)
        conf = os.path.join(self.work_dir, "server.properties")
        with open(conf, "w") as f:
            for k, v in self.properties().items():
                f.write(f"{k}={v}\n")
        self.conf = conf
        if not os.path.exists(os.path.join(self.log_dir, "meta.properties")):
            r = java("kafka.tools.StorageTool", ["format", "-t", CLUSTER_ID, "-c", conf],
                     capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"kafka storage format failed: {r.stdout}{r.stderr}")
        self.log_path = os.path.join(self.work_dir, "broker.log")
        out = open(self.log_path, "ab")
        small = self.heap != "1g"
        cmd = [JAVA, "-Xms128m" if small else "-Xms512m", f"-Xmx{self.heap}"]
        if small:
            cmd += ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k"]
        cmd += ["-cp", classpath(),
               f"-Dlog4j2.configurationFile={os.path.join(HERE, 'log4j2.properties')}",
               "kafka.Kafka", conf]
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.stop)
        if timeout_s is None:
            # A cluster node: the caller waits once every node of the quorum is started.
            return self
        try:
            wait_port(self.port, timeout_s, "kafka broker", self.proc)
        except Exception:
            self.stop()
            sys.stderr.write(self.tail_log())
            raise
        return self

    def tail_log(self, n=40):
        with contextlib.suppress(OSError):
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        return ""

    def kill(self):
        """SIGKILL, as a crash: no clean shutdown, no final checkpoints."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)

    def stop(self, timeout_s=60):
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    # Run one broker by hand: python3 tests/harness/broker.py [WORK_DIR]
    b = Broker(sys.argv[1] if len(sys.argv) > 1 else None).start()
    print(f"bootstrap {b.bootstrap}  log dir {b.log_dir}  (Ctrl-C stops it)", flush=True)
    try:
        while b.proc and b.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        b.stop()
