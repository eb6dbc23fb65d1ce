//! One connection's SASL authentication on a SASL listener, sans-io: request frames and `now`
//! in, decisions out (serve the frame, write this answer, fail, close). Owns the order of the
//! exchange the broker's `SaslServerAuthenticator` enforces (../shared/docs/cluster-and-security.md
//! §6.1, §6.5):
//!
//! ```text
//!             ApiVersions (once, optional)
//!   Initial ───────────────────────────────▶ Initial (versions seen)
//!      │ SaslHandshake v0 / v1 (mechanism enabled)
//!      ▼
//!   Exchange ── v1: SaslAuthenticate{auth_bytes} ──▶ token of the mechanism ──▶ Exchange | Complete
//!             ── v0: the raw token, size-prefixed, no Kafka header ──────────▶ (same)
//!   Complete ── any request: served; SaslHandshake (v1 sessions): re-authentication ──▶ Exchange
//!      │ session lifetime (connections.max.reauth.ms) over, no re-authentication
//!      ▼
//!   closed
//! ```
//!
//! Before `Complete` nothing but ApiVersions and the SASL APIs is served; any other request
//! closes the connection ("Unexpected Kafka request of type … during SASL handshake"). A failed
//! exchange answers SASL_AUTHENTICATION_FAILED (v1) with the broker's message and closes; the
//! server delays that answer by `connection.failed.authentication.delay.ms`. Re-authentication
//! (KIP-368) must keep the mechanism and the principal.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};

use super::plain;
use super::scram::{self, Mechanism, ScramServer, Step};
use crate::cluster::image::ScramCredential;
use crate::protocol::{self, error_code, sasl_authenticate, sasl_handshake, RequestMeta};

/// `sasl.server.max.receive.size`: the largest frame read before authentication, in bytes.
pub const RECEIVE_BYTES_MAX: usize = 512 << 10;
/// `connection.failed.authentication.delay.ms` default.
pub const FAILED_AUTHENTICATION_DELAY_MS_DEFAULT: u64 = 100;
/// The principal of a connection that has not authenticated (and of PLAINTEXT ones).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// The SASL settings of a listener, from the broker's `server.properties` and flags.
#[derive(Clone, Debug, Default)]
pub struct SaslConfig {
    /// Enabled mechanisms in the broker's order (`sasl.enabled.mechanisms`), as named on the wire.
    pub mechanisms: Vec<String>,
    /// PLAIN users and passwords (JAAS `user_NAME="..."`, or `--sasl-plain-users`).
    pub plain_users: HashMap<String, String>,
    /// `connections.max.reauth.ms` (0: sessions do not expire).
    pub reauth_ms: u64,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_delay_ms: u64,
}

/// What the session decided about one frame.
#[derive(Debug)]
pub enum Decision {
    /// Give the frame to the protocol handlers.
    Serve,
    /// Write this response frame (size prefix included); `authenticated` names the user when
    /// this answer completes an exchange.
    Respond { frame: Bytes, authenticated: Option<String> },
    /// Authentication failed: write `frame` (if any) after `delay`, then close. `user` is the
    /// name the client gave, for the log line.
    Fail { frame: Option<Bytes>, delay: Duration, reason: String, user: Option<String> },
    /// A protocol violation: close now with this log line.
    Close(String),
}

enum Exchange {
    Plain,
    Scram(Box<ScramServer>),
}

/// A mechanism's step: (answer token, the user once done), or (what the client is told, what
/// the log says, the user the client named).
type Stepped = Result<(Vec<u8>, Option<String>), (String, String, Option<String>)>;

enum State {
    Initial {
        versions_seen: bool,
    },
    /// A mechanism chosen; `framed`: tokens in SaslAuthenticate (handshake v1), else raw.
    Exchange {
        mechanism: String,
        exchange: Exchange,
        framed: bool,
    },
    Complete,
    Failed,
}

/// One connection's authentication state.
pub struct Session {
    state: State,
    principal: String,
    /// The mechanism of the completed authentication, and whether it used SaslAuthenticate.
    mechanism: Option<(String, bool)>,
    expires_at: Option<Instant>,
    /// SaslAuthenticate's version in the last exchange (for the session lifetime field).
    authenticate_version: i16,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    pub fn new() -> Session {
        Session {
            state: State::Initial { versions_seen: false },
            principal: ANONYMOUS.to_string(),
            mechanism: None,
            expires_at: None,
            authenticate_version: 0,
        }
    }

    /// The authenticated principal (`User:NAME`), `User:ANONYMOUS` before that.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// Whether requests other than the SASL exchange are served.
    pub fn authenticated(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    /// Whether the next frame is a raw SASL token (after SaslHandshake v0), not a Kafka request.
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Exchange { framed: false, .. })
    }

    /// The largest frame to read now: [`RECEIVE_BYTES_MAX`] until authenticated.
    pub fn receive_bytes_max(&self, request_bytes_max: usize) -> usize {
        match self.state {
            State::Complete => request_bytes_max,
            _ => request_bytes_max.min(RECEIVE_BYTES_MAX),
        }
    }

    /// Decides about one frame (size prefix excluded).
    pub fn on_frame(
        &mut self,
        frame: &Bytes,
        config: &SaslConfig,
        scram_credentials: Option<&BTreeMap<(String, i8), ScramCredential>>,
        now: Instant,
    ) -> Decision {
        if let State::Exchange { framed: false, .. } = self.state {
            return self.token(frame.clone(), None, config, scram_credentials, now);
        }
        if frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == ApiKey::ApiVersions as i16 {
            return match self.state {
                State::Initial { versions_seen: false } => {
                    self.state = State::Initial { versions_seen: true };
                    Decision::Serve
                }
                State::Complete => Decision::Serve,
                _ => Decision::Close("ApiVersions is allowed once, before SaslHandshake".into()),
            };
        }
        let (meta, body) = match protocol::split_request(frame.clone()) {
            Ok(r) => r,
            Err(e) => return Decision::Close(e),
        };
        match (&self.state, meta.api_key) {
            (State::Complete, ApiKey::SaslHandshake) if self.may_reauthenticate() => {
                self.handshake(&meta, body, config)
            }
            (State::Complete, _) => match self.expires_at {
                Some(at) if now >= at => Decision::Close(format!(
                    "the SASL session of {} expired (connections.max.reauth.ms) without re-authentication",
                    self.principal
                )),
                _ => Decision::Serve,
            },
            (State::Initial { .. }, ApiKey::SaslHandshake) => self.handshake(&meta, body, config),
            (State::Initial { .. }, key) => {
                Decision::Close(format!("Unexpected Kafka request of type {key:?} during SASL handshake"))
            }
            (State::Exchange { .. }, ApiKey::SaslAuthenticate) => {
                match protocol::decode_request::<SaslAuthenticateRequest>(body, &meta) {
                    Ok(req) => self.token(req.auth_bytes, Some(&meta), config, scram_credentials, now),
                    Err(e) => Decision::Close(e),
                }
            }
            (State::Exchange { .. }, key) => {
                self.state = State::Failed;
                Decision::Close(format!("Unexpected Kafka request of type {key:?} during SASL authentication"))
            }
            (State::Failed, _) => Decision::Close("request after a failed authentication".into()),
        }
    }

    /// Re-authentication needs SaslAuthenticate v1+ (KIP-368) on the first exchange.
    fn may_reauthenticate(&self) -> bool {
        self.mechanism.as_ref().is_some_and(|(_, framed)| *framed) && self.authenticate_version >= 1
    }

    fn handshake(&mut self, meta: &RequestMeta, body: Bytes, config: &SaslConfig) -> Decision {
        let req = match protocol::decode_request::<SaslHandshakeRequest>(body, meta) {
            Ok(r) => r,
            Err(e) => return Decision::Close(e),
        };
        let wanted = req.mechanism.to_string();
        let reauth = matches!(self.state, State::Complete);
        let enabled = config.mechanisms.contains(&wanted);
        let same = !reauth || self.mechanism.as_ref().is_some_and(|(m, _)| *m == wanted);
        let exchange = match (wanted.as_str(), enabled && same) {
            (_, false) => None,
            ("PLAIN", true) => Some(Exchange::Plain),
            (m, true) => Mechanism::from_name(m).map(|m| Exchange::Scram(Box::new(ScramServer::new(m)))),
        };
        let Some(exchange) = exchange else {
            self.state = State::Failed;
            let reason = if reauth && enabled {
                format!("re-authentication with {wanted} after {}: the mechanism may not change", self.mech_name())
            } else {
                format!("Unsupported SASL mechanism {wanted}")
            };
            return Decision::Fail {
                frame: encode(
                    meta,
                    &sasl_handshake::response(error_code::UNSUPPORTED_SASL_MECHANISM, &config.mechanisms),
                )
                .ok(),
                delay: Duration::from_millis(config.failed_delay_ms),
                reason,
                user: None,
            };
        };
        self.state = State::Exchange { mechanism: wanted, exchange, framed: meta.api_version >= 1 };
        match encode(meta, &sasl_handshake::response(error_code::NONE, &config.mechanisms)) {
            Ok(frame) => Decision::Respond { frame, authenticated: None },
            Err(e) => Decision::Close(e),
        }
    }

    fn mech_name(&self) -> &str {
        self.mechanism.as_ref().map_or("-", |(m, _)| m.as_str())
    }

    /// One client token, in a SaslAuthenticate (`meta`) or raw.
    fn token(
        &mut self,
        token: Bytes,
        meta: Option<&RequestMeta>,
        config: &SaslConfig,
        scram_credentials: Option<&BTreeMap<(String, i8), ScramCredential>>,
        now: Instant,
    ) -> Decision {
        let State::Exchange { mechanism, exchange, framed } = &mut self.state else {
            return Decision::Close("internal: a SASL token outside an exchange".into());
        };
        let (mechanism, framed) = (mechanism.clone(), *framed);
        if let Some(m) = meta {
            self.authenticate_version = m.api_version;
        }
        // (answer token, user when done) or (client message, log reason, user).
        let step: Stepped = match exchange {
            Exchange::Plain => {
                let user = plain_user(&token);
                match plain::authenticate(&token, |u| config.plain_users.get(u).map(String::as_str)) {
                    Ok(u) => Ok((Vec::new(), Some(u.to_string()))),
                    Err(e) => Err((e.to_string(), e.to_string(), user)),
                }
            }
            Exchange::Scram(server) => {
                let m = server.mechanism();
                let nonce = super::random_nonce().unwrap_or_default();
                if nonce.is_empty() {
                    Err((scram::client_message(m), "no randomness for the server nonce".into(), None))
                } else {
                    let first_user = scram_user(&token);
                    let creds = scram_credentials;
                    match server.step(
                        &token,
                        |u| creds.and_then(|c| c.get(&(u.to_string(), m.kafka_type())).cloned()),
                        &nonce,
                    ) {
                        Ok(Step::Challenge(c)) => Ok((c, None)),
                        Ok(Step::Done { user, server_final }) => Ok((server_final, Some(user))),
                        Err(e) => Err((scram::client_message(m), e.to_string(), first_user)),
                    }
                }
            }
        };
        match step {
            Ok((answer, None)) => match respond_token(meta, framed, answer, 0) {
                Ok(frame) => Decision::Respond { frame, authenticated: None },
                Err(e) => Decision::Close(e),
            },
            Ok((answer, Some(user))) => {
                let principal = format!("User:{user}");
                if self.mechanism.is_some() && principal != self.principal {
                    self.state = State::Failed;
                    let reason = format!("re-authentication as {principal} on a session of {}", self.principal);
                    let msg = "Cannot change principals during re-authentication".to_string();
                    return Decision::Fail {
                        frame: fail_frame(meta, msg),
                        delay: Duration::from_millis(config.failed_delay_ms),
                        reason,
                        user: Some(user),
                    };
                }
                let lifetime_ms = i64::try_from(config.reauth_ms).unwrap_or(i64::MAX);
                self.expires_at = (config.reauth_ms > 0).then(|| now + Duration::from_millis(config.reauth_ms));
                self.principal = principal;
                self.mechanism = Some((mechanism, framed));
                self.state = State::Complete;
                match respond_token(meta, framed, answer, lifetime_ms) {
                    Ok(frame) => Decision::Respond { frame, authenticated: Some(user) },
                    Err(e) => Decision::Close(e),
                }
            }
            Err((message, reason, user)) => {
                self.state = State::Failed;
                Decision::Fail {
                    frame: fail_frame(meta, message),
                    delay: Duration::from_millis(config.failed_delay_ms),
                    reason: format!("{mechanism}: {reason}"),
                    user,
                }
            }
        }
    }
}

/// The user a PLAIN message names (for the log line of a failure).
fn plain_user(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?;
    text.split('\0').nth(1).filter(|u| !u.is_empty()).map(String::from)
}

/// The user a SCRAM client-first message names (for the log line of a failure).
fn scram_user(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?;
    let name = text.split(',').find_map(|f| f.strip_prefix("n="))?;
    Some(name.replace("=2C", ",").replace("=3D", "="))
}

fn encode<R: kafka_protocol::protocol::Encodable>(meta: &RequestMeta, body: &R) -> Result<Bytes, String> {
    protocol::encode_response(meta, body)
}

/// A token answer: a SaslAuthenticate response, or (after SaslHandshake v0) the raw token.
fn respond_token(meta: Option<&RequestMeta>, framed: bool, token: Vec<u8>, lifetime_ms: i64) -> Result<Bytes, String> {
    match (meta, framed) {
        (Some(m), true) => {
            let lifetime = if m.api_version >= 1 { lifetime_ms } else { 0 };
            encode(m, &sasl_authenticate::response(error_code::NONE, None, Bytes::from(token), lifetime))
        }
        _ => {
            let mut b = BytesMut::with_capacity(4 + token.len());
            b.put_u32(token.len() as u32);
            b.put_slice(&token);
            Ok(b.freeze())
        }
    }
}

/// SASL_AUTHENTICATION_FAILED with `message`; a raw (v0) exchange has no way to say it.
fn fail_frame(meta: Option<&RequestMeta>, message: String) -> Option<Bytes> {
    let m = meta?;
    encode(m, &sasl_authenticate::response(error_code::SASL_AUTHENTICATION_FAILED, Some(message), Bytes::new(), 0)).ok()
}

/// Drives a session over `data` read as frames (big-endian u16 length, then the bytes), with a
/// listener offering PLAIN and both SCRAMs, until the input ends or the session closes. For the
/// fuzz target and its corpus replay; returns how many frames were fed.
pub fn fuzz_frames(data: &[u8]) -> usize {
    let config = SaslConfig {
        mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-256".into(), "SCRAM-SHA-512".into()],
        plain_users: [("alice".to_string(), "alice-secret".to_string())].into_iter().collect(),
        reauth_ms: 1,
        failed_delay_ms: 0,
    };
    let credential = ScramCredential {
        salt: b"0123456789abcdef".to_vec(),
        stored_key: vec![7; 32],
        server_key: vec![9; 32],
        iterations: 4096,
    };
    let creds: BTreeMap<(String, i8), ScramCredential> =
        [(("alice".to_string(), 1), credential.clone()), (("alice".to_string(), 2), credential)].into_iter().collect();
    let mut session = Session::new();
    let now = Instant::now();
    let (mut rest, mut fed) = (data, 0);
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let Some(frame) = rest.get(2..2 + n) else { break };
        rest = &rest[2 + n..];
        fed += 1;
        let at = now + Duration::from_millis(fed as u64);
        match session.on_frame(&Bytes::copy_from_slice(frame), &config, Some(&creds), at) {
            Decision::Close(_) | Decision::Fail { .. } => break,
            Decision::Serve | Decision::Respond { .. } => {}
        }
    }
    fed
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{RequestHeader, SaslAuthenticateResponse, SaslHandshakeResponse};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    fn request<R: Encodable>(key: ApiKey, version: i16, body: &R) -> Bytes {
        let mut b = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")))
            .encode(&mut b, key.request_header_version(version))
            .expect("header");
        body.encode(&mut b, version).expect("body");
        b.freeze()
    }

    fn handshake(mech: &str, version: i16) -> Bytes {
        request(
            ApiKey::SaslHandshake,
            version,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mech.into())),
        )
    }

    fn authenticate(token: &[u8], version: i16) -> Bytes {
        request(
            ApiKey::SaslAuthenticate,
            version,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
        )
    }

    fn metadata() -> Bytes {
        request(ApiKey::Metadata, 12, &kafka_protocol::messages::MetadataRequest::default())
    }

    /// The body of a response frame (size prefix and correlation id off; header v0 for
    /// SaslHandshake, v1 for SaslAuthenticate v2).
    fn body(frame: &Bytes, key: ApiKey, version: i16) -> Bytes {
        let mut b = frame.slice(4..);
        kafka_protocol::messages::ResponseHeader::decode(&mut b, key.response_header_version(version)).expect("header");
        b
    }

    fn auth_response(d: &Decision, version: i16) -> SaslAuthenticateResponse {
        let frame = match d {
            Decision::Respond { frame, .. } => frame,
            Decision::Fail { frame: Some(frame), .. } => frame,
            other => panic!("no response: {other:?}"),
        };
        SaslAuthenticateResponse::decode(&mut body(frame, ApiKey::SaslAuthenticate, version), version).expect("decodes")
    }

    fn config() -> SaslConfig {
        SaslConfig {
            mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-256".into()],
            plain_users: [("alice".to_string(), "alice-secret".to_string())].into_iter().collect(),
            reauth_ms: 0,
            failed_delay_ms: 100,
        }
    }

    #[test]
    fn nothing_but_apiversions_and_sasl_before_authentication() {
        let (cfg, now) = (config(), Instant::now());
        let mut s = Session::new();
        assert!(
            matches!(s.on_frame(&metadata(), &cfg, None, now), Decision::Close(m) if m.contains("during SASL handshake"))
        );
        let mut s = Session::new();
        let versions = request(ApiKey::ApiVersions, 3, &kafka_protocol::messages::ApiVersionsRequest::default());
        assert!(matches!(s.on_frame(&versions, &cfg, None, now), Decision::Serve));
        assert!(matches!(s.on_frame(&versions, &cfg, None, now), Decision::Close(_)), "ApiVersions once");
        assert_eq!(Session::new().receive_bytes_max(8 << 20), RECEIVE_BYTES_MAX);
    }

    #[test]
    fn plain_over_saslauthenticate_then_requests_are_served() {
        let (cfg, now) = (config(), Instant::now());
        let mut s = Session::new();
        let Decision::Respond { frame, authenticated: None } = s.on_frame(&handshake("PLAIN", 1), &cfg, None, now)
        else {
            panic!("handshake refused")
        };
        let h = SaslHandshakeResponse::decode(&mut body(&frame, ApiKey::SaslHandshake, 1), 1).expect("decodes");
        assert_eq!(h.error_code, 0);
        assert_eq!(h.mechanisms.iter().map(|m| m.as_str()).collect::<Vec<_>>(), ["PLAIN", "SCRAM-SHA-256"]);
        let d = s.on_frame(&authenticate(b"\0alice\0alice-secret", 2), &cfg, None, now);
        assert!(matches!(&d, Decision::Respond { authenticated: Some(u), .. } if u == "alice"), "{d:?}");
        assert_eq!(auth_response(&d, 2).error_code, 0);
        assert_eq!(s.principal(), "User:alice");
        assert!(s.authenticated());
        assert!(matches!(s.on_frame(&metadata(), &cfg, None, now), Decision::Serve));
    }

    #[test]
    fn failures_answer_with_kafkas_codes_and_are_delayed() {
        let (cfg, now) = (config(), Instant::now());
        let mut s = Session::new();
        s.on_frame(&handshake("PLAIN", 1), &cfg, None, now);
        let d = s.on_frame(&authenticate(b"\0alice\0wrong", 1), &cfg, None, now);
        let r = auth_response(&d, 1);
        assert_eq!(r.error_code, error_code::SASL_AUTHENTICATION_FAILED);
        assert_eq!(r.error_message.as_deref(), Some("Authentication failed: Invalid username or password"));
        let Decision::Fail { delay, user, .. } = d else { unreachable!() };
        assert_eq!(delay, Duration::from_millis(100));
        assert_eq!(user.as_deref(), Some("alice"));
        assert!(matches!(s.on_frame(&metadata(), &cfg, None, now), Decision::Close(_)));
        // A mechanism the listener does not enable.
        let mut s = Session::new();
        let Decision::Fail { frame: Some(f), .. } = s.on_frame(&handshake("GSSAPI", 1), &cfg, None, now) else {
            panic!("GSSAPI accepted")
        };
        let h = SaslHandshakeResponse::decode(&mut body(&f, ApiKey::SaslHandshake, 1), 1).expect("decodes");
        assert_eq!(h.error_code, error_code::UNSUPPORTED_SASL_MECHANISM);
        // Another API in the middle of the exchange.
        let mut s = Session::new();
        s.on_frame(&handshake("PLAIN", 1), &cfg, None, now);
        assert!(matches!(s.on_frame(&metadata(), &cfg, None, now), Decision::Close(_)));
    }

    #[test]
    fn raw_tokens_after_handshake_v0() {
        let (cfg, now) = (config(), Instant::now());
        let mut s = Session::new();
        s.on_frame(&handshake("PLAIN", 0), &cfg, None, now);
        assert!(s.expects_raw_token());
        let d = s.on_frame(&Bytes::from_static(b"\0alice\0alice-secret"), &cfg, None, now);
        assert!(
            matches!(&d, Decision::Respond { frame, authenticated: Some(_) } if frame[..] == [0, 0, 0, 0]),
            "{d:?}"
        );
        let mut s = Session::new();
        s.on_frame(&handshake("PLAIN", 0), &cfg, None, now);
        assert!(matches!(
            s.on_frame(&Bytes::from_static(b"\0alice\0nope"), &cfg, None, now),
            Decision::Fail { frame: None, .. }
        ));
    }

    #[test]
    fn scram_and_reauthentication() {
        use crate::auth::scram::tests::{client_final, credential};
        let mut cfg = config();
        cfg.reauth_ms = 1_000;
        let now = Instant::now();
        let creds: BTreeMap<(String, i8), ScramCredential> = [
            (("alice".to_string(), 1), credential(Mechanism::Sha256, "pw-a", b"salt-of-alice-16", 4096)),
            (("bob".to_string(), 1), credential(Mechanism::Sha256, "pw-b", b"salt-of-bob-1234", 4096)),
        ]
        .into_iter()
        .collect();
        let login = |s: &mut Session, user: &str, pw: &str, at: Instant| -> Decision {
            assert!(matches!(
                s.on_frame(&handshake("SCRAM-SHA-256", 1), &cfg, Some(&creds), at),
                Decision::Respond { .. }
            ));
            let bare = format!("n={user},r=clientnonce");
            let d = s.on_frame(&authenticate(format!("n,,{bare}").as_bytes(), 2), &cfg, Some(&creds), at);
            let first = String::from_utf8(auth_response(&d, 2).auth_bytes.to_vec()).expect("utf8");
            let fin = client_final(Mechanism::Sha256, pw, &bare, &first);
            s.on_frame(&authenticate(fin.as_bytes(), 2), &cfg, Some(&creds), at)
        };
        let mut s = Session::new();
        let d = login(&mut s, "alice", "pw-a", now);
        let r = auth_response(&d, 2);
        assert_eq!((r.error_code, r.session_lifetime_ms), (0, 1_000));
        assert!(String::from_utf8_lossy(&r.auth_bytes).starts_with("v="), "server-final");
        // Re-authentication as the same user renews the session...
        let later = now + Duration::from_millis(900);
        assert!(matches!(login(&mut s, "alice", "pw-a", later), Decision::Respond { authenticated: Some(_), .. }));
        assert!(matches!(s.on_frame(&metadata(), &cfg, None, now + Duration::from_millis(1_500)), Decision::Serve));
        // ...and lapses without one.
        assert!(matches!(s.on_frame(&metadata(), &cfg, None, now + Duration::from_millis(2_000)), Decision::Close(_)));
        // Another principal may not take the connection over.
        let mut s = Session::new();
        login(&mut s, "alice", "pw-a", now);
        assert!(matches!(login(&mut s, "bob", "pw-b", now), Decision::Fail { .. }));
        // A wrong password: Kafka's one SCRAM failure text.
        let mut s = Session::new();
        let r = auth_response(&login(&mut s, "bob", "pw-a", now), 2);
        assert_eq!(r.error_code, error_code::SASL_AUTHENTICATION_FAILED);
        assert_eq!(r.error_message.as_deref(), Some(scram::client_message(Mechanism::Sha256).as_str()));
    }
}
