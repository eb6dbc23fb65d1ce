"""TLS (issue 14): a broker with SSL (client certificates required) and SASL_SSL (PLAIN from its
JAAS config, SCRAM-SHA-512 from the metadata log) listeners, its keystore and truststore PKCS12
files written by keytool, and logferry started with --broker-config on the same files and
nothing else. Every client (kcat, the Java consumer, franz-go, kafka-python) gets from logferry
what it gets from the broker with the same settings: user A reads topic `a`, sees only `a`, is
refused `b` with the same error; a wrong password fails on both; a SCRAM user added while
logferry runs works within seconds; the SSL listener's principal is the certificate subject.

The broker's PLAINTEXT listener (ANONYMOUS, a super user) is where the test writes, creates users
and sets ACLs. This kernel has no `tls` ULP, so kernel TLS is not exercised (logferry copies)."""
import contextlib
import os
import subprocess

import pytest

import broker
import clients
from pki import make_pki
from conftest import wait_for
from ferry import BIN, Ferry
from test_security import acl, as_user, scram_user, tool
from test_upstream import metric

JAAS_PLAIN = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";')
JAAS_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
ALICE = "PLAIN:alice:alice-secret"
SAM = "SCRAM-SHA-512:sam:sam-secret"
CAROL_DN = "CN=carol,OU=readers,O=logferry-e2e"


@contextlib.contextmanager
def tls_env(ca, cert=None, key=None):
    """Harness clients use TLS with LOGFERRY_TLS_CA (and a client certificate) while inside."""
    keys = {"LOGFERRY_TLS_CA": ca, "LOGFERRY_TLS_CERT": cert, "LOGFERRY_TLS_KEY": key}
    old = {k: os.environ.get(k) for k in keys}
    for k, v in keys.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    pki = make_pki(str(tmp_path_factory.mktemp("pki")))
    b = broker.Broker(str(tmp_path_factory.mktemp("kafka-tls")), heap="384m")
    b.ssl_port, b.sasl_ssl_port = broker.free_port(), broker.free_port()
    b.extra = {
        "listeners": f"PLAINTEXT://127.0.0.1:{b.port},SSL://127.0.0.1:{b.ssl_port},"
                     f"SASL_SSL://127.0.0.1:{b.sasl_ssl_port},CONTROLLER://127.0.0.1:{b.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{b.port},SSL://127.0.0.1:{b.ssl_port},"
                                f"SASL_SSL://127.0.0.1:{b.sasl_ssl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": pki["keystore"],
        "ssl.keystore.password": "ks-secret",
        "ssl.key.password": "ks-secret",
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": pki["truststore"],
        "ssl.truststore.password": "ts-secret",
        "listener.name.ssl.ssl.client.auth": "required",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS_PLAIN,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": JAAS_SCRAM,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin;User:ANONYMOUS",
    }
    b.start()
    b.ssl_bootstrap = f"127.0.0.1:{b.ssl_port}"
    b.sasl_ssl_bootstrap = f"127.0.0.1:{b.sasl_ssl_port}"
    clients.produce(b.bootstrap, "gzip", "a", 400, seed=7)
    clients.produce(b.bootstrap, "plain", "b", 300, seed=8)
    scram_user(b, "sam", "sam-secret", ["SCRAM-SHA-512"])
    for who in ("User:alice", "User:sam"):
        acl(b, "--add", "--allow-principal", who, "--operation", "Read", "--topic", "a")
        acl(b, "--add", "--allow-principal", who, "--operation", "Read", "--group", "g-a")
    acl(b, "--add", "--allow-principal", f"User:{CAROL_DN}", "--operation", "Read", "--topic", "b")
    port = broker.free_port()
    f = Ferry([b.log_dir], listen="SASL_SSL://127.0.0.1:0",
              extra=["--broker-config", b.conf, "--listen", "SSL://127.0.0.1:0", "--metrics-listen",
                     f"127.0.0.1:{port}"])
    f.metrics = f"127.0.0.1:{port}"
    f.sasl_ssl_bootstrap, f.ssl_bootstrap = f.listeners[0][1], f.listeners[1][1]
    assert [p for p, _ in f.listeners] == ["SASL_SSL", "SSL"], f.log[-3:]
    assert any(f"key and certificate from {pki['keystore']}" in l for l in f.log), f.log[-5:]
    with tls_env(pki["ca"]):
        wait_for(lambda: topics(f.sasl_ssl_bootstrap, SAM) == {"a"}, 30, "sam's ACL in logferry's image",
                 lambda: "\n".join(f.log[-10:]))
    yield b, f, pki
    f.stop()
    b.stop()


def topics(bootstrap, user=None):
    """The topics kafka-python is shown over TLS (LOGFERRY_TLS_*) as `user`; None when it
    cannot connect or authenticate."""
    import kafka
    import pyconsume
    with as_user(user) if user else contextlib.nullcontext():
        settings = pyconsume.sasl()
    try:
        c = kafka.KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10000, **settings)
    except Exception:
        return None
    try:
        return set(c.topics())
    except Exception:
        return None
    finally:
        c.close()


@pytest.mark.parametrize("client", clients.CLIENTS)
def test_user_a_reads_a_over_sasl_ssl_like_the_broker_serves_it(tls_cluster, client):
    b, f, pki = tls_cluster
    # Debian's kcat (librdkafka 2.0) cannot SCRAM with Kafka 4 (see test_security): PLAIN for it.
    user = ALICE if client == "kcat" else SAM
    with tls_env(pki["ca"]), as_user(user):
        got = clients.consume(client, f.sasl_ssl_bootstrap, "a")
        assert len(got) == 400
        assert got == clients.consume(client, b.sasl_ssl_bootstrap, "a")


@pytest.mark.parametrize("user", [ALICE, SAM])
def test_metadata_shows_only_a_and_b_is_refused_as_on_the_broker(tls_cluster, user):
    b, f, pki = tls_cluster
    with tls_env(pki["ca"]):
        assert topics(b.sasl_ssl_bootstrap, user) == {"a"}
        assert topics(f.sasl_ssl_bootstrap, user) == {"a"}
        with as_user(user):
            errors = []
            for bootstrap in (b.sasl_ssl_bootstrap, f.sasl_ssl_bootstrap):
                with pytest.raises(clients.ClientError) as e:
                    clients.consume("java", bootstrap, "b", timeout_s=20)
                errors.append("TopicAuthorizationException" in str(e.value))
            assert errors == [True, True]
    with tls_env(pki["ca"]), as_user(ALICE):
        for bootstrap in (b.sasl_ssl_bootstrap, f.sasl_ssl_bootstrap):
            r = subprocess.run(["kcat", "-C", "-b", bootstrap, *clients.kcat_sasl(), "-t", "b", "-o", "beginning",
                                "-e", "-q", "-m", "15"], capture_output=True, text=True, timeout=60)
            assert r.stdout == "" and "authorization failed" in r.stderr.lower(), (bootstrap, r.stderr[-500:])


def test_wrong_passwords_fail_on_both(tls_cluster):
    b, f, pki = tls_cluster
    before = metric(f, "sasl_authentication_failures")
    with tls_env(pki["ca"]):
        for wrong in ["PLAIN:alice:nope", "SCRAM-SHA-512:sam:nope", "SCRAM-SHA-512:nobody:x"]:
            assert topics(b.sasl_ssl_bootstrap, wrong) is None, wrong
            assert topics(f.sasl_ssl_bootstrap, wrong) is None, wrong
        with as_user("PLAIN:alice:nope"):
            for bootstrap in (b.sasl_ssl_bootstrap, f.sasl_ssl_bootstrap):
                with pytest.raises(clients.ClientError) as e:
                    clients.consume("java", bootstrap, "a", timeout_s=20)
                assert "SaslAuthenticationException" in str(e.value), str(e.value)[-500:]
    assert metric(f, "sasl_authentication_failures") >= before + 4
    assert metric(f, "tls_handshakes") > 0


def test_a_new_scram_user_works_within_seconds(tls_cluster):
    b, f, pki = tls_cluster
    tess = "SCRAM-SHA-512:tess:tess-secret"
    with tls_env(pki["ca"]):
        assert topics(f.sasl_ssl_bootstrap, tess) is None
        scram_user(b, "tess", "tess-secret", ["SCRAM-SHA-512"])
        acl(b, "--add", "--allow-principal", "User:tess", "--operation", "Read", "--topic", "a")
        wait_for(lambda: topics(f.sasl_ssl_bootstrap, tess) == {"a"}, 20, "tess to authenticate and see a")
        assert topics(b.sasl_ssl_bootstrap, tess) == {"a"}
        with as_user(tess):
            assert len(clients.consume("franz-go", f.sasl_ssl_bootstrap, "a")) == 400


@pytest.mark.parametrize("client", ["kcat", "java", "franz-go", "kafka-python"])
def test_the_ssl_listener_names_the_certificate_subject(tls_cluster, client):
    b, f, pki = tls_cluster
    # carol's certificate subject is her principal: her ACL lets her read b (and only b).
    with tls_env(pki["ca"], pki["carol_cert"], pki["carol_key"]):
        got = clients.consume(client, f.ssl_bootstrap, "b")
        assert len(got) == 300
        assert got == clients.consume(client, b.ssl_bootstrap, "b")
        if client == "kafka-python":
            assert topics(f.ssl_bootstrap) == topics(b.ssl_bootstrap) == {"b"}


def test_without_a_client_certificate_the_ssl_listener_refuses(tls_cluster):
    b, f, pki = tls_cluster
    before = metric(f, "tls_handshake_failures")
    with tls_env(pki["ca"]):
        assert topics(b.ssl_bootstrap) is None
        assert topics(f.ssl_bootstrap) is None
    wait_for(lambda: metric(f, "tls_handshake_failures") > before, 10, "the refused handshake to be counted")
    assert any("TLS" in l and "certificate" in l.lower() for l in f.log), f.log[-10:]
    # An X.509 v1 client certificate (openssl x509 -req without extensions): the broker takes it,
    # logferry's verifier (webpki) does not, and says how to reissue it. A known departure.
    with tls_env(pki["ca"], pki["old_cert"], pki["old_key"]):
        assert topics(b.ssl_bootstrap) is not None
        assert topics(f.ssl_bootstrap) is None
    wait_for(lambda: any("X.509 v1" in l for l in f.log), 10, "the v1 hint in the log")


def test_a_jks_keystore_is_refused_with_the_conversion_command(tls_cluster, tmp_path):
    b, f, pki = tls_cluster
    conf = tmp_path / "server.properties"
    text = open(b.conf).read().replace(f"ssl.keystore.location={pki['keystore']}",
                                       f"ssl.keystore.location={pki['jks']}")
    assert pki["jks"] in text
    conf.write_text(text.replace("ssl.keystore.type=PKCS12", "ssl.keystore.type=JKS"))
    r = subprocess.run([BIN, "serve", "--log-dir", b.log_dir, "--broker-config", str(conf), "--listen",
                        "SSL://127.0.0.1:0", "--state-dir", str(tmp_path / "state")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "JKS" in r.stderr and "keytool -importkeystore" in r.stderr, r.stderr


def upstream_ferry(b, pki, tmp_path, password):
    """A logferry whose upstream connection logs in to the broker's SASL_SSL listener as
    `ferry` with SCRAM-SHA-512, from a client properties file (--upstream-config)."""
    conf = tmp_path / f"upstream-{password}.properties"
    conf.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="ferry" password="{password}";\n'
        f"ssl.truststore.type=PKCS12\nssl.truststore.location={pki['truststore']}\nssl.truststore.password=ts-secret\n")
    os.chmod(conf, 0o600)
    return ["--upstream", f"localhost:{b.sasl_ssl_port}", "--upstream-config", str(conf)]


def test_the_upstream_connection_logs_in_over_sasl_ssl(tls_cluster, tmp_path):
    """logferry's own connection to the broker (the high watermark watch, the relayed group
    APIs) over SASL_SSL as a SCRAM user with only the ACLs it needs; a wrong password is refused
    at start with the broker's answer."""
    b, f, pki = tls_cluster
    scram_user(b, "ferry", "ferry-secret", ["SCRAM-SHA-512"])
    acl(b, "--add", "--allow-principal", "User:ferry", "--operation", "Read", "--topic", "*")
    acl(b, "--add", "--allow-principal", "User:ferry", "--operation", "Read", "--group", "*")
    acl(b, "--add", "--allow-principal", "User:ferry", "--operation", "Describe", "--cluster")
    r = subprocess.run([BIN, "serve", "--log-dir", b.log_dir, "--listen", "127.0.0.1:0", "--state-dir",
                        str(tmp_path / "state-wrong"), *upstream_ferry(b, pki, tmp_path, "wrong")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stderr[-2000:]
    assert "SCRAM-SHA-512 login as ferry refused" in r.stderr, r.stderr[-2000:]

    port = broker.free_port()
    g = Ferry([b.log_dir], extra=[*upstream_ferry(b, pki, tmp_path, "ferry-secret"),
                                  "--metrics-listen", f"127.0.0.1:{port}"])
    g.metrics = f"127.0.0.1:{port}"
    try:
        assert any("visibility upstream" in l for l in g.log), g.log[-5:]
        wait_for(lambda: metric(g, "upstream_connected") == 1, 30, "the watch over SASL_SSL",
                 lambda: "\n".join(g.log[-10:]))
        clients.produce(b.bootstrap, "plain", "up-tls", 60, seed=11)
        want = clients.end_offsets(b.bootstrap, "up-tls")
        wait_for(lambda: clients.end_offsets(g.bootstrap, "up-tls") == want, 30, "logferry's end offsets")
        before = metric(g, "upstream_responses")
        wait_for(lambda: metric(g, "upstream_responses") > before + 2, 10, "the watch to keep answering")
        assert metric(g, "upstream_reconnects") == 0, g.log[-10:]
        # The group APIs are relayed as ferry: the commit lands in the broker's __consumer_offsets.
        import kafka
        c = kafka.KafkaConsumer("up-tls", bootstrap_servers=g.bootstrap, group_id="g-up-tls",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                consumer_timeout_ms=15000, request_timeout_ms=30000)
        try:
            got = 0
            for _ in c:
                got += 1
                if got == 60:
                    break
            assert got == 60
            c.commit()
        finally:
            c.close()
        from test_upstream import committed
        assert sum(committed(b.bootstrap, "g-up-tls", "up-tls").values()) == 60
    finally:
        g.stop()
