//! TLS listeners (issue 14) as a black box: a throwaway CA and certificates made by `rcgen`,
//! `logferry serve` with an SSL or SASL_SSL `--listen`, and a rustls client. The bytes a Fetch
//! returns over TLS (copied into the session) equal the plaintext listener's (sent with
//! `sendfile`) for both TLS versions; client certificates are checked when required; and bad
//! input on a TLS port (garbage, plaintext Kafka, a stall, a thousand unfinished handshakes)
//! costs only its own connection, with a log line and a metric.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use crate::serve::{append_visible, fetch_req, list_offsets, serve, Client};
use crate::util::batch;

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate (CN=alice),
/// as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivatePkcs8KeyDer<'static>,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "logferry test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, &ca_key);

        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        std::fs::write(dir.path().join("server.pem"), server_cert.pem() + &ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();

        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
        std::fs::write(dir.path().join("client.pem"), client_key.serialize_pem() + &client_cert.pem()).unwrap();
        Pki {
            ca: ca_cert.der().clone(),
            client_chain: vec![client_cert.der().clone()],
            client_key: PrivatePkcs8KeyDer::from(client_key.serialize_der()),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn flags(&self) -> Vec<String> {
        vec!["--tls-cert".into(), self.path("server.pem"), "--tls-key".into(), self.path("server.key")]
    }

    fn client_config(
        &self,
        version: &'static rustls::SupportedProtocolVersion,
        with_cert: bool,
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots);
        Arc::new(if with_cert {
            b.with_client_auth_cert(self.client_chain.clone(), PrivateKeyDer::Pkcs8(self.client_key.clone_key()))
                .unwrap()
        } else {
            b.with_no_client_auth()
        })
    }

    /// A TLS session to `addr`, its handshake done (the first write drives it).
    fn connect(&self, addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<Client<TlsStream>> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
        let conn = rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(Client::over(s))
    }
}

fn args<'a>(v: &'a [String], more: &[&'a str]) -> Vec<&'a str> {
    v.iter().map(String::as_str).chain(more.iter().copied()).collect()
}

/// One Fetch of `plain-<partition>` from `offset`, as the raw response frame.
fn raw_fetch<S: Read + Write>(c: &mut Client<S>, partition: i32, offset: i64) -> Vec<u8> {
    let f = c.frame(12, &fetch_req("plain", uuid::Uuid::nil(), partition, offset, 0));
    c.s.write_all(&f).unwrap();
    c.read_frame().unwrap().to_vec()
}

/// A sample of the metrics endpoint; 0 for a labelled series not yet created.
pub fn metric(addr: &str, name: &str) -> u64 {
    let text = crate::service::http_get(addr, "/metrics");
    assert!(text.contains(name.split('{').next().unwrap_or(name)), "{name} not in {text}");
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

pub fn metrics_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("127.0.0.1:{port}")
}

#[test]
fn a_fetch_over_tls_returns_the_bytes_the_plaintext_listener_sends() {
    let pki = Pki::new();
    let m = metrics_addr();
    let flags = pki.flags();
    let s = serve(&args(&flags, &["--listen", "SSL://127.0.0.1:0", "--metrics-listen", &m, "--visibility", "log-end"]));
    let tls_addr = s.addr_of("SSL");
    let mut plain = Client::connect(s.addr);
    // Batches larger than the TLS copy buffer (128 KiB), so a response takes many rounds.
    let mut offsets = vec![0];
    for (i, fill) in [0x11u8, 0x22, 0x33].into_iter().enumerate() {
        let end = list_offsets(&mut plain, 5, "plain", 0, -1, -1, 0).offset;
        offsets.push(end);
        append_visible(&s, &mut plain, 0, &batch(end, 3, 1_700_000_000_000 + i as i64, 100_000 + i * 7, fill));
    }
    let mut sent_before = metric(&m, "logferry_sent_bytes_total{path=\"tls\"}");
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut tls = pki.connect(tls_addr, pki.client_config(version, false)).unwrap();
        assert_eq!(tls.s.conn.protocol_version(), Some(version.version));
        let mut plain = Client::connect(s.addr);
        // The same requests (same correlation ids) on both: the same frames, byte for byte.
        // Partition max bytes is 1 MiB: from offset 0 all three big batches come at once.
        for &offset in &offsets {
            let a = raw_fetch(&mut plain, 0, offset);
            let b = raw_fetch(&mut tls, 0, offset);
            assert_eq!(a.len(), b.len(), "{version:?} at offset {offset}");
            assert!(a == b, "{version:?}: the TLS response differs at offset {offset}");
            assert!(a.len() > 100_000, "{} bytes", a.len());
        }
        let sent = metric(&m, "logferry_sent_bytes_total{path=\"tls\"}");
        assert!(sent - sent_before > 900_000, "{sent} {sent_before}");
        sent_before = sent;
        // An orderly close_notify ends the session.
        tls.s.conn.send_close_notify();
        let _ = tls.s.flush();
    }
    assert!(metric(&m, "logferry_tls_handshakes_total") >= 2);
    assert_eq!(metric(&m, "logferry_tls_handshake_failures_total"), 0);
}

#[test]
fn client_certificates_when_required() {
    let pki = Pki::new();
    let m = metrics_addr();
    let ca = pki.path("ca.pem");
    let flags = pki.flags();
    let s = serve(&args(
        &flags,
        &[
            "--listen",
            "SSL://127.0.0.1:0",
            "--tls-client-ca",
            &ca,
            "--tls-client-auth",
            "required",
            "--metrics-listen",
            &m,
        ],
    ));
    let addr = s.addr_of("SSL");
    let mut alice = pki.connect(addr, pki.client_config(&rustls::version::TLS13, true)).unwrap();
    assert_eq!(alice.call(3, &ApiVersionsRequest::default()).error_code, 0);
    // Without a certificate the server refuses the session: TLS 1.3 tells the client on its
    // first read after the handshake.
    let refused = pki.connect(addr, pki.client_config(&rustls::version::TLS13, false)).and_then(|mut c| {
        let f = c.frame(3, &ApiVersionsRequest::default());
        c.s.write_all(&f)?;
        c.read_frame().map(|_| ())
    });
    assert!(refused.is_err(), "a session without a client certificate was served");
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&m, "logferry_tls_handshake_failures_total") < 1 {
        assert!(Instant::now() < deadline, "the refused handshake is not counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(alice.call(3, &ApiVersionsRequest::default()).error_code, 0, "others unaffected");
    // Bad flags get a precise refusal.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["serve", "--log-dir", s.logdir().to_str().unwrap(), "--listen", "SSL://127.0.0.1:0"])
        .args(["--state-dir", pki.dir.path().join("state").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a certificate and key"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_logferry"))
        .args(["serve", "--log-dir", s.logdir().to_str().unwrap(), "--listen", "SSL://127.0.0.1:0"])
        .args(["--state-dir", pki.dir.path().join("state").to_str().unwrap()])
        .args(["--tls-cert", &ca, "--tls-key", &ca])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key"), "{err}");
}

#[test]
fn sasl_ssl_authenticates_inside_the_session() {
    let pki = Pki::new();
    let users = pki.dir.path().join("users");
    std::fs::write(&users, "alice=alice-secret\n").unwrap();
    let users = users.display().to_string();
    let flags = pki.flags();
    let s = serve(&args(&flags, &["--listen", "SASL_SSL://127.0.0.1:0", "--sasl-plain-users", &users]));
    let addr = s.addr_of("SASL_SSL");
    let config = pki.client_config(&rustls::version::TLS13, false);
    for (password, code) in [("alice-secret", 0), ("wrong", 58)] {
        let mut c = pki.connect(addr, config.clone()).unwrap();
        // Before authentication only ApiVersions and the SASL APIs: Metadata closes.
        let h = c.call(1, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")));
        assert_eq!(h.error_code, 0);
        let token = format!("\0alice\0{password}");
        let a = c.call(2, &SaslAuthenticateRequest::default().with_auth_bytes(token.into_bytes().into()));
        assert_eq!(a.error_code, code, "{password}");
        if code == 0 {
            let md = c.call(12, &MetadataRequest::default().with_topics(None));
            assert!(md.topics.iter().any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("plain")));
            let f = raw_fetch(&mut c, 1, 0);
            assert!(f.len() > 1000);
        } else {
            assert!(c.closed(), "a failed authentication closes the connection");
        }
    }
    // A Fetch before authenticating closes the connection.
    let mut early = pki.connect(addr, config).unwrap();
    let f = early.frame(12, &fetch_req("plain", uuid::Uuid::nil(), 0, 0, 0));
    early.s.write_all(&f).unwrap();
    assert!(early.read_frame().is_err(), "a Fetch before authentication is answered");
}

/// The first `n` bytes of a real ClientHello: a handshake that starts and never finishes.
fn partial_client_hello(pki: &Pki, n: usize) -> Vec<u8> {
    let mut conn = rustls::ClientConnection::new(
        pki.client_config(&rustls::version::TLS13, false),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    assert!(hello.len() > n);
    hello.truncate(n);
    hello
}

fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an alert
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[test]
fn bad_input_on_a_tls_port_costs_only_its_connection() {
    let pki = Pki::new();
    let m = metrics_addr();
    let flags = pki.flags();
    let s = serve(&args(
        &flags,
        &["--listen", "SSL://127.0.0.1:0", "--metrics-listen", &m, "--tls-handshake-ms-max", "1500"],
    ));
    let addr = s.addr_of("SSL");
    let config = pki.client_config(&rustls::version::TLS13, false);
    let mut good = pki.connect(addr, config.clone()).unwrap();
    assert_eq!(good.call(3, &ApiVersionsRequest::default()).error_code, 0);

    // TLS garbage: a handshake record header around junk.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(b"\x16\x03\x01\x00\x10this is not tls!").unwrap();
    assert!(closed_within(&mut garbage, Duration::from_secs(5)), "TLS garbage");
    // A plaintext Kafka request on the TLS port.
    let mut plain = Client::connect(addr);
    let f = plain.frame(3, &ApiVersionsRequest::default());
    plain.s.write_all(&f).unwrap();
    assert!(closed_within(&mut plain.s, Duration::from_secs(5)), "plaintext on a TLS port");
    // A handshake that stalls: closed after --tls-handshake-ms-max.
    let mut stall = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    stall.write_all(&partial_client_hello(&pki, 40)).unwrap();
    assert!(closed_within(&mut stall, Duration::from_secs(8)), "a stalled handshake stays open");
    assert!(t.elapsed() >= Duration::from_millis(1400), "closed before the limit: {:?}", t.elapsed());
    assert_eq!(metric(&m, "logferry_tls_handshake_failures_total"), 3);

    // A thousand connections that start a handshake and never finish it.
    let baseline = rss_bytes(s.pid());
    let hello = partial_client_hello(&pki, 100);
    let mut idle: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&hello).unwrap();
            c
        })
        .collect();
    // Meanwhile others are served, over TLS and plaintext.
    for _ in 0..3 {
        let mut c = pki.connect(addr, config.clone()).unwrap();
        assert_eq!(c.call(3, &ApiVersionsRequest::default()).error_code, 0);
        assert_eq!(good.call(3, &ApiVersionsRequest::default()).error_code, 0);
        assert!(raw_fetch(&mut Client::connect(s.addr), 1, 0).len() > 1000);
    }
    let peak = rss_bytes(s.pid());
    eprintln!("1000 unfinished TLS handshakes: RSS {} MiB -> {} MiB", baseline >> 20, peak >> 20);
    assert!(peak < baseline + (64 << 20), "RSS grew from {baseline} to {peak}");
    for c in idle.iter_mut() {
        assert!(closed_within(c, Duration::from_secs(10)), "an unfinished handshake outlived the limit");
    }
    let failures = metric(&m, "logferry_tls_handshake_failures_total");
    assert_eq!(failures, 1003);
    assert_eq!(good.call(3, &ApiVersionsRequest::default()).error_code, 0, "the idle session is not a handshake");
}

/// Polls `f` until it holds (10 s at most).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The upstream connection over SASL_SSL and over SSL with a client certificate: one logferry
/// (a SASL_SSL listener whose sessions last 1.5 s, KIP-368; an SSL listener that requires
/// client certificates) is the upstream of another, which logs in with `--upstream-config`
/// properties as the Kafka tools write them, keeps its watch through several re-logins, and
/// refuses to start with a wrong password or an untrusted broker.
#[test]
fn the_upstream_connection_logs_in_over_tls_and_again_before_its_session_ends() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let broker = dir.join("upstream.properties");
    std::fs::write(
        &broker,
        "log.dirs=/nonexistent\n\
         listeners=SASL_SSL://127.0.0.1:9093,SSL://127.0.0.1:9094\n\
         sasl.enabled.mechanisms=PLAIN\n\
         listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \
         required user_ferry=\"ferry-secret\";\n\
         connections.max.reauth.ms=1500\n",
    )
    .unwrap();
    let (um, ca) = (metrics_addr(), pki.path("ca.pem"));
    let flags = pki.flags();
    let upstream = serve(&args(
        &flags,
        &[
            "--broker-config",
            broker.to_str().unwrap(),
            "--listen",
            "SASL_SSL://127.0.0.1:0",
            "--listen",
            "SSL://127.0.0.1:0",
            "--tls-client-ca",
            &ca,
            "--tls-client-auth",
            "required",
            "--metrics-listen",
            &um,
        ],
    ));
    let props = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&p).unwrap().permissions(), 0o600);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        p.display().to_string()
    };
    // The SSL listener's --tls-client-auth applies to SASL_SSL too: a client certificate on both.
    let client = pki.path("client.pem");
    let sasl_ssl = |password: &str| {
        props(
            &format!("sasl-{password}.properties"),
            format!(
                "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\nssl.truststore.type=PEM\n\
                 ssl.truststore.location={ca}\nssl.keystore.type=PEM\nssl.keystore.location={client}\n\
                 sasl.jaas.config=org.apache.kafka.common.security.plain.\
                 PlainLoginModule required username=\"ferry\" password=\"{password}\";\n"
            ),
        )
    };
    let host = |protocol: &str| format!("localhost:{}", upstream.addr_of(protocol).port());

    // SASL_SSL: logged in, watching, and still watching after several 1.5 s sessions.
    let dm = metrics_addr();
    let good = sasl_ssl("ferry-secret");
    let up = host("SASL_SSL");
    let _down = serve(&["--upstream", &up, "--upstream-config", &good, "--metrics-listen", &dm]);
    eventually("the watch over SASL_SSL", || metric(&dm, "logferry_upstream_connected") == 1);
    let logins = metric(&um, "logferry_sasl_authentications_total");
    std::thread::sleep(Duration::from_millis(4000));
    assert!(
        metric(&um, "logferry_sasl_authentications_total") >= logins + 2,
        "no re-login within two session lifetimes"
    );
    assert_eq!(metric(&dm, "logferry_upstream_connected"), 1);
    assert_eq!(metric(&dm, "logferry_upstream_reconnects_total"), 0, "a session ran out: the broker closed it");
    assert!(metric(&dm, "logferry_upstream_responses_total") > 5);

    // SSL with a client certificate (PEM keystore).
    let ssl = props(
        "ssl.properties",
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={client}\n"
        ),
    );
    let sm = metrics_addr();
    let up_ssl = host("SSL");
    let _cert = serve(&["--upstream", &up_ssl, "--upstream-config", &ssl, "--metrics-listen", &sm]);
    eventually("the watch over SSL", || metric(&sm, "logferry_upstream_connected") == 1);

    // A wrong password, a CA that did not sign the broker's certificate: each a refusal at
    // start that says why.
    let other_ca = Pki::new();
    let untrusted = props(
        "untrusted.properties",
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n",
            other_ca.path("ca.pem")
        ),
    );
    for (addr, config, want) in [
        (up.as_str(), sasl_ssl("wrong"), "login as ferry refused"),
        (up_ssl.as_str(), untrusted, "invalid peer certificate"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_logferry"))
            .args(["serve", "--log-dir", upstream.logdir().to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(["--state-dir", dir.join("state-refused").to_str().unwrap()])
            .args(["--upstream", addr, "--upstream-config", &config])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{want}: started anyway: {err}");
        assert!(err.contains(want), "{want}: {err}");
    }
}
