//! Authentication and authorization (DESIGN's `src/auth/`), sans-io. SASL as state machines:
//! client tokens in, a challenge, success or a failure out.
//! Owns the mechanisms' byte formats, the credential checks and the order of one connection's
//! exchange; the server owns the sockets, the failure delay's timer and the log lines.
//!
//! - [`acl`]: Kafka's StandardAuthorizer decision over the metadata log's ACLs, and their index.
//! - [`sasl`]: one connection on a SASL listener: ApiVersions, SaslHandshake v0–1,
//!   SaslAuthenticate v0–2 or raw v0 tokens, the pre-authentication gate, re-authentication.
//! - [`plain`]: SASL/PLAIN (RFC 4616) against passwords the caller looks up (the broker's JAAS
//!   `user_NAME="..."` entries or a users file).
//! - [`scram`]: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) against the salted
//!   credentials the cluster keeps in its metadata log ([`crate::cluster::image::ScramCredential`]).
//! - [`client`]: logferry's own side of the upstream connection: its properties file
//!   (`--upstream-config`), the TLS client configuration, SCRAM and PLAIN as a client.
//! - [`tls`]: the rustls configuration of the SSL and SASL_SSL listeners from the broker's
//!   keystores (PKCS12, PEM) or PEM flags, and the principal of a client certificate.
//!
//! Every failure the client may see carries Kafka's own message text, so a client logs the same
//! line whichever of broker or logferry refused it.

pub mod acl;
pub mod client;
pub mod plain;
pub mod sasl;
pub mod scram;
pub mod tls;

/// Equal-length byte strings compared in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A server nonce for SCRAM: 24 random bytes in base64 (printable, never ',').
pub fn random_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(base64_encode(&bytes))
}

pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_fresh_printable_and_comma_free() {
        let a = random_nonce().expect("randomness");
        let b = random_nonce().expect("randomness");
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_graphic() && c != b','), "{a}");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
