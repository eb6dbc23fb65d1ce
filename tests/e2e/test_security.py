"""SASL and ACLs: logferry beside a broker that authenticates (PLAIN from its JAAS config, SCRAM
from the metadata log) and authorizes (StandardAuthorizer), with no security configuration of
logferry's own beyond --broker-config. Every answer is compared with the broker's own answer to
the same client with the same credentials: what each user may list and read, the refusals, the
failure messages, and a user and an ACL added and removed while logferry runs.

The broker's PLAINTEXT listener (ANONYMOUS, a super user here, as inter-broker listeners often
are) is where the test writes, creates users and sets ACLs; clients read over SASL_PLAINTEXT.
"""
import contextlib
import json
import os
import socket
import struct
import subprocess

import pytest

import broker
import clients
from conftest import wait_for
from ferry import Ferry
from test_upstream import metric  # noqa: E402

JAAS_PLAIN = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" '
              'user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";')
JAAS_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
ALICE = "PLAIN:alice:alice-secret"
BOB = "PLAIN:bob:bob-secret"
BOB_SCRAM = "SCRAM-SHA-256:bob:bob-scram"
CAROL = "SCRAM-SHA-512:carol:carol-secret"


@contextlib.contextmanager
def as_user(spec):
    """Harness clients authenticate with LOGFERRY_SASL=MECH:USER:PASSWORD while inside."""
    old = os.environ.get("LOGFERRY_SASL")
    os.environ["LOGFERRY_SASL"] = spec
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LOGFERRY_SASL", None)
        else:
            os.environ["LOGFERRY_SASL"] = old


def tool(main, args):
    r = broker.java(main, args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{main} {args}: {r.stdout}{r.stderr}"
    return r.stdout


def scram_user(b, name, password, mechanisms=("SCRAM-SHA-256", "SCRAM-SHA-512")):
    # One mechanism per request: the broker refuses two alterations of one user at once.
    for m in mechanisms:
        tool("org.apache.kafka.tools.ConfigCommand",
             ["--bootstrap-server", b.bootstrap, "--alter", "--add-config", f"{m}=[iterations=4096,password={password}]",
              "--entity-type", "users", "--entity-name", name])


def acl(b, *args):
    tool("org.apache.kafka.tools.AclCommand", ["--bootstrap-server", b.bootstrap, *args])


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    b = broker.Broker(str(tmp_path_factory.mktemp("kafka-secure")), heap="384m")
    b.sasl_port = broker.free_port()
    b.extra = {
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{b.sasl_port},"
                     f"CONTROLLER://127.0.0.1:{b.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{b.port},SASL_PLAINTEXT://127.0.0.1:{b.sasl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS_PLAIN,
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": JAAS_SCRAM,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": JAAS_SCRAM,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin;User:ANONYMOUS",
    }
    b.start()
    b.sasl_bootstrap = f"127.0.0.1:{b.sasl_port}"
    for topic, workload, n in [("open", "gzip", 400), ("secret", "plain", 300), ("logs-app", "zstd", 300)]:
        clients.produce(b.bootstrap, workload, topic, n, seed=5)
    scram_user(b, "bob", "bob-scram", ["SCRAM-SHA-256"])
    scram_user(b, "carol", "carol-secret")
    acl(b, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--topic", "open")
    acl(b, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--group", "g-alice")
    acl(b, "--add", "--allow-principal", "User:bob", "--operation", "Read", "--topic", "*")
    acl(b, "--add", "--deny-principal", "User:bob", "--operation", "Read", "--topic", "secret")
    acl(b, "--add", "--allow-principal", "User:carol", "--operation", "Read", "--topic", "logs-",
        "--resource-pattern-type", "prefixed")
    port = broker.free_port()
    f = Ferry([b.log_dir], listen="SASL_PLAINTEXT://127.0.0.1:0",
              extra=["--broker-config", b.conf, "--listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{port}"])
    f.metrics = f"127.0.0.1:{port}"
    f.sasl_bootstrap = f.listeners[0][1]
    f.plain_bootstrap = f.listeners[1][1]
    assert [p for p, _ in f.listeners] == ["SASL_PLAINTEXT", "PLAINTEXT"], f.log[-3:]
    assert topics(b.sasl_bootstrap, CAROL) == {"logs-app"}, "the broker serves carol"
    # The last ACL is in logferry's image before any test looks.
    wait_for(lambda: topics(f.sasl_bootstrap, CAROL) == {"logs-app"}, 30, "carol's ACL in logferry's image",
             lambda: "\n".join(f.log[-10:]))
    yield b, f
    f.stop()
    b.stop()


def metadata(bootstrap, user=None):
    """kcat -L -J as `user`: (returncode, parsed JSON or stderr)."""
    cmd = ["kcat", "-L", "-J", "-b", bootstrap, "-m", "5"]
    if user:
        with as_user(user):
            cmd[1:1] = clients.kcat_sasl()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return (0, json.loads(r.stdout)) if r.returncode == 0 else (r.returncode, r.stderr)


def topics(bootstrap, user):
    """The topics `user` is shown, None when it cannot authenticate. PLAIN through kcat; SCRAM
    through kafka-python: librdkafka before 2.6.1 (Debian's kcat) repeats the client nonce in its
    final SCRAM message, which Kafka 4 refuses (librdkafka PR #4895), and so does logferry."""
    if user.startswith("PLAIN:"):
        rc, md = metadata(bootstrap, user)
        return {t["topic"] for t in md["topics"]} if rc == 0 else None
    import kafka
    mech, name, password = user.split(":", 2)
    try:
        c = kafka.KafkaConsumer(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT",
                                sasl_mechanism=mech, sasl_plain_username=name, sasl_plain_password=password,
                                request_timeout_ms=10000)
    except Exception:
        return None
    try:
        return set(c.topics())
    except Exception:
        return None
    finally:
        c.close()


@pytest.mark.parametrize("user", [ALICE, BOB, BOB_SCRAM, CAROL, "PLAIN:admin:admin-secret"])
def test_each_user_lists_the_topics_the_broker_lists(secure, user):
    b, f = secure
    want = topics(b.sasl_bootstrap, user)
    assert want is not None
    assert topics(f.sasl_bootstrap, user) == want
    # Sanity of the ACLs themselves (the broker's view): nobody sees everything but admin and bob.
    if user == ALICE:
        assert want == {"open"}
    if user == BOB:
        assert {"open", "secret", "logs-app"} <= want, "DENY READ does not deny DESCRIBE"


@pytest.mark.parametrize("client", clients.CLIENTS)
def test_alice_reads_her_topic_like_the_broker_serves_it(secure, client):
    b, f = secure
    with as_user(ALICE):
        got = clients.consume(client, f.sasl_bootstrap, "open")
        assert len(got) == 400
        assert got == clients.consume(client, b.sasl_bootstrap, "open")


@pytest.mark.parametrize("client", ["java", "franz-go", "kafka-python"])
def test_scram_users_read_through_prefixed_and_wildcard_acls(secure, client):
    b, f = secure
    with as_user(CAROL):
        got = clients.consume(client, f.sasl_bootstrap, "logs-app")
        assert len(got) == 300
        assert got == clients.consume(client, b.sasl_bootstrap, "logs-app")
    with as_user(BOB_SCRAM):
        assert len(clients.consume(client, f.sasl_bootstrap, "open")) == 400


def test_old_librdkafka_scram_is_refused_as_the_broker_refuses_it(secure):
    b, f = secure
    for bootstrap in (b.sasl_bootstrap, f.sasl_bootstrap):
        rc, err = metadata(bootstrap, CAROL)
        assert rc != 0 and "Authentication failed" in err, (bootstrap, err[-500:])
    assert any("Invalid client nonce in the final client message" in l for l in f.log)


def kcat_read(bootstrap, user, topic):
    with as_user(user):
        cmd = ["kcat", "-C", "-b", bootstrap, *clients.kcat_sasl(), "-t", topic, "-o", "beginning", "-e", "-q",
               "-m", "15"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_denied_reads_fail_as_on_the_broker(secure):
    b, f = secure
    # bob may describe secret (DENY READ leaves DESCRIBE) but not read it; alice may not even see it.
    for user, topic in [(BOB, "secret"), (ALICE, "secret"), (ALICE, "logs-app")]:
        on_broker = kcat_read(b.sasl_bootstrap, user, topic)
        here = kcat_read(f.sasl_bootstrap, user, topic)
        assert on_broker.stdout == "" and here.stdout == "", (user, topic)
        assert "authorization failed" in on_broker.stderr.lower(), on_broker.stderr
        assert "authorization failed" in here.stderr.lower(), (user, topic, here.stderr)
    # The Java consumer names the same exception from both.
    with as_user(CAROL):
        errors = []
        for bootstrap in (b.sasl_bootstrap, f.sasl_bootstrap):
            with pytest.raises(clients.ClientError) as e:
                clients.consume("java", bootstrap, "open", timeout_s=20)
            errors.append("TopicAuthorizationException" in str(e.value))
        assert errors == [True, True]


def run_until(cmd, done, timeout_s):
    """Runs cmd until done(stdout, stderr) says so (or the timeout); then stops it. (out, err)."""
    import threading
    import time
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = [], []
    for stream, sink in ((p.stdout, out), (p.stderr, err)):
        threading.Thread(target=lambda st=stream, sk=sink: [sk.append(l) for l in iter(st.readline, b"")],
                         daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and p.poll() is None and not done(b"".join(out), b"".join(err)):
        time.sleep(0.2)
    p.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(10)
    if p.poll() is None:
        p.kill()
    return b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace")


def test_groups_need_the_group_acl(secure):
    b, f = secure
    # alice may read group g-alice; group g-other is not hers: the broker and logferry refuse it.
    for bootstrap in (b.sasl_bootstrap, f.sasl_bootstrap):
        with as_user(ALICE):
            group = ["kcat", "-b", bootstrap, *clients.kcat_sasl(), "-q", "-f", "%p %o\\n",
                     "-X", "auto.offset.reset=earliest", "-G"]
        out, err = run_until(group + ["g-alice", "open"], lambda o, e: o.count(b"\n") >= 400, 90)
        assert out.count("\n") == 400, (bootstrap, err[-1000:])
        out, err = run_until(group + ["g-other", "open"], lambda o, e: b"authorization failed" in e.lower(), 60)
        assert out == "" and "group authorization failed" in err.lower(), (bootstrap, err[-1000:])


def test_bad_credentials_are_refused_with_the_brokers_message_after_a_delay(secure):
    b, f = secure
    before = metric(f, "sasl_authentication_failures")
    for wrong in ["PLAIN:alice:nope", "PLAIN:nobody:x"]:
        (rc_broker, on_broker), (rc_here, here) = metadata(b.sasl_bootstrap, wrong), metadata(f.sasl_bootstrap, wrong)
        assert rc_broker != 0 and rc_here != 0
        assert "Authentication failed" in on_broker, on_broker
        # librdkafka prints the server's message: the same text from both.
        msg = [l for l in on_broker.splitlines() if "Authentication failed" in l][0]
        reason = msg[msg.index("Authentication failed"):].split(" (after")[0]
        assert reason in here, (reason, here)
    for wrong in ["SCRAM-SHA-256:bob:nope", "SCRAM-SHA-512:nobody:x"]:
        assert topics(b.sasl_bootstrap, wrong) is None and topics(f.sasl_bootstrap, wrong) is None
    assert metric(f, "sasl_authentication_failures") >= before + 4
    assert any("SASL authentication failed for user alice" in l for l in f.log)
    assert any("SASL authentication failed for user nobody" in l for l in f.log)


def raw_request(addr, api_key, version, body=b""):
    """One request on a fresh connection; the response frame, or None if the server closed."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        header = struct.pack(">hhi", api_key, version, 1) + struct.pack(">h", 4) + b"test"
        payload = header + body
        s.sendall(struct.pack(">i", len(payload)) + payload)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data or None
            data += chunk
            if len(data) >= 4 and len(data) >= 4 + struct.unpack(">i", data[:4])[0]:
                return data


def test_nothing_but_the_handshake_before_authentication(secure):
    b, f = secure
    # Metadata v1 (empty topic array = null is -1) before SaslHandshake: the connection closes.
    assert raw_request(f.sasl_bootstrap, 3, 1, struct.pack(">i", -1)) is None
    assert raw_request(b.sasl_bootstrap, 3, 1, struct.pack(">i", -1)) is None, "the broker closes too"
    wait_for(lambda: any("during SASL handshake" in l for l in f.log), 10, "the log line")
    # An oversized pre-authentication frame (above sasl.server.max.receive.size) closes too.
    host, port = f.sasl_bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", 600 * 1024) + b"\0" * 1024)
        assert s.recv(16) == b""
    # A PLAINTEXT client on the SASL listener gets no data (kcat fails), as on the broker.
    r = subprocess.run(["kcat", "-L", "-b", f.sasl_bootstrap, "-m", "5"], capture_output=True, timeout=60)
    assert r.returncode != 0


def test_the_plaintext_listener_is_anonymous_as_on_the_broker(secure):
    b, f = secure
    # ANONYMOUS is a super user in this cluster's server.properties: it sees what the broker shows.
    rc, md = metadata(f.plain_bootstrap)
    assert rc == 0
    assert {"open", "secret", "logs-app"} <= {t["topic"] for t in md["topics"]}
    # Each listener advertises itself: a client stays on the protocol it came with.
    assert [x["name"] for x in md["brokers"]] == [f.plain_bootstrap]
    rc, md = metadata(f.sasl_bootstrap, ALICE)
    assert rc == 0 and [x["name"] for x in md["brokers"]] == [f.sasl_bootstrap]


def test_users_and_acls_added_and_removed_take_effect_live(secure):
    b, f = secure
    dave = "SCRAM-SHA-512:dave:dave-secret"
    assert topics(f.sasl_bootstrap, dave) is None, "no such user yet"
    scram_user(b, "dave", "dave-secret", ["SCRAM-SHA-512"])
    acl(b, "--add", "--allow-principal", "User:dave", "--operation", "Describe", "--topic", "secret")
    wait_for(lambda: topics(f.sasl_bootstrap, dave) == {"secret"}, 30, "dave to authenticate and see secret")
    assert topics(b.sasl_bootstrap, dave) == {"secret"}
    acl(b, "--remove", "--force", "--allow-principal", "User:dave", "--operation", "Describe", "--topic", "secret")
    wait_for(lambda: topics(f.sasl_bootstrap, dave) == set(), 30, "dave's ACL to be gone")
    tool("org.apache.kafka.tools.ConfigCommand", ["--bootstrap-server", b.bootstrap, "--alter", "--delete-config",
                                                 "SCRAM-SHA-512", "--entity-type", "users", "--entity-name", "dave"])
    wait_for(lambda: topics(f.sasl_bootstrap, dave) is None, 30, "dave's credential to be gone")
    assert metric(f, "sasl_authentications") > 0


def test_sessions_expire_and_the_java_client_reauthenticates(secure, tmp_path):
    import re
    import time
    b, f = secure
    # The broker's file with a session lifetime (KIP-368) on its SASL listener: logferry reads it
    # from there, reports it in SaslAuthenticate and holds clients to it.
    conf = tmp_path / "server.properties"
    conf.write_text(open(b.conf).read() + "listener.name.sasl_plaintext.connections.max.reauth.ms=3000\n")
    g = Ferry([b.log_dir], listen="SASL_PLAINTEXT://127.0.0.1:0", extra=["--broker-config", str(conf)])
    try:
        with as_user(ALICE):
            m = clients.GroupMember("java", g.bootstrap, "open", "g-alice", str(tmp_path / "member.out"))
        try:
            wait_for(lambda: len(m.lines()) >= 400, 120, "the member to read the topic", m.stderr_tail)
            time.sleep(10)  # three session lifetimes on the same connections
            assert m.alive(), m.stderr_tail()
        finally:
            m.stop()
        assert len(m.lines()) == 400
        per_conn = {}
        for line in g.log:
            hit = re.search(r"conn=(\d+) .*authenticated as User:alice", line)
            if hit:
                per_conn[hit.group(1)] = per_conn.get(hit.group(1), 0) + 1
        assert max(per_conn.values()) >= 3, per_conn
        assert not any("expired" in l for l in g.log), [l for l in g.log if "expired" in l]
    finally:
        g.stop()


def list_groups(bootstrap, user):
    import kafka
    mech, name, password = user.split(":", 2)
    a = kafka.KafkaAdminClient(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism=mech,
                               sasl_plain_username=name, sasl_plain_password=password, request_timeout_ms=15000)
    try:
        return sorted(g["group_id"] if isinstance(g, dict) else g[0] for g in a.list_groups())
    finally:
        a.close()


def test_relayed_groups_are_the_callers_own(secure, tmp_path):
    b, f = secure
    admin = "PLAIN:admin:admin-secret"
    # Two groups on the broker: one alice may use, one only the admin can.
    acl(b, "--add", "--allow-principal", "User:alice", "--operation", "Read", "--group", "g-relay")
    for user, group in [(ALICE, "g-relay"), (admin, "g-admin-only")]:
        with as_user(user):
            cmd = ["kcat", "-b", b.sasl_bootstrap, *clients.kcat_sasl(), "-q", "-f", "%o\\n",
                   "-X", "auto.offset.reset=earliest", "-G", group, "open"]
        out, err = run_until(cmd, lambda o, e: o.count(b"\n") >= 400, 90)
        assert out.count("\n") == 400, err[-500:]
    g = Ferry([b.log_dir], listen="SASL_PLAINTEXT://127.0.0.1:0",
              extra=["--broker-config", b.conf, "--upstream", b.bootstrap, "--groups", "upstream"])
    try:
        wait_for(lambda: "g-admin-only" in list_groups(b.sasl_bootstrap, admin), 30, "the broker to list the groups")
        # The broker lists every group to logferry's (super) connection; each caller gets its own view.
        assert list_groups(g.bootstrap, admin) == list_groups(b.sasl_bootstrap, admin)
        mine = list_groups(g.bootstrap, ALICE)
        assert mine == list_groups(b.sasl_bootstrap, ALICE)
        assert "g-relay" in mine and "g-admin-only" not in mine, mine
        # A group alice may not use is refused here, not relayed under logferry's identity.
        with as_user(ALICE):
            cmd = ["kcat", "-b", g.bootstrap, *clients.kcat_sasl(), "-q", "-G", "g-admin-only", "open"]
        out, err = run_until(cmd, lambda o, e: b"authorization failed" in e.lower(), 60)
        assert out == "" and "group authorization failed" in err.lower(), err[-1000:]
    finally:
        g.stop()
