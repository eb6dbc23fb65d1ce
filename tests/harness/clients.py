"""Run the four real consumer clients of the harness and return their canonical lines.

Every client prints "topic partition offset timestamp key-hex value-sha256 headers" per record
(see java/.../Canon.java); outputs are compared sorted, so client read order does not matter.
"""
import hashlib
import os
import subprocess
import sys

import broker

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = ("kcat", "java", "franz-go", "kafka-python")


class ClientError(RuntimeError):
    pass


def _run(name, cmd, timeout_s):
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=timeout_s + 30)
    except subprocess.TimeoutExpired as e:
        raise ClientError(f"{name} did not finish within {timeout_s + 30}s: {cmd}") from e
    if r.returncode != 0:
        raise ClientError(f"{name} exited {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return r.stdout


def _lines(out):
    return sorted(l for l in out.decode().splitlines() if l)


KCAT_FORMAT = "%t\\t%p\\t%o\\t%T\\t%K\\t%S\\t%h\\t%k%s\\x1e"


def kcat_sasl():
    """kcat's -X options for LOGFERRY_SASL=MECHANISM:USER:PASSWORD and LOGFERRY_TLS_CA=PEM (with
    LOGFERRY_TLS_CERT and LOGFERRY_TLS_KEY for a client certificate); the other clients read the
    same variables. Either unset: no SASL, no TLS."""
    spec = os.environ.get("LOGFERRY_SASL")
    ca = os.environ.get("LOGFERRY_TLS_CA")
    out = []
    if spec:
        mech, user, password = spec.split(":", 2)
        out += ["-X", f"sasl.mechanisms={mech}", "-X", f"sasl.username={user}", "-X", f"sasl.password={password}"]
    if ca:
        out += ["-X", f"ssl.ca.location={ca}"]
        if os.environ.get("LOGFERRY_TLS_CERT"):
            out += ["-X", f"ssl.certificate.location={os.environ['LOGFERRY_TLS_CERT']}",
                    "-X", f"ssl.key.location={os.environ['LOGFERRY_TLS_KEY']}"]
    if spec or ca:
        out += ["-X", "security.protocol=" + ("SASL_" if spec else "") + ("SSL" if ca else "PLAINTEXT")]
    return out


def command(client, bootstrap, topic, isolation, timeout_s, start):
    """The command line of a consumer. START: beginning, ts:MILLIS, end:N (see Consume.java) or
    group:NAME (a member of group NAME that runs until SIGTERM; see GroupMember)."""
    if client == "java" and start.startswith("group:"):
        return [broker.JAVA, "-cp", broker.classpath(),
                f"-Dlog4j2.configurationFile={os.path.join(HERE, 'log4j2.properties')}",
                "logferry.harness.GroupConsume", bootstrap, topic, start[len("group:"):], str(timeout_s)]
    if client == "kcat" and start.startswith("group:"):
        # A balanced consumer (-G) with the cooperative-sticky assignor, unbuffered output (-u).
        return ["kcat", "-b", bootstrap, *kcat_sasl(), "-G", start[len("group:"):], "-q", "-u", "-f", KCAT_FORMAT,
                "-X", f"isolation.level={isolation}", "-X", "auto.offset.reset=earliest",
                "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000",
                "-X", "auto.commit.interval.ms=1000", "-X", "partition.assignment.strategy=cooperative-sticky",
                topic]
    if client == "java":
        return [broker.JAVA, "-cp", broker.classpath(),
                f"-Dlog4j2.configurationFile={os.path.join(HERE, 'log4j2.properties')}",
                "logferry.harness.Consume", bootstrap, topic, isolation, str(timeout_s), start]
    if client == "franz-go":
        return [os.path.join(HERE, "target", "franzconsume"), bootstrap, topic, isolation, str(timeout_s), start]
    if client == "kafka-python":
        return [sys.executable, os.path.join(HERE, "pyconsume.py"), bootstrap, topic, isolation, str(timeout_s), start]
    if client == "kcat":
        cmd = ["kcat", "-C", "-b", bootstrap, *kcat_sasl(), "-t", topic, "-q", "-X", f"isolation.level={isolation}",
               "-f", KCAT_FORMAT]
        if start.startswith("ts:"):
            return cmd + ["-o", "s@" + start[3:], "-e"]
        if start.startswith("end:"):
            return cmd + ["-o", "end", "-c", start[4:], "-d", "fetch"]
        return cmd + ["-o", "beginning", "-e"]
    raise ValueError(client)


def consume(client, bootstrap, topic, isolation="read_uncommitted", timeout_s=90, start="beginning"):
    """Read every partition of `topic` from START to the end offsets; canonical lines."""
    out = _run(client, command(client, bootstrap, topic, isolation, timeout_s, start), timeout_s)
    return parse_kcat(out) if client == "kcat" else _lines(out)


class Tailing:
    """A consumer started at the end of a topic that stops after `count` new records.
    `start()` returns once the consumer is positioned (it says READY, or for kcat, its fetch
    debug log shows a fetch for every partition), so records produced after it are all seen."""

    def __init__(self, client, bootstrap, topic, partitions, count, timeout_s=120):
        self.client = client
        self.partitions = partitions
        self.proc = subprocess.Popen(command(client, bootstrap, topic, "read_uncommitted", timeout_s, f"end:{count}"),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.timeout_s = timeout_s
        self.stderr_tail = []

    def wait_ready(self, timeout_s=60):
        import re
        import time
        deadline = time.monotonic() + timeout_s
        seen = set()
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            text = line.decode(errors="replace")
            self.stderr_tail = (self.stderr_tail + [text])[-20:]
            if text.strip() == "READY":
                return self
            m = re.search(r"Fetch topic \S+ \[(\d+)\] at offset (\d+)", text)
            if m:
                seen.add(int(m.group(1)))
                if len(seen) == self.partitions:
                    return self
        self.proc.kill()
        raise ClientError(f"{self.client} tailing consumer never became ready: {''.join(self.stderr_tail)}")

    def result(self):
        import threading
        # Drain stderr (kcat's debug log is chatty) so the child never blocks on it.
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()
        try:
            out, _ = self.proc.communicate(timeout=self.timeout_s + 30)
        except subprocess.TimeoutExpired as e:
            self.proc.kill()
            raise ClientError(f"{self.client} tailing consumer did not finish") from e
        if self.proc.returncode != 0:
            raise ClientError(f"{self.client} tailing consumer exited {self.proc.returncode}")
        return parse_kcat(out) if self.client == "kcat" else _lines(out)


class GroupMember:
    """A consumer-group member (start "group:NAME", see each client) running in the background
    with its output going to a file, so lines printed before a SIGKILL are kept."""

    def __init__(self, client, bootstrap, topic, group, out_path, timeout_s=600):
        # "java-848", "franz-go-848": the same client with KIP-848's consumer protocol.
        self.client = client
        self.protocol = "consumer" if client.endswith("-848") else "classic"
        self.out_path = out_path
        self.err_path = out_path + ".err"
        self.cmd = command(client.removesuffix("-848"), bootstrap, topic, "read_uncommitted", timeout_s,
                           f"group:{group}")
        self.restarts = 0
        self._spawn("wb")

    def _spawn(self, mode):
        self.out = open(self.out_path, mode)
        self.err = open(self.err_path, mode)
        env = {**os.environ, "LOGFERRY_GROUP_PROTOCOL": self.protocol}
        self.proc = subprocess.Popen(self.cmd, stdout=self.out, stderr=self.err, env=env)

    def restart(self):
        """Starts the member again (same group, output appended), as a supervisor would."""
        self.out.close()
        self.err.close()
        self.restarts += 1
        self._spawn("ab")

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL: no LeaveGroup, no final commit; the coordinator must notice by itself."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout_s=30):
        """SIGTERM, then wait for the member to commit, leave and exit."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.out.close()
        self.err.close()

    def lines(self):
        """Canonical lines in the order the member printed them."""
        with open(self.out_path, "rb") as f:
            data = f.read()
        if self.client == "kcat":
            # Only whole records (a SIGKILL may cut the last one).
            end = data.rfind(SEP)
            return parse_kcat(data[:end + 1], keep_order=True) if end >= 0 else []
        # Only newline-terminated lines (a SIGKILL may cut the last one).
        return [l.decode(errors="replace") for l in data.split(b"\n")[:-1] if l]

    def stderr_tail(self):
        with open(self.err_path, "rb") as f:
            return f.read()[-3000:].decode(errors="replace")


SEP = b"\x1e"  # record separator; the key and value follow as raw bytes, framed by their lengths


def parse_kcat(out, keep_order=False):
    lines = []
    pos = 0
    while pos < len(out):
        fields = []
        for _ in range(7):
            tab = out.index(b"\t", pos)
            fields.append(out[pos:tab])
            pos = tab + 1
        t, p, o, ts, klen, vlen, hdrs = fields
        klen, vlen = int(klen), int(vlen)
        key = out[pos:pos + klen] if klen >= 0 else None
        pos += max(klen, 0)
        value = out[pos:pos + vlen] if vlen >= 0 else None
        pos += max(vlen, 0)
        if out[pos:pos + 1] != SEP:
            raise ClientError(f"kcat output not framed as expected at byte {pos}")
        pos += 1
        lines.append(" ".join([t.decode(), p.decode(), o.decode(), ts.decode(),
                               "null" if key is None else key.hex(),
                               "null" if value is None else hashlib.sha256(value).hexdigest(),
                               kcat_headers(hdrs)]))
    return lines if keep_order else sorted(lines)


def kcat_headers(raw):
    # kcat prints headers as name=value pairs joined by commas; a null value prints as the
    # name alone. Harness header names are ASCII without '=' or ','; values may be binary but
    # never contain those bytes either.
    if not raw:
        return "-"
    parts = []
    for item in raw.split(b","):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            parts.append(k.hex() + "=" + v.hex())
        else:
            parts.append(item.hex() + "=null")
    return ",".join(parts)


def _produce_cmd(bootstrap, workload, topic, count, seed):
    return [broker.JAVA, "-cp", broker.classpath(),
            f"-Dlog4j2.configurationFile={os.path.join(HERE, 'log4j2.properties')}",
            "logferry.harness.Produce", bootstrap, workload, topic, str(count), str(seed)]


def _produced(workload, returncode, stdout, stderr):
    if returncode != 0:
        raise ClientError(f"producer for {workload} exited {returncode}: {stderr.decode(errors='replace')[-3000:]}")
    committed, aborted = [], []
    for line in stdout.decode().splitlines():
        tag, rest = line.split(" ", 1)
        (aborted if tag == "A" else committed).append(rest)
    return sorted(committed), sorted(aborted)


def produce(bootstrap, workload, topic, count, seed=1, timeout_s=300):
    """Write a workload with the Java producer; returns (committed lines, aborted lines)."""
    try:
        r = subprocess.run(_produce_cmd(bootstrap, workload, topic, count, seed), capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise ClientError(f"producer for {workload} did not finish within {timeout_s}s") from e
    return _produced(workload, r.returncode, r.stdout, r.stderr)


class Producing:
    """`produce` in the background: the records are written while the test does other things
    (kills the broker, moves the partition); `result()` waits and returns what `produce` does."""

    def __init__(self, bootstrap, workload, topic, count, seed=1):
        import tempfile
        self.workload = workload
        # Files, not pipes: the producer prints its lines at the end, more than a pipe holds,
        # and the test may wait for it to exit before it reads them.
        self.out, self.err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self.proc = subprocess.Popen(_produce_cmd(bootstrap, workload, topic, count, seed),
                                     stdout=self.out, stderr=self.err)

    def result(self, timeout_s=300):
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            self.proc.kill()
            raise ClientError(f"producer for {self.workload} did not finish within {timeout_s}s") from e
        self.out.seek(0)
        self.err.seek(0)
        return _produced(self.workload, self.proc.returncode, self.out.read(), self.err.read())


def kcat_view(line):
    """What kcat can show of a canonical line: its %h format cuts a header value at the first
    NUL byte and prints a null value as the text NULL, so expected lines are mapped the same
    way before they are compared with kcat's output. Everything else is compared exactly."""
    head, hdrs = line.rsplit(" ", 1)
    if hdrs == "-":
        return line
    parts = []
    for item in hdrs.split(","):
        k, v = item.split("=", 1)
        if v == "null":
            v = b"NULL".hex()
        else:
            raw = bytes.fromhex(v)
            v = raw.split(b"\0", 1)[0].hex()
        parts.append(f"{k}={v}")
    return head + " " + ",".join(parts)


def expected_for(client, lines):
    """The expected sorted lines as `client` can print them."""
    if client == "kcat":
        return sorted(kcat_view(l) for l in lines)
    return sorted(lines)


def dump_log(files, deep=False, timeout_s=120):
    """Kafka's own `kafka-dump-log.sh --files ...` (org.apache.kafka.tools.DumpLogSegments); its stdout."""
    args = ["--files", ",".join(files)]
    if deep:
        args.append("--deep-iteration")
    r = broker.java("org.apache.kafka.tools.DumpLogSegments", args, capture_output=True, timeout=timeout_s)
    if r.returncode != 0:
        raise ClientError(f"DumpLogSegments exited {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return r.stdout.decode()


def consumer_perf(bootstrap, topic, messages, timeout_s=600):
    """Kafka's consumer perf tool (org.apache.kafka.tools.ConsumerPerformance); its stdout."""
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(messages),
            "--timeout", str(timeout_s * 1000)]
    r = broker.java("org.apache.kafka.tools.ConsumerPerformance", args, capture_output=True, timeout=timeout_s + 60)
    if r.returncode != 0:
        raise ClientError(f"ConsumerPerformance exited {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    return r.stdout.decode()


def end_offsets(bootstrap, topic, timeout_s=30):
    """{partition: end offset} as the server at `bootstrap` reports it (kafka-python)."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=timeout_s * 1000)
    try:
        parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return {tp.partition: o for tp, o in c.end_offsets(tps).items()}
    finally:
        c.close()
