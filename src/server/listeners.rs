//! The client listeners and their security: which protocol each `--listen` speaks, and the
//! settings the connections of a SASL listener authenticate and are authorized with.
//!
//! `PROTOCOL://HOST:PORT` as in the broker's `listeners` (a bare `HOST:PORT` is PLAINTEXT);
//! SSL and SASL_SSL listeners need a TLS configuration (`crate::auth::tls`).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;

use crate::auth::acl::AuthorizerConfig;
use crate::auth::sasl::SaslConfig;

/// A listener's security protocol (`SecurityProtocol.java`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn is_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }

    pub fn is_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// One `--listen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSpec {
    pub protocol: SecurityProtocol,
    /// `HOST:PORT` as given (resolved by the caller).
    pub address: String,
}

/// Parses `PROTOCOL://HOST:PORT` or `HOST:PORT`.
pub fn parse_listener(spec: &str) -> Result<ListenerSpec, String> {
    let (protocol, address) = match spec.split_once("://") {
        None => (SecurityProtocol::Plaintext, spec),
        Some((p, rest)) => {
            let protocol = match p.to_ascii_uppercase().as_str() {
                "PLAINTEXT" => SecurityProtocol::Plaintext,
                "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
                "SSL" => SecurityProtocol::Ssl,
                "SASL_SSL" => SecurityProtocol::SaslSsl,
                _ => {
                    return Err(format!(
                        "--listen {spec:?}: unknown protocol {p:?} (PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL)"
                    ))
                }
            };
            (protocol, rest)
        }
    };
    Ok(ListenerSpec { protocol, address: address.to_string() })
}

/// What the connections of the listeners authenticate and are authorized with.
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub sasl: SaslConfig,
    /// The broker's StandardAuthorizer settings; `None`: no authorizer (`authorizer.class.name`
    /// empty), every request allowed, as on the broker.
    pub authorizer: Option<AuthorizerConfig>,
    /// The TLS configuration of the SSL listeners and of the SASL_SSL listeners (each from the
    /// broker's listener of that protocol, or the `--tls-*` flags).
    pub ssl: Option<Arc<ServerConfig>>,
    pub sasl_ssl: Option<Arc<ServerConfig>>,
}

impl Security {
    /// The TLS configuration a listener of `protocol` serves with (`None`: plain TCP).
    pub fn tls_for(&self, protocol: SecurityProtocol) -> Option<&Arc<ServerConfig>> {
        match protocol {
            SecurityProtocol::Ssl => self.ssl.as_ref(),
            SecurityProtocol::SaslSsl => self.sasl_ssl.as_ref(),
            _ => None,
        }
    }
}

/// A bound listener's address and protocol, as reported after binding.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    pub addr: SocketAddr,
    pub protocol: SecurityProtocol,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_specs() {
        assert_eq!(
            parse_listener("127.0.0.1:9192"),
            Ok(ListenerSpec { protocol: SecurityProtocol::Plaintext, address: "127.0.0.1:9192".into() })
        );
        assert_eq!(
            parse_listener("sasl_plaintext://[::1]:9193").map(|l| l.protocol),
            Ok(SecurityProtocol::SaslPlaintext)
        );
        assert_eq!(parse_listener("PLAINTEXT://h:1").map(|l| l.address), Ok("h:1".into()));
        assert_eq!(parse_listener("SASL_SSL://h:1").map(|l| l.protocol), Ok(SecurityProtocol::SaslSsl));
        assert_eq!(parse_listener("ssl://h:1").map(|l| l.protocol), Ok(SecurityProtocol::Ssl));
        assert!(parse_listener("FOO://h:1").is_err_and(|e| e.contains("unknown protocol")));
    }
}
