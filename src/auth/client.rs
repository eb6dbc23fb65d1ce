//! logferry as a client of its cluster: the security of the upstream connection (the high
//! watermark watch and the relayed group APIs), from a Kafka client properties file
//! (`--upstream-config`, the same keys as the Kafka tools' `--command-config`), and the client
//! side of SASL's mechanisms, sans-io.
//!
//! Keys read, as Kafka's clients read them:
//! - `security.protocol`: PLAINTEXT (the default), SSL, SASL_PLAINTEXT or SASL_SSL.
//! - `sasl.mechanism`: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Kafka's default, GSSAPI, is
//!   refused with a message), `sasl.jaas.config` with `username=` and `password=`.
//! - `ssl.truststore.*` (PKCS12, PEM, or inline `ssl.truststore.certificates`; without one the
//!   system's CA bundle), `ssl.keystore.*` for a client certificate (`ssl.client.auth` brokers),
//!   `ssl.endpoint.identification.algorithm` (`https`, the default, checks the broker's
//!   certificate against the `--upstream` host; empty checks the chain only, as Kafka does).
//!
//! SCRAM, client side (RFC 5802; the server side and the message grammar are in
//! [`super::scram`]):
//!
//! ```text
//!   client-first = "n,," "n=" saslname ",r=" c-nonce
//!   server-first = "r=" c-nonce s-nonce ",s=" salt ",i=" iterations   (checked: our nonce first)
//!   client-final = "c=biws,r=" nonce ",p=" base64(ClientKey XOR HMAC(H(ClientKey), AuthMessage))
//!   server-final = "v=" base64(HMAC(ServerKey, AuthMessage))            (checked: a forged or
//!                                                                       absent v= fails)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::scram::{hi, Mechanism, ScramError, ITERATIONS_MAX, ITERATIONS_MIN};
use super::{base64_decode, base64_encode, constant_time_eq};

/// Where the system's CAs are, when the properties name no truststore (Debian's bundle).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A SASL mechanism logferry can log in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMechanism {
    Plain,
    Scram(Mechanism),
}

impl ClientMechanism {
    pub fn name(self) -> &'static str {
        match self {
            ClientMechanism::Plain => "PLAIN",
            ClientMechanism::Scram(m) => m.name(),
        }
    }
}

/// logferry's own SASL login.
#[derive(Clone)]
pub struct Credentials {
    pub mechanism: ClientMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} as {} (password hidden)", self.mechanism.name(), self.username)
    }
}

/// How to reach the upstream broker.
#[derive(Clone, Default)]
pub struct UpstreamSecurity {
    /// `security.protocol`, upper case.
    pub protocol: String,
    /// TLS (SSL, SASL_SSL): the configuration and the name the certificate is checked against.
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// SASL (SASL_PLAINTEXT, SASL_SSL).
    pub sasl: Option<Credentials>,
}

impl std::fmt::Debug for UpstreamSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.protocol)?;
        if let Some(c) = &self.sasl {
            write!(f, " {c:?}")?;
        }
        Ok(())
    }
}

impl UpstreamSecurity {
    pub fn plaintext() -> UpstreamSecurity {
        UpstreamSecurity { protocol: "PLAINTEXT".into(), tls: None, sasl: None }
    }

    /// From client properties; `host` is the `--upstream` host (the TLS server name).
    pub fn from_properties(props: &BTreeMap<String, String>, host: &str) -> Result<UpstreamSecurity, String> {
        let get = |k: &str| props.get(k).map(|v| v.trim().to_string());
        let protocol = get("security.protocol").unwrap_or_else(|| "PLAINTEXT".into()).to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(format!("security.protocol {other}: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"));
            }
        };
        let sasl = if sasl { Some(credentials(&get)?) } else { None };
        let tls = if tls { Some(tls_config(&get, host)?) } else { None };
        Ok(UpstreamSecurity { protocol, tls, sasl })
    }
}

fn credentials(get: &dyn Fn(&str) -> Option<String>) -> Result<Credentials, String> {
    let mechanism =
        match get("sasl.mechanism").as_deref() {
            Some("PLAIN") => ClientMechanism::Plain,
            Some(m) if Mechanism::from_name(m).is_some() => {
                ClientMechanism::Scram(Mechanism::from_name(m).ok_or("unreachable")?)
            }
            None | Some("GSSAPI") => return Err(
                "sasl.mechanism: GSSAPI (Kafka's default) is not supported; set PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                    .into(),
            ),
            Some(other) => return Err(format!("sasl.mechanism {other}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")),
        };
    let jaas = get("sasl.jaas.config").ok_or("sasl.jaas.config is not set (username= and password=)")?;
    let options = crate::cli::security::jaas_options(&jaas).map_err(|e| format!("sasl.jaas.config: {e}"))?;
    let option = |k: &str| options.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let username = option("username").ok_or("sasl.jaas.config has no username=")?;
    let password = option("password").ok_or("sasl.jaas.config has no password=")?;
    Ok(Credentials { mechanism, username, password })
}

fn tls_config(
    get: &dyn Fn(&str) -> Option<String>,
    host: &str,
) -> Result<(Arc<ClientConfig>, ServerName<'static>), String> {
    let mut trust = super::tls::trust_from(get)?;
    if trust.is_empty() {
        let text = std::fs::read(SYSTEM_CA_BUNDLE).map_err(|e| {
            format!("no ssl.truststore.location and the system CAs ({SYSTEM_CA_BUNDLE}) cannot be read: {e}")
        })?;
        trust = super::tls::pem_sections(&text)
            .map_err(|e| format!("{SYSTEM_CA_BUNDLE}: {e}"))?
            .into_iter()
            .filter(|(label, _)| label == "CERTIFICATE")
            .map(|(_, der)| CertificateDer::from(der))
            .collect();
    }
    let mut roots = RootCertStore::empty();
    for c in trust {
        roots.add(c).map_err(|e| format!("trusted CA: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let protocols = get("ssl.enabled.protocols").unwrap_or_else(|| "TLSv1.2,TLSv1.3".into());
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    for p in protocols.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match p {
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            other => log::warn!("--upstream-config ssl.enabled.protocols: {other} is not offered"),
        }
    }
    if versions.is_empty() {
        return Err(format!("ssl.enabled.protocols {protocols:?}: neither TLSv1.2 nor TLSv1.3"));
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .build()
        .map_err(|e| format!("server verifier: {e}"))?;
    let check_name = match get("ssl.endpoint.identification.algorithm").as_deref() {
        None => true,
        Some(a) if a.eq_ignore_ascii_case("https") => true,
        Some("") => false,
        Some(other) => return Err(format!("ssl.endpoint.identification.algorithm {other:?}: https or empty")),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainVerifier { inner: verifier, check_name }));
    let key_password = get("ssl.key.password");
    let config = match super::tls::keystore(get, key_password.as_deref())? {
        Some(((key, chain), source)) => builder
            .with_client_auth_cert(chain, PrivateKeyDer::Pkcs8(key))
            .map_err(|e| format!("{source}: the key does not fit the certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?} as a TLS server name: {e}"))?;
    Ok((Arc::new(config), name))
}

/// webpki's verification of the broker's chain, with the host name check optional as
/// `ssl.endpoint.identification.algorithm` makes it in Kafka.
#[derive(Debug)]
struct ChainVerifier {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The PLAIN token (RFC 4616): no authorization id, the user, the password.
pub fn plain_token(c: &Credentials) -> Vec<u8> {
    let mut t = Vec::with_capacity(c.username.len() + c.password.len() + 2);
    t.push(0);
    t.extend_from_slice(c.username.as_bytes());
    t.push(0);
    t.extend_from_slice(c.password.as_bytes());
    t
}

/// saslname escaping: ',' is "=2C", '=' is "=3D".
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[derive(Debug)]
enum ScramState {
    Start,
    SentFirst,
    SentFinal { server_signature: Vec<u8> },
    Finished,
}

/// The client's side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramClient {
    mechanism: Mechanism,
    first_bare: String,
    nonce: String,
    password: String,
    state: ScramState,
}

impl ScramClient {
    /// `nonce` is fresh randomness ([`super::random_nonce`]).
    pub fn new(mechanism: Mechanism, username: &str, password: &str, nonce: &str) -> ScramClient {
        ScramClient {
            mechanism,
            first_bare: format!("n={},r={nonce}", escape(username)),
            nonce: nonce.to_string(),
            password: password.to_string(),
            state: ScramState::Start,
        }
    }

    /// client-first.
    pub fn first(&mut self) -> Vec<u8> {
        self.state = ScramState::SentFirst;
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// Feeds a server token: server-first gives `Some(client-final)`, server-final `None` (the
    /// server proved it knows the credential).
    pub fn step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, ScramError> {
        match std::mem::replace(&mut self.state, ScramState::Finished) {
            ScramState::SentFirst => {
                let (final_message, server_signature) = self.client_final(token)?;
                self.state = ScramState::SentFinal { server_signature };
                Ok(Some(final_message))
            }
            ScramState::SentFinal { server_signature } => {
                let text = std::str::from_utf8(token).map_err(|_| ScramError::Malformed("not UTF-8"))?;
                if let Some(e) = text.strip_prefix("e=") {
                    log::warn!("upstream SCRAM: the server says {e}");
                    return Err(ScramError::BadProof);
                }
                let v = text
                    .strip_prefix("v=")
                    .and_then(|v| base64_decode(v.split(',').next().unwrap_or("")))
                    .ok_or(ScramError::Malformed("no v= in the server's final message"))?;
                if !constant_time_eq(&v, &server_signature) {
                    return Err(ScramError::BadProof);
                }
                Ok(None)
            }
            ScramState::Start | ScramState::Finished => Err(ScramError::Finished),
        }
    }

    fn client_final(&self, server_first: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ScramError> {
        let text = std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in text.split(',') {
            if let Some(v) = field.strip_prefix("r=") {
                nonce = Some(v);
            } else if let Some(v) = field.strip_prefix("s=") {
                salt = base64_decode(v);
            } else if let Some(v) = field.strip_prefix("i=") {
                iterations = v.parse::<i32>().ok();
            }
        }
        let nonce = nonce.ok_or(ScramError::Malformed("no r= in the server's first message"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let salt = salt.ok_or(ScramError::Malformed("no s= in the server's first message"))?;
        let iterations = iterations.ok_or(ScramError::Malformed("no i= in the server's first message"))?;
        if iterations < ITERATIONS_MIN {
            return Err(ScramError::IterationsTooLow(iterations));
        }
        if iterations > ITERATIONS_MAX {
            return Err(ScramError::IterationsTooHigh(iterations));
        }
        let m = self.mechanism;
        let salted = hi(m, self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{},{text},{without_proof}", self.first_bare);
        let signature = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let server_signature = m.hmac(&m.hmac(&salted, b"Server Key"), auth.as_bytes());
        Ok((format!("{without_proof},p={}", base64_encode(&proof)).into_bytes(), server_signature))
    }
}

#[cfg(test)]
mod tests {
    use super::super::scram::{tests::credential, ScramServer, Step};
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn scram_client_and_server_agree_and_each_checks_the_other() {
        for m in [Mechanism::Sha256, Mechanism::Sha512] {
            let cred = credential(m, "p,=w", b"salty", 4096);
            let login = |password: &str| {
                let mut c = ScramClient::new(m, "we=ird,user", password, "cnonce");
                let mut s = ScramServer::new(m);
                let first = c.first();
                let Step::Challenge(challenge) =
                    s.step(&first, |u| (u == "we=ird,user").then(|| cred.clone()), "snonce").unwrap()
                else {
                    panic!("a challenge")
                };
                let last = c.step(&challenge).unwrap().expect("client-final");
                match s.step(&last, |_| None, "unused") {
                    Ok(Step::Done { user, server_final }) => {
                        assert_eq!(user, "we=ird,user");
                        (c.step(&server_final), Some(server_final))
                    }
                    Ok(other) => panic!("{other:?}"),
                    Err(e) => (Err(e), None),
                }
            };
            let (ok, server_final) = login("p,=w");
            assert_eq!(ok, Ok(None), "{m:?}");
            assert_eq!(login("wrong").0, Err(ScramError::BadProof));
            // A server that does not know the credential cannot forge server-final.
            let mut c = ScramClient::new(m, "u", "p,=w", "cnonce");
            c.first();
            c.step(b"r=cnonceX,s=c2FsdHk=,i=4096").unwrap();
            let mut forged = server_final.unwrap();
            forged[3] ^= 1;
            assert!(c.step(&forged).is_err());
        }
        // A server nonce that does not extend ours, or too few iterations: refused.
        let mut c = ScramClient::new(Mechanism::Sha256, "u", "p", "abc");
        c.first();
        assert_eq!(c.step(b"r=xyz,s=c2FsdA==,i=4096"), Err(ScramError::NonceMismatch));
        let mut c = ScramClient::new(Mechanism::Sha256, "u", "p", "abc");
        c.first();
        assert_eq!(c.step(b"r=abcd,s=c2FsdA==,i=10"), Err(ScramError::IterationsTooLow(10)));
        let mut c = ScramClient::new(Mechanism::Sha256, "u", "p", "abc");
        c.first();
        assert_eq!(c.step(b"r=abcd,s=c2FsdA==,i=2000000000"), Err(ScramError::IterationsTooHigh(2_000_000_000)));
    }

    #[test]
    fn properties_as_kafka_clients_read_them() {
        let s = UpstreamSecurity::from_properties(&props(&[]), "h").unwrap();
        assert_eq!((s.protocol.as_str(), s.tls.is_none(), s.sasl.is_none()), ("PLAINTEXT", true, true));
        let s = UpstreamSecurity::from_properties(
            &props(&[
                ("security.protocol", "sasl_plaintext"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                (
                    "sasl.jaas.config",
                    r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="ferry" password="s3cret";"#,
                ),
            ]),
            "h",
        )
        .unwrap();
        let c = s.sasl.unwrap();
        assert_eq!(
            (c.mechanism, c.username.as_str(), c.password.as_str()),
            (ClientMechanism::Scram(Mechanism::Sha512), "ferry", "s3cret")
        );
        assert!(!format!("{c:?}").contains("s3cret"), "the password stays out of logs");
        let e = |pairs: &[(&str, &str)]| UpstreamSecurity::from_properties(&props(pairs), "h").err().unwrap();
        assert!(e(&[("security.protocol", "SASL_SSL")]).contains("GSSAPI"));
        assert!(e(&[("security.protocol", "TCP")]).contains("security.protocol TCP"));
        assert!(e(&[("security.protocol", "SASL_PLAINTEXT"), ("sasl.mechanism", "PLAIN")]).contains("sasl.jaas.config"));
        assert!(e(&[
            ("security.protocol", "SSL"),
            ("ssl.truststore.type", "JKS"),
            ("ssl.truststore.location", "/x.jks")
        ])
        .contains("keytool"));
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, include_bytes!("../../tests/fixtures/tls/server.pem")).unwrap();
        let s = UpstreamSecurity::from_properties(
            &props(&[
                ("security.protocol", "SSL"),
                ("ssl.truststore.type", "PEM"),
                ("ssl.truststore.location", ca.to_str().unwrap()),
            ]),
            "localhost",
        )
        .unwrap();
        assert!(s.tls.is_some() && s.sasl.is_none());
    }

    #[test]
    fn plain_token_is_rfc4616() {
        let c = Credentials { mechanism: ClientMechanism::Plain, username: "a".into(), password: "b".into() };
        assert_eq!(plain_token(&c), b"\0a\0b");
    }
}
