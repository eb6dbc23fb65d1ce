//! SCRAM logins per second (not a test): THREADS clients, each in a loop for SECONDS, open a new
//! connection to any Kafka server (logferry or a broker), send ApiVersions v3, SaslHandshake v1
//! and the two SaslAuthenticate v2 rounds of a SCRAM exchange (RFC 5802), check the server's
//! signature, and close; as a Java client does on every (re)connect.
//!
//! The client caches the salted password per salt and iteration count, so its own PBKDF2 (4,096
//! or more HMACs, milliseconds) is paid once and what is measured is the server: accepting the
//! connection, the TLS handshake on `SASL_SSL://`, the SCRAM check and the close. The servers
//! store only the derived keys (RFC 5802 §3), so neither one runs PBKDF2 per login either.
//!
//! Run: `cargo bench --bench scram_logins -- ADDRESS MECHANISM USER PASSWORD [THREADS]
//! [SECONDS]` with ADDRESS `SASL_PLAINTEXT://HOST:PORT` or `SASL_SSL://HOST:PORT` (TLS trusts
//! `LOGFERRY_BENCH_TLS_CA`). Prints one line: `logins=… seconds=… per_second=… p50_us=… p99_us=…`.

#[path = "common.rs"]
mod common;

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiVersionsRequest, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use logferry::auth::scram::{hi, Mechanism};
use logferry::auth::{base64_decode, base64_encode};

/// A SaslAuthenticate v2 response's error code and auth bytes (flexible: header tags, then
/// error_code, error_message compact nullable string, auth_bytes compact bytes).
fn auth_bytes(b: &[u8]) -> (i16, Vec<u8>) {
    let mut at = 4 + 1; // correlation id, header tags
    let error = i16::from_be_bytes([b[at], b[at + 1]]);
    at += 2;
    let msg = common::uvarint(b, &mut at) as usize;
    at += msg.saturating_sub(1);
    let len = common::uvarint(b, &mut at) as usize - 1;
    (error, b[at..at + len].to_vec())
}

struct Client {
    mechanism: Mechanism,
    user: String,
    password: String,
    salted: HashMap<(Vec<u8>, i32), Vec<u8>>,
}

impl Client {
    /// One login on a fresh connection; panics on any refusal (a benchmark of failures would
    /// measure the servers' failed-authentication delay instead).
    fn login(&mut self, addr: &str, n: u64) {
        let mut s = common::connect_raw(addr);
        let mut buf = Vec::new();
        let versions = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("logferry-bench"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        s.write_all(&common::request_frame(18, 3, 2, 1, &versions)).unwrap();
        common::read_response(&mut s, &mut buf);
        let hs = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(self.mechanism.name()));
        s.write_all(&common::request_frame(17, 1, 1, 2, &hs)).unwrap();
        let len = common::read_response(&mut s, &mut buf);
        assert_eq!(&buf[4..6.min(len)], &[0, 0], "SaslHandshake refused");
        let nonce = format!("bench{n:016x}{:08x}", std::process::id());
        let first_bare = format!("n={},r={nonce}", self.user);
        let first = format!("n,,{first_bare}");
        let auth = SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(first.into_bytes()));
        s.write_all(&common::request_frame(36, 2, 2, 3, &auth)).unwrap();
        let len = common::read_response(&mut s, &mut buf);
        let (error, server_first) = auth_bytes(&buf[..len]);
        assert_eq!(error, 0, "client-first refused");
        let server_first = String::from_utf8(server_first).unwrap();
        let field = |p: &str| server_first.split(',').find_map(|f| f.strip_prefix(p)).unwrap().to_string();
        let (full_nonce, salt, iterations) = (field("r="), base64_decode(&field("s=")).unwrap(), field("i="));
        assert!(full_nonce.starts_with(&nonce), "the server's nonce extends ours");
        let iterations: i32 = iterations.parse().unwrap();
        let (m, password) = (self.mechanism, self.password.as_bytes());
        let salted =
            self.salted.entry((salt.clone(), iterations)).or_insert_with(|| hi(m, password, &salt, iterations));
        let client_key = m.hmac(salted, b"Client Key");
        let without_proof = format!("c=biws,r={full_nonce}");
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let server_signature = m.hmac(&m.hmac(salted, b"Server Key"), auth_message.as_bytes());
        let last = format!("{without_proof},p={}", base64_encode(&proof));
        let auth = SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(last.into_bytes()));
        s.write_all(&common::request_frame(36, 2, 2, 4, &auth)).unwrap();
        let len = common::read_response(&mut s, &mut buf);
        let (error, server_final) = auth_bytes(&buf[..len]);
        assert_eq!(error, 0, "client-final refused: wrong password?");
        let v = String::from_utf8(server_final).unwrap();
        let v = base64_decode(v.strip_prefix("v=").expect("server-final v=")).unwrap();
        assert_eq!(v, server_signature, "the server proved it knows the credential");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() < 4 {
        eprintln!("usage: scram_logins ADDRESS MECHANISM USER PASSWORD [THREADS] [SECONDS]");
        std::process::exit(2);
    }
    let mechanism = Mechanism::from_name(&args[1]).expect("SCRAM-SHA-256 or SCRAM-SHA-512");
    let threads: usize = args.get(4).map_or(4, |s| s.parse().expect("threads"));
    let seconds: f64 = args.get(5).map_or(10.0, |s| s.parse().expect("seconds"));
    let t = Instant::now();
    let deadline = t + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let addr = args[0].clone();
            let mut c = Client { mechanism, user: args[2].clone(), password: args[3].clone(), salted: HashMap::new() };
            std::thread::spawn(move || {
                c.login(&addr, i as u64); // warm the salted-password cache outside the count
                let mut latencies_us = Vec::new();
                let mut n = 1u64;
                while Instant::now() < deadline {
                    let start = Instant::now();
                    c.login(&addr, ((i as u64) << 40) | n);
                    latencies_us.push(start.elapsed().as_micros() as u64);
                    n += 1;
                }
                latencies_us
            })
        })
        .collect();
    let mut all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().expect("client thread")).collect();
    let secs = t.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct =
        |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "logins={} seconds={secs:.3} per_second={:.1} p50_us={} p99_us={}",
        all.len(),
        all.len() as f64 / secs,
        pct(0.50),
        pct(0.99)
    );
}
