//! The security settings `serve` takes from the broker's `server.properties` (and
//! `--sasl-plain-users`): the SASL mechanisms and PLAIN users of the broker's SASL listener,
//! the re-authentication and failure-delay settings, and the authorizer. logferry adds no
//! security configuration of its own: it enforces what the broker enforces
//! (../shared/docs/cluster-and-security.md §6.3).
//!
//! The broker's SASL listener is the first in `listeners` whose protocol (by
//! `listener.security.protocol.map`, else its name) is SASL_PLAINTEXT or SASL_SSL; its
//! `listener.name.<name>.` keys win over the bare ones. PLAIN users are the `user_NAME="..."`
//! options of `listener.name.<name>.plain.sasl.jaas.config`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::auth::acl::AuthorizerConfig;
use crate::auth::sasl::{SaslConfig, FAILED_AUTHENTICATION_DELAY_MS_DEFAULT};

/// The mechanisms logferry can serve (GSSAPI and OAUTHBEARER need the broker's JVM plug-ins).
pub const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The security a broker's properties describe.
#[derive(Debug, Default)]
pub struct BrokerSecurity {
    pub sasl: SaslConfig,
    /// Mechanisms the broker enables that logferry cannot serve (for a warning).
    pub skipped_mechanisms: Vec<String>,
    pub authorizer: Option<AuthorizerConfig>,
}

/// The name of the broker's first SASL listener, lowercased (as in `listener.name.<l>.`).
fn sasl_listener(props: &BTreeMap<String, String>) -> Option<String> {
    let map: HashMap<String, String> = props
        .get("listener.security.protocol.map")
        .map(|m| {
            m.split(',')
                .filter_map(|e| e.split_once(':'))
                .map(|(n, p)| (n.trim().to_ascii_uppercase(), p.trim().to_ascii_uppercase()))
                .collect()
        })
        .unwrap_or_default();
    let listeners = props.get("listeners")?;
    listeners.split(',').find_map(|l| {
        let name = l.split_once("://")?.0.trim().to_ascii_uppercase();
        let protocol = map.get(&name).cloned().unwrap_or_else(|| name.clone());
        protocol.starts_with("SASL_").then(|| name.to_ascii_lowercase())
    })
}

/// The options of a JAAS login module line: `Module flag k1="v1" k2=v2;`.
pub fn jaas_options(text: &str) -> Result<Vec<(String, String)>, String> {
    let body = text.trim().trim_end_matches(';');
    let mut chars = body.char_indices().peekable();
    let mut words = 0;
    // Module class and control flag.
    while words < 2 {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Err("no login module and control flag".into());
        }
        while chars.next_if(|(_, c)| !c.is_whitespace()).is_some() {}
        words += 1;
    }
    let mut out = Vec::new();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else { break };
        let mut key_end = start;
        let mut has_value = false;
        for (i, c) in chars.by_ref() {
            if c == '=' {
                key_end = i;
                has_value = true;
                break;
            }
            if c.is_whitespace() {
                return Err(format!("option {:?} has no value", &body[start..i]));
            }
            key_end = i + c.len_utf8();
        }
        let key = body[start..key_end].to_string();
        if !has_value {
            return Err(format!("option {key:?} has no value"));
        }
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '"').is_some() {
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => value.push(e),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("option {key:?}: unterminated quoted value"));
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Reads the broker's security from its properties.
pub fn from_properties(props: &BTreeMap<String, String>) -> Result<BrokerSecurity, String> {
    let listener = sasl_listener(props);
    let get = |key: &str| -> Option<&String> {
        listener.as_ref().and_then(|l| props.get(&format!("listener.name.{l}.{key}"))).or_else(|| props.get(key))
    };
    let mut sec = BrokerSecurity::default();
    if let Some(l) = &listener {
        let enabled = get("sasl.enabled.mechanisms").map_or("GSSAPI", String::as_str);
        for m in enabled.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            if MECHANISMS.contains(&m) {
                sec.sasl.mechanisms.push(m.to_string());
            } else {
                sec.skipped_mechanisms.push(m.to_string());
            }
        }
        if sec.sasl.mechanisms.iter().any(|m| m == "PLAIN") {
            let key = format!("listener.name.{l}.plain.sasl.jaas.config");
            if let Some(jaas) = props.get(&key) {
                let options = jaas_options(jaas).map_err(|e| format!("{key}: {e}"))?;
                for (k, v) in options {
                    if let Some(user) = k.strip_prefix("user_") {
                        sec.sasl.plain_users.insert(user.to_string(), v);
                    }
                }
            }
            if props.contains_key(&format!("listener.name.{l}.plain.sasl.server.callback.handler.class")) {
                return Err(format!(
                    "listener.name.{l}.plain.sasl.server.callback.handler.class: the broker checks PLAIN \
                     passwords with its own code; give logferry the users with --sasl-plain-users"
                ));
            }
        }
        let reauth = get("connections.max.reauth.ms").map_or("0", String::as_str);
        sec.sasl.reauth_ms =
            reauth.trim().parse().map_err(|_| format!("connections.max.reauth.ms {reauth:?} is not a number"))?;
    }
    sec.sasl.failed_delay_ms = match props.get("connection.failed.authentication.delay.ms") {
        Some(v) => {
            v.trim().parse().map_err(|_| format!("connection.failed.authentication.delay.ms {v:?} is not a number"))?
        }
        None => FAILED_AUTHENTICATION_DELAY_MS_DEFAULT,
    };
    if let Some(class) = props.get("principal.builder.class").filter(|c| !c.trim().is_empty()) {
        return Err(format!("principal.builder.class {class}: logferry cannot reproduce a custom principal builder"));
    }
    match props.get("authorizer.class.name").map(|c| c.trim()) {
        None | Some("") => {}
        Some(STANDARD_AUTHORIZER) => {
            sec.authorizer = Some(AuthorizerConfig::from_properties(
                props.get("super.users").map(String::as_str),
                props.get("allow.everyone.if.no.acl.found").map(String::as_str),
            ))
        }
        Some(other) => {
            return Err(format!(
                "authorizer.class.name {other}: logferry enforces the ACLs of {STANDARD_AUTHORIZER} only"
            ))
        }
    }
    Ok(sec)
}

/// `--sasl-plain-users FILE`: `NAME=PASSWORD` per line, `#` comments.
pub fn read_plain_users(path: &Path) -> Result<HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--sasl-plain-users {}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, password)) = line.split_once('=').filter(|(u, p)| !u.trim().is_empty() && !p.is_empty()) else {
            return Err(format!("--sasl-plain-users {}:{}: not NAME=PASSWORD", path.display(), n + 1));
        };
        out.insert(user.trim().to_string(), password.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::meta::parse_properties;

    const BROKER: &str = r#"
listeners=PLAINTEXT://:9092,SECURE://:9094,CONTROLLER://:9093
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SECURE:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
listener.name.secure.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512,GSSAPI
listener.name.secure.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \
    username="admin" \
    password="admin-secret" \
    user_admin="admin-secret" \
    user_alice="a \"quoted\" pw";
sasl.enabled.mechanisms=PLAIN
listener.name.secure.connections.max.reauth.ms=60000
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:broker
"#;

    #[test]
    fn the_brokers_sasl_listener_users_and_authorizer() {
        let sec = from_properties(&parse_properties(BROKER)).expect("parses");
        assert_eq!(sec.sasl.mechanisms, ["PLAIN", "SCRAM-SHA-512"]);
        assert_eq!(sec.skipped_mechanisms, ["GSSAPI"]);
        assert_eq!(sec.sasl.plain_users.get("admin").map(String::as_str), Some("admin-secret"));
        assert_eq!(sec.sasl.plain_users.get("alice").map(String::as_str), Some("a \"quoted\" pw"));
        assert_eq!(sec.sasl.plain_users.len(), 2, "username/password are the broker's own login, not users");
        assert_eq!(sec.sasl.reauth_ms, 60_000);
        assert_eq!(sec.sasl.failed_delay_ms, 100);
        let a = sec.authorizer.expect("authorizer");
        assert_eq!(a.super_users, ["User:admin", "User:broker"]);
        assert!(!a.allow_everyone_if_no_acl_found);
    }

    #[test]
    fn no_sasl_listener_and_refusals() {
        let plain = from_properties(&parse_properties("listeners=PLAINTEXT://:9092\n")).expect("parses");
        assert!(plain.sasl.mechanisms.is_empty() && plain.authorizer.is_none());
        let other = from_properties(&parse_properties("authorizer.class.name=com.acme.Authz\n"));
        assert!(other.is_err_and(|e| e.contains("StandardAuthorizer")));
        let pb = from_properties(&parse_properties("principal.builder.class=com.acme.P\n"));
        assert!(pb.is_err_and(|e| e.contains("principal builder")));
        // The default map: a listener named SASL_PLAINTEXT is one; the default mechanism is GSSAPI.
        let g = from_properties(&parse_properties("listeners=SASL_PLAINTEXT://:9092\n")).expect("parses");
        assert!(g.sasl.mechanisms.is_empty());
        assert_eq!(g.skipped_mechanisms, ["GSSAPI"]);
    }

    #[test]
    fn jaas_lines() {
        let o = jaas_options(r#"a.B required x="1" y=2 z="";"#).expect("parses");
        assert_eq!(o, [("x".into(), "1".into()), ("y".into(), "2".into()), ("z".into(), String::new())]);
        assert!(jaas_options("").is_err());
        assert!(jaas_options(r#"a.B required x="1"#).is_err());
        assert!(jaas_options("a.B required flag").is_err());
    }
}
