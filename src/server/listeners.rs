//! The client listeners and their security: which protocol each `--listen` speaks, and the
//! settings the connections of a SASL listener authenticate and are authorized with.
//!
//! `PROTOCOL://HOST:PORT` as in the broker's `listeners` (a bare `HOST:PORT` is PLAINTEXT).
//! SSL and SASL_SSL are refused with a message: TLS is not built yet (issue 14).

use std::net::SocketAddr;

use crate::auth::acl::AuthorizerConfig;
use crate::auth::sasl::SaslConfig;

/// A listener's security protocol (`SecurityProtocol.java`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    SaslPlaintext,
}

impl SecurityProtocol {
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
        }
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
                "SSL" | "SASL_SSL" => {
                    return Err(format!(
                        "--listen {spec:?}: {p} needs TLS, which this logferry does not have yet; \
                         use PLAINTEXT or SASL_PLAINTEXT (on a trusted network, or behind a TLS proxy)"
                    ))
                }
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
        assert!(parse_listener("SASL_SSL://h:1").is_err_and(|e| e.contains("TLS")));
        assert!(parse_listener("FOO://h:1").is_err_and(|e| e.contains("unknown protocol")));
    }
}
