//! The bytes of a connection logferry opens to its upstream broker (the high watermark watch,
//! the relayed group APIs, the start-up probe): plain TCP or a rustls client session over it,
//! and, on SASL protocols, logferry's own login before any other request, and again before the
//! broker's session lifetime runs out (KIP-368). Owns the TLS session, the login exchange and
//! its timing; the callers see only their own frames, so the watcher ([`super::upstream`]) stays
//! the same whatever the protocol.
//!
//! ```text
//!   connect ─▶ [TLS handshake] ─▶ [SaslHandshake v1 ─▶ SaslAuthenticate v2 ×1 (PLAIN) or ×2 (SCRAM)]
//!           ─▶ the caller's frames ─┬─▶ ... ─▶ reauth_due: the login again, between two requests
//!                                   └─▶ the session ends without one: the caller reconnects
//! ```
//!
//! Every method is non-blocking over any `Read + Write` stream: "would block" is `Ok(false)`
//! (no progress), errors are strings for the caller's one log line per outage.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rustls::ClientConnection;

use super::upstream::{complete_frame, decode, frame};
use crate::auth::client::{plain_token, ClientMechanism, Credentials, ScramClient, UpstreamSecurity};

const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_VERSION: i16 = 2;
/// Largest login answer accepted (a SCRAM challenge is about 100 bytes).
const LOGIN_FRAME_BYTES_MAX: usize = 64 << 10;
/// Ciphertext and plaintext the TLS session may buffer.
const TLS_BUFFERED_BYTES_MAX: usize = 256 << 10;

/// One connection to the upstream broker.
pub struct UpstreamConn<S> {
    pub tcp: S,
    tls: Option<Box<ClientConnection>>,
    credentials: Option<Credentials>,
    login: Option<Login>,
    correlation: i32,
    /// When to log in again, and when the broker ends the session without it (KIP-368).
    reauth_at: Option<Instant>,
    session_ends_at: Option<Instant>,
    /// Completed logins on this connection.
    pub logins: u64,
    /// The broker closed after the last bytes read (reported once those are handled: a login
    /// refusal comes with its answer right before the close).
    closed: Option<&'static str>,
    /// The SCRAM client nonce, fixed for fuzzing (else fresh randomness per login).
    fixed_nonce: Option<&'static str>,
}

struct Login {
    step: Step,
    out: Vec<u8>,
    out_at: usize,
    rbuf: Vec<u8>,
}

enum Step {
    Handshake,
    Plain,
    Scram(ScramClient),
}

impl<S: Read + Write> UpstreamConn<S> {
    pub fn new(tcp: S, security: &UpstreamSecurity) -> Result<UpstreamConn<S>, String> {
        let tls = match &security.tls {
            Some((config, name)) => {
                let mut c = ClientConnection::new(Arc::clone(config), name.clone()).map_err(|e| format!("TLS: {e}"))?;
                c.set_buffer_limit(Some(TLS_BUFFERED_BYTES_MAX));
                Some(Box::new(c))
            }
            None => None,
        };
        let mut conn = UpstreamConn {
            tcp,
            tls,
            credentials: security.sasl.clone(),
            login: None,
            correlation: 0,
            reauth_at: None,
            session_ends_at: None,
            logins: 0,
            closed: None,
            fixed_nonce: None,
        };
        conn.begin_login();
        Ok(conn)
    }

    /// True while the first login (if any) has not finished: the caller's frames wait.
    pub fn logging_in(&self) -> bool {
        self.login.is_some()
    }

    /// Time to log in again (between two of the caller's requests); `now` plus however long
    /// the next request may be held, so that it ends inside the session.
    pub fn reauth_due(&self, now: Instant) -> bool {
        self.login.is_none() && self.reauth_at.is_some_and(|t| now >= t)
    }

    /// The broker's session ended without a new login: the broker closes such connections.
    pub fn session_over(&self, now: Instant) -> bool {
        self.session_ends_at.is_some_and(|t| now >= t)
    }

    /// Starts a login (at connect, and when [`reauth_due`](Self::reauth_due)); none without SASL.
    pub fn begin_login(&mut self) {
        let Some(c) = &self.credentials else { return };
        self.correlation = self.correlation.wrapping_add(1).max(1);
        let req = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(c.mechanism.name()));
        self.login = Some(Login {
            step: Step::Handshake,
            out: frame(&req, SASL_HANDSHAKE_VERSION, self.correlation),
            out_at: 0,
            rbuf: Vec::new(),
        });
        self.reauth_at = None;
    }

    /// Moves bytes: the login's while one runs, else the caller's `out[*out_at..]` out and
    /// whatever arrived into `rbuf`. Ok(true) when anything moved.
    pub fn pump(&mut self, out: &[u8], out_at: &mut usize, rbuf: &mut Vec<u8>, now: Instant) -> Result<bool, String> {
        let mut progressed = self.flush_tls()?;
        while let Some(mut login) = self.login.take() {
            let mut moved = self.send(&login.out, &mut login.out_at)?;
            moved |= self.recv(&mut login.rbuf)?;
            progressed |= moved;
            match complete_frame(&login.rbuf, LOGIN_FRAME_BYTES_MAX).map_err(|e| format!("login: {e}"))? {
                Some(n) => {
                    let body = Bytes::copy_from_slice(&login.rbuf[4..n]);
                    login.rbuf.drain(..n);
                    if self.on_login_answer(&mut login, body, now)? {
                        // Logged in; anything after the last login answer is the caller's.
                        rbuf.extend_from_slice(&login.rbuf);
                        progressed = true;
                        break;
                    }
                    self.login = Some(login);
                }
                None => {
                    self.login = Some(login);
                    if !moved {
                        return Ok(progressed);
                    }
                }
            }
        }
        progressed |= self.send(out, out_at)?;
        progressed |= self.recv(rbuf)?;
        Ok(progressed)
    }

    /// One login answer: Ok(true) when the login is done, Ok(false) with the next request
    /// queued.
    fn on_login_answer(&mut self, login: &mut Login, body: Bytes, now: Instant) -> Result<bool, String> {
        let Some(c) = self.credentials.clone() else { return Err("a login answer without a login".into()) };
        let corr = self.correlation;
        let token = match &mut login.step {
            Step::Handshake => {
                let r: SaslHandshakeResponse =
                    decode(body, SASL_HANDSHAKE_VERSION, corr, "SaslHandshake").map_err(|e| e.to_string())?;
                if r.error_code != 0 {
                    let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
                    return Err(format!(
                        "SASL {} is not enabled on that listener (error {}; it offers {})",
                        c.mechanism.name(),
                        r.error_code,
                        offered.join(", ")
                    ));
                }
                match c.mechanism {
                    ClientMechanism::Plain => {
                        login.step = Step::Plain;
                        plain_token(&c)
                    }
                    ClientMechanism::Scram(m) => {
                        let nonce = match self.fixed_nonce {
                            Some(n) => n.to_string(),
                            None => crate::auth::random_nonce().map_err(|e| format!("randomness: {e}"))?,
                        };
                        let mut s = ScramClient::new(m, &c.username, &c.password, &nonce);
                        let first = s.first();
                        login.step = Step::Scram(s);
                        first
                    }
                }
            }
            Step::Plain | Step::Scram(_) => {
                let r: SaslAuthenticateResponse =
                    decode(body, SASL_AUTHENTICATE_VERSION, corr, "SaslAuthenticate").map_err(|e| e.to_string())?;
                if r.error_code != 0 {
                    return Err(format!(
                        "SASL {} login as {} refused (error {}): {}",
                        c.mechanism.name(),
                        c.username,
                        r.error_code,
                        r.error_message.as_ref().map_or("", |m| m.as_str())
                    ));
                }
                let next = match &mut login.step {
                    Step::Scram(s) => s
                        .step(&r.auth_bytes)
                        .map_err(|e| format!("SASL {} login as {}: {e}", c.mechanism.name(), c.username))?,
                    _ => None,
                };
                match next {
                    Some(token) => token,
                    None => {
                        self.logins += 1;
                        if r.session_lifetime_ms > 0 {
                            let lifetime = Duration::from_millis(r.session_lifetime_ms as u64);
                            // As Kafka's clients: log in again at 85% of the lifetime.
                            self.reauth_at = Some(now + lifetime.mul_f64(0.85));
                            self.session_ends_at = Some(now + lifetime);
                        } else {
                            self.reauth_at = None;
                            self.session_ends_at = None;
                        }
                        return Ok(true);
                    }
                }
            }
        };
        self.correlation = self.correlation.wrapping_add(1).max(1);
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        login.out = frame(&req, SASL_AUTHENTICATE_VERSION, self.correlation);
        login.out_at = 0;
        Ok(false)
    }

    /// Writes what it can of `data[*at..]` (into the TLS session, then its records out).
    fn send(&mut self, data: &[u8], at: &mut usize) -> Result<bool, String> {
        let mut progressed = false;
        while *at < data.len() {
            let n = match self.tls.as_mut() {
                Some(t) => t.writer().write(&data[*at..]).map_err(|e| format!("TLS write: {e}"))?,
                None => match self.tcp.write(&data[*at..]) {
                    Ok(0) => return Err("write returned 0".into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("write: {e}")),
                },
            };
            *at += n;
            progressed |= n > 0;
            let flushed = self.flush_tls()?;
            if n == 0 && !flushed {
                break;
            }
        }
        Ok(progressed | self.flush_tls()?)
    }

    /// Writes the TLS session's pending records. Ok(true) when some went out.
    fn flush_tls(&mut self) -> Result<bool, String> {
        let Some(t) = self.tls.as_mut() else { return Ok(false) };
        let mut progressed = false;
        while t.wants_write() {
            match t.write_tls(&mut self.tcp) {
                Ok(0) => return Err("write returned 0".into()),
                Ok(_) => progressed = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(progressed)
    }

    /// Reads all that arrived into `into`. The broker's close is an error once what came
    /// before it has been returned.
    fn recv(&mut self, into: &mut Vec<u8>) -> Result<bool, String> {
        if let Some(why) = self.closed {
            return Err(why.into());
        }
        let got = into.len();
        match self.recv_until_closed(into) {
            Err(Closed(why)) if into.len() > got => {
                self.closed = Some(why);
                Ok(true)
            }
            Err(Closed(why)) => Err(why.into()),
            Ok(Err(e)) => Err(e),
            Ok(Ok(p)) => Ok(p),
        }
    }

    fn recv_until_closed(&mut self, into: &mut Vec<u8>) -> Result<Result<bool, String>, Closed> {
        let mut chunk = [0u8; 64 << 10];
        let mut progressed = false;
        loop {
            let Some(t) = self.tls.as_mut() else {
                match self.tcp.read(&mut chunk) {
                    Ok(0) => return Err(Closed("closed by the broker")),
                    Ok(n) => {
                        into.extend_from_slice(&chunk[..n]);
                        progressed = true;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Ok(progressed)),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Ok(Err(format!("read: {e}"))),
                }
            };
            match t.read_tls(&mut self.tcp) {
                Ok(0) => return Err(Closed("closed by the broker")),
                Ok(_) => {
                    progressed = true;
                    if let Err(e) = t.process_new_packets() {
                        let _ = self.flush_tls();
                        return Ok(Err(format!("TLS: {e}")));
                    }
                    loop {
                        match t.reader().read(&mut chunk) {
                            Ok(0) => return Err(Closed("closed by the broker (TLS close_notify)")),
                            Ok(n) => into.extend_from_slice(&chunk[..n]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => return Ok(Err(format!("TLS read: {e}"))),
                        }
                    }
                    // Handshake answers, key updates.
                    if let Err(e) = self.flush_tls() {
                        return Ok(Err(e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Ok(progressed)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Ok(Err(format!("read: {e}"))),
            }
        }
    }
}

/// The broker closed the connection (why, for the log line).
struct Closed(&'static str);

/// Feeds `data` to a login as the broker's answers (after a first byte choosing PLAIN,
/// SCRAM-SHA-256 or SCRAM-SHA-512): reads cut as [`super::transport::FuzzStream`] cuts them,
/// pumped until the input is spent. Nothing may panic or spin. Returns the logins completed.
#[doc(hidden)]
pub fn fuzz_login(data: &[u8]) -> usize {
    use crate::auth::scram::Mechanism;
    let Some((&pick, rest)) = data.split_first() else { return 0 };
    let mechanism = match pick % 3 {
        0 => ClientMechanism::Plain,
        1 => ClientMechanism::Scram(Mechanism::Sha256),
        _ => ClientMechanism::Scram(Mechanism::Sha512),
    };
    let security = UpstreamSecurity {
        protocol: "SASL_PLAINTEXT".into(),
        tls: None,
        sasl: Some(Credentials { mechanism, username: "ferry".into(), password: "secret".into() }),
    };
    let stream = super::transport::FuzzStream::of(rest);
    let Ok(mut conn) = UpstreamConn::new(stream, &security) else { return 0 };
    conn.fixed_nonce = Some("fuzznonce");
    let out = b"\0\0\0\x04ping";
    let (mut at, mut rbuf) = (0, Vec::new());
    let now = Instant::now();
    for _ in 0..=rest.len() + 1 {
        match conn.pump(out, &mut at, &mut rbuf, now) {
            Ok(_) if conn.tcp.drained() => break,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    conn.logins as usize
}
