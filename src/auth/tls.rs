//! TLS for the SSL and SASL_SSL listeners: the certificate, key and trust the broker's
//! `server.properties` names (or `--tls-cert`/`--tls-key`/`--tls-client-ca`), turned into a
//! rustls server configuration, and the principal a client certificate maps to.
//!
//! Key material, as the broker's `DefaultSslEngineFactory` reads it
//! (../shared/docs/cluster-and-security.md §6.3):
//! - `ssl.keystore.type` PKCS12: `ssl.keystore.location` + `ssl.keystore.password` (the key
//!   entry's password is the store's, as keytool writes it; `ssl.key.password` is tried next).
//! - PEM: `ssl.keystore.location` names a file with the PKCS#8 key (`PRIVATE KEY`, or
//!   `ENCRYPTED PRIVATE KEY` with `ssl.key.password`) and the certificate chain, or the two are
//!   inline in `ssl.keystore.key` and `ssl.keystore.certificate.chain`.
//! - JKS (the broker's default type): refused with the keytool command that converts it.
//!   Trust (`ssl.truststore.*`, for client certificates) takes the same types.
//!
//! Which broker listener's keys apply: the first in `listeners` of the same protocol (SSL for
//! logferry's SSL listeners, SASL_SSL for its SASL_SSL listeners); `listener.name.<l>.` keys win
//! over the bare ones. `ssl.client.auth` applies to a SASL_SSL listener only when set with the
//! listener prefix (`ChannelBuilders.java`), as on the broker.
//!
//! Principals (`DefaultKafkaPrincipalBuilder`, §6.6): a client certificate's subject in RFC 2253
//! form as Java's `X500Principal.getName()` writes it, mapped by `ssl.principal.mapping.rules`
//! (only `DEFAULT` is supported; other rules are refused at startup); no certificate:
//! `User:ANONYMOUS`. Record bytes under TLS are copied and encrypted, never re-framed: see
//! `server::transport`.
//!
//! Departure from the broker: client certificates are verified by webpki, which refuses X.509
//! v1 certificates (what `openssl x509 -req` without extensions issues) that Java accepts. The
//! refusal is logged with the fix (reissue as v3); writing a chain verifier of our own to take
//! v1 would trade a rare compatibility gap for unreviewed security code.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// `ssl.client.auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    None,
    Requested,
    Required,
}

impl ClientAuth {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            other => Err(format!("ssl.client.auth {other:?}: one of none, requested, required")),
        }
    }
}

/// What a TLS listener serves with.
#[derive(Debug)]
pub struct TlsSettings {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivatePkcs8KeyDer<'static>,
    pub client_auth: ClientAuth,
    /// The CAs client certificates must chain to (empty: none configured).
    pub trust: Vec<CertificateDer<'static>>,
    /// `ssl.enabled.protocols`: TLS 1.2 allowed (1.3 always is).
    pub tls12: bool,
    pub tls13: bool,
    /// Where the key came from, for the start line.
    pub source: String,
}

/// `--tls-*` flags: override the broker's files.
#[derive(Clone, Debug, Default)]
pub struct TlsFlags {
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    pub client_ca: Option<std::path::PathBuf>,
    pub client_auth: Option<String>,
}

/// A PEM file's sections: (label, DER).
pub fn pem_sections(text: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8 text".to_string())?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find("-----BEGIN ") {
        let after = &rest[b + 11..];
        let Some(e) = after.find("-----") else { return Err("a BEGIN line without its end".into()) };
        let label = after[..e].to_string();
        let body_start = &after[e + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_start.find(&end_marker) else { return Err(format!("no {end_marker:?}")) };
        let b64: String = body_start[..end].chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| format!("section {label}: bad base64: {e}"))?;
        out.push((label, der));
        rest = &body_start[end + end_marker.len()..];
    }
    Ok(out)
}

/// The key and certificates of PEM text (the key decrypted with `key_password` if encrypted).
fn pem_key_and_chain(
    text: &[u8],
    key_password: Option<&str>,
    what: &str,
) -> Result<(Option<PrivatePkcs8KeyDer<'static>>, Vec<CertificateDer<'static>>), String> {
    let mut key = None;
    let mut chain = Vec::new();
    for (label, der) in pem_sections(text).map_err(|e| format!("{what}: {e}"))? {
        match label.as_str() {
            "CERTIFICATE" => chain.push(CertificateDer::from(der)),
            "PRIVATE KEY" => key = Some(PrivatePkcs8KeyDer::from(der)),
            "ENCRYPTED PRIVATE KEY" => {
                let Some(pw) = key_password else {
                    return Err(format!("{what}: the key is encrypted and ssl.key.password is not set"));
                };
                let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                    .map_err(|e| format!("{what}: encrypted key: {e}"))?;
                let doc = info.decrypt(pw).map_err(|e| format!("{what}: cannot decrypt the key: {e}"))?;
                key = Some(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec()));
            }
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                return Err(format!(
                    "{what}: the key is {label} (PKCS#1/SEC1); Kafka and logferry take PKCS#8: \
                     openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8"
                ))
            }
            _ => {}
        }
    }
    Ok((key, chain))
}

/// A private key and the certificate chain that goes with it.
pub(crate) type KeyChain = (PrivatePkcs8KeyDer<'static>, Vec<CertificateDer<'static>>);

/// A PKCS12 file's key chain and trusted certificates.
fn pkcs12(
    path: &str,
    password: &str,
    key_password: Option<&str>,
) -> Result<(Option<KeyChain>, Vec<CertificateDer<'static>>), String> {
    let data = read(path)?;
    let open = |pw: &str| {
        p12_keystore::KeyStore::from_pkcs12(&data, pw, p12_keystore::Pkcs12ImportPolicy::Relaxed)
            .map_err(|e| format!("{path}: cannot open the PKCS12 store: {e}"))
    };
    let store = match open(password) {
        Ok(s) => s,
        Err(e) => match key_password {
            Some(kp) if kp != password => open(kp)?,
            _ => return Err(e),
        },
    };
    let key = store.private_key_chain().map(|(_, chain)| {
        (
            PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()),
            chain.certs().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect(),
        )
    });
    let mut trusted = Vec::new();
    for (_, entry) in store.entries() {
        if let p12_keystore::KeyStoreEntry::Certificate(c) = entry {
            trusted.push(CertificateDer::from(c.as_der().to_vec()));
        }
    }
    Ok((key, trusted))
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if data.starts_with(&[0xfe, 0xed, 0xfe, 0xed]) {
        return Err(jks_message(path));
    }
    Ok(data)
}

fn jks_message(path: &str) -> String {
    format!(
        "{path} is a JKS keystore, which logferry cannot read; convert it (the broker reads the result too): \
         keytool -importkeystore -srckeystore {path} -destkeystore {path}.p12 -deststoretype PKCS12, \
         then set ssl.keystore.type=PKCS12 (or ssl.truststore.type) and the .location to the new file"
    )
}

/// The name of the broker's first listener of `protocol` (SSL or SASL_SSL), lowercased.
pub fn broker_listener(props: &BTreeMap<String, String>, protocol: &str) -> Option<String> {
    let map: HashMap<String, String> = props
        .get("listener.security.protocol.map")
        .map(|m| {
            m.split(',')
                .filter_map(|e| e.split_once(':'))
                .map(|(n, p)| (n.trim().to_ascii_uppercase(), p.trim().to_ascii_uppercase()))
                .collect()
        })
        .unwrap_or_default();
    props.get("listeners")?.split(',').find_map(|l| {
        let name = l.split_once("://")?.0.trim().to_ascii_uppercase();
        let p = map.get(&name).cloned().unwrap_or_else(|| name.clone());
        (p == protocol).then(|| name.to_ascii_lowercase())
    })
}

/// The TLS settings of logferry's `protocol` listeners (SSL or SASL_SSL) from the broker's
/// properties and the flags. `Ok(None)`: neither names a key.
pub fn settings(
    props: &BTreeMap<String, String>,
    protocol: &str,
    flags: &TlsFlags,
) -> Result<Option<TlsSettings>, String> {
    let listener = broker_listener(props, protocol);
    let prefixed = |key: &str| listener.as_ref().and_then(|l| props.get(&format!("listener.name.{l}.{key}")));
    let get = |key: &str| prefixed(key).or_else(|| props.get(key)).map(|v| v.trim().to_string());
    let key_password = get("ssl.key.password");

    let (mut key, mut chain, source) = match (&flags.cert, &flags.key) {
        (Some(cert), Some(keyf)) => {
            let (_, chain) = pem_key_and_chain(&read_path(cert)?, None, &cert.display().to_string())?;
            let (key, _) = pem_key_and_chain(&read_path(keyf)?, key_password.as_deref(), &keyf.display().to_string())?;
            let Some(key) = key else { return Err(format!("--tls-key {}: no PRIVATE KEY section", keyf.display())) };
            (Some(key), chain, format!("{} and {}", cert.display(), keyf.display()))
        }
        (Some(_), None) | (None, Some(_)) => return Err("--tls-cert and --tls-key go together".into()),
        (None, None) => (None, Vec::new(), String::new()),
    };
    let mut source = source;
    if key.is_none() {
        if let Some(((k, c), s)) = keystore(&get, key_password.as_deref())? {
            key = Some(k);
            chain = c;
            source = s;
        }
    }
    let Some(key) = key else { return Ok(None) };
    if chain.is_empty() {
        return Err(format!("{source}: no certificate"));
    }

    let trust = match &flags.client_ca {
        Some(ca) => pem_key_and_chain(&read_path(ca)?, None, &ca.display().to_string())?.1,
        None => trust_from(&get)?,
    };
    let client_auth = match &flags.client_auth {
        Some(v) => ClientAuth::parse(v)?,
        None => {
            // SASL_SSL: only the listener-prefixed key counts.
            let v = if protocol == "SASL_SSL" { prefixed("ssl.client.auth").cloned() } else { get("ssl.client.auth") };
            ClientAuth::parse(v.as_deref().unwrap_or("none"))?
        }
    };
    if client_auth != ClientAuth::None && trust.is_empty() {
        return Err(format!("ssl.client.auth {client_auth:?} needs trusted CAs (ssl.truststore.* or --tls-client-ca)"));
    }
    let protocols = get("ssl.enabled.protocols").unwrap_or_else(|| "TLSv1.2,TLSv1.3".into());
    let (mut tls12, mut tls13) = (false, false);
    for p in protocols.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match p {
            "TLSv1.2" => tls12 = true,
            "TLSv1.3" => tls13 = true,
            other => log::warn!("ssl.enabled.protocols: {other} is not offered (logferry speaks TLSv1.2 and TLSv1.3)"),
        }
    }
    if !tls12 && !tls13 {
        return Err(format!("ssl.enabled.protocols {protocols:?}: neither TLSv1.2 nor TLSv1.3"));
    }
    match get("ssl.principal.mapping.rules").as_deref() {
        None | Some("DEFAULT") | Some("") => {}
        Some(rules) => {
            return Err(format!(
                "ssl.principal.mapping.rules {rules:?}: logferry maps certificate subjects with DEFAULT only"
            ))
        }
    }
    Ok(Some(TlsSettings { chain, key, client_auth, trust, tls12, tls13, source }))
}

/// The key and chain `ssl.keystore.*` names (with where they came from), `Ok(None)` when no
/// keystore is named.
pub(crate) fn keystore(
    get: &dyn Fn(&str) -> Option<String>,
    key_password: Option<&str>,
) -> Result<Option<(KeyChain, String)>, String> {
    let store_type = get("ssl.keystore.type").unwrap_or_else(|| "JKS".into()).to_ascii_uppercase();
    let location = get("ssl.keystore.location");
    let inline_key = get("ssl.keystore.key");
    if location.is_none() && inline_key.is_none() {
        return Ok(None);
    }
    match store_type.as_str() {
        "JKS" => Err(jks_message(location.as_deref().unwrap_or("the keystore"))),
        "PKCS12" => {
            let Some(loc) = location else {
                return Err("ssl.keystore.type PKCS12 without ssl.keystore.location".into());
            };
            let password = get("ssl.keystore.password").unwrap_or_default();
            let (k, _) = pkcs12(&loc, &password, key_password)?;
            let Some(k) = k else { return Err(format!("{loc}: no private key entry")) };
            Ok(Some((k, loc)))
        }
        "PEM" => {
            let (k, c, s) = match (location, inline_key) {
                (Some(loc), _) => {
                    let (k, c) = pem_key_and_chain(&read(&loc)?, key_password, &loc)?;
                    (k, c, loc)
                }
                (None, Some(inline)) => {
                    let (k, _) = pem_key_and_chain(inline.as_bytes(), key_password, "ssl.keystore.key")?;
                    let chain_text = get("ssl.keystore.certificate.chain").unwrap_or_default();
                    let (_, c) = pem_key_and_chain(chain_text.as_bytes(), None, "ssl.keystore.certificate.chain")?;
                    (k, c, "ssl.keystore.key".to_string())
                }
                (None, None) => return Ok(None),
            };
            let Some(k) = k else { return Err(format!("{s}: no PRIVATE KEY section")) };
            Ok(Some(((k, c), s)))
        }
        other => Err(format!("ssl.keystore.type {other}: PKCS12 or PEM (JKS: convert it)")),
    }
}

fn read_path(p: &Path) -> Result<Vec<u8>, String> {
    read(&p.display().to_string())
}

/// `ssl.truststore.*`: the CAs client certificates are checked against.
pub(crate) fn trust_from(get: &dyn Fn(&str) -> Option<String>) -> Result<Vec<CertificateDer<'static>>, String> {
    let store_type = get("ssl.truststore.type").unwrap_or_else(|| "JKS".into()).to_ascii_uppercase();
    if let Some(inline) = get("ssl.truststore.certificates") {
        return Ok(pem_key_and_chain(inline.as_bytes(), None, "ssl.truststore.certificates")?.1);
    }
    let Some(loc) = get("ssl.truststore.location") else { return Ok(Vec::new()) };
    match store_type.as_str() {
        "JKS" => Err(jks_message(&loc)),
        "PKCS12" => {
            let password = get("ssl.truststore.password").unwrap_or_default();
            let (key, mut trusted) = pkcs12(&loc, &password, None)?;
            if let Some((_, chain)) = key {
                trusted.extend(chain);
            }
            Ok(trusted)
        }
        "PEM" => Ok(pem_key_and_chain(&read(&loc)?, None, &loc)?.1),
        other => Err(format!("ssl.truststore.type {other}: PKCS12 or PEM (JKS: convert it)")),
    }
}

/// The rustls configuration of a TLS listener (ring's cipher suites; TLS 1.2 and/or 1.3).
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if s.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if s.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match s.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let mut roots = RootCertStore::empty();
            for c in &s.trust {
                roots.add(c.clone()).map_err(|e| format!("trusted CA: {e}"))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if auth == ClientAuth::Requested { v.allow_unauthenticated() } else { v };
            builder.with_client_cert_verifier(v.build().map_err(|e| format!("client verifier: {e}"))?)
        }
    };
    let mut config = builder
        .with_single_cert(s.chain.clone(), PrivateKeyDer::Pkcs8(s.key.clone_key()))
        .map_err(|e| format!("{}: the key does not fit the certificate or is not usable: {e}", s.source))?;
    // Kafka has no ALPN; sessions resume through tickets or the cache as rustls defaults.
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

/// A server configuration from PEM text (a certificate chain and a PKCS#8 key), TLS 1.2 and
/// 1.3, no client certificates: for tools and fuzzing, where there is no broker to mirror.
pub fn server_config_from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, String> {
    let (_, chain) = pem_key_and_chain(chain_pem, None, "certificate chain")?;
    let (key, _) = pem_key_and_chain(key_pem, None, "key")?;
    let key = key.ok_or("key: no PRIVATE KEY section")?;
    server_config(&TlsSettings {
        chain,
        key,
        client_auth: ClientAuth::None,
        trust: Vec::new(),
        tls12: true,
        tls13: true,
        source: "PEM text".into(),
    })
}

/// `User:<subject in RFC 2253>` of a client certificate (`DEFAULT` mapping).
pub fn principal_of(cert: &CertificateDer<'_>) -> Result<String, String> {
    let (_, x509) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| format!("client certificate: {e}"))?;
    Ok(format!("User:{}", rfc2253(x509.subject())))
}

/// The RDN keywords Java's `X500Principal.getName()` writes by name (others as a dotted OID
/// with the value's DER in hex).
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// A name in RFC 2253 form as `sun.security.x509.AVA.toRFC2253String` writes it: RDNs last to
/// first, joined by `,`; attributes of one RDN by `+`; `,=+<>#;"\` escaped with `\`, and
/// leading and trailing spaces too.
pub fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut rdns = Vec::new();
    for rdn in name.iter() {
        let mut avas = Vec::new();
        for ava in rdn.iter() {
            let oid = ava.attr_type().to_id_string();
            let text = match (keyword(&oid), ava.attr_value().as_str()) {
                (Some(k), Ok(v)) => format!("{k}={}", escape_value(v)),
                _ => {
                    let v = ava.attr_value();
                    let mut der = Vec::new();
                    let _ = der_write(v, &mut der);
                    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{oid}=#{hex}")
                }
            };
            avas.push(text);
        }
        rdns.push(avas.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

/// The DER of an attribute value (tag, length, content).
fn der_write(v: &x509_parser::der_parser::asn1_rs::Any<'_>, out: &mut Vec<u8>) -> Result<(), ()> {
    use x509_parser::der_parser::asn1_rs::ToDer;
    let bytes = v.to_der_vec().map_err(|_| ())?;
    out.extend_from_slice(&bytes);
    Ok(())
}

fn escape_value(v: &str) -> String {
    const ESCAPEES: &str = ",=+<>#;\"\\";
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        if ESCAPEES.contains(c) {
            s.push('\\');
            s.push(c);
        } else if c == '\0' {
            s.push_str("\\00");
        } else {
            s.push(c);
        }
    }
    // Leading and trailing spaces (and CRs) are escaped too.
    let chars: Vec<char> = s.chars().collect();
    let lead = chars.iter().take_while(|c| **c == ' ' || **c == '\r').count();
    let trail = chars.iter().rev().take_while(|c| **c == ' ' || **c == '\r').count();
    if lead == 0 && trail == 0 {
        return s;
    }
    let mut out = String::with_capacity(s.len() + lead + trail);
    for (i, c) in chars.iter().enumerate() {
        if i < lead || i >= chars.len() - trail {
            out.push('\\');
        }
        out.push(*c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_sections_and_jks() {
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n\
                   -----BEGIN PRIVATE KEY-----\nBAU=\n-----END PRIVATE KEY-----\n";
        let s = pem_sections(pem.as_bytes()).unwrap();
        assert_eq!(s, vec![("CERTIFICATE".into(), vec![0, 1, 2, 3]), ("PRIVATE KEY".into(), vec![4, 5])]);
        assert!(pem_sections(b"-----BEGIN X-----\nAA==\n").is_err());
        let (k, c) = pem_key_and_chain(pem.as_bytes(), None, "t").unwrap();
        assert_eq!(c.len(), 1);
        assert!(k.is_some());
        let dir = tempfile::tempdir().unwrap();
        let jks = dir.path().join("ks.jks");
        std::fs::write(&jks, [0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]).unwrap();
        let props: BTreeMap<String, String> = [
            ("listeners", "SSL://:9093"),
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.location", jks.to_str().unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let e = settings(&props, "SSL", &TlsFlags::default()).unwrap_err();
        assert!(e.contains("JKS") && e.contains("keytool -importkeystore"), "{e}");
        let mut props2 = props.clone();
        props2.remove("ssl.keystore.type");
        assert!(settings(&props2, "SSL", &TlsFlags::default()).unwrap_err().contains("JKS"));
        let none: BTreeMap<String, String> = BTreeMap::new();
        assert!(settings(&none, "SSL", &TlsFlags::default()).unwrap().is_none());
    }

    #[test]
    fn escaping_follows_java() {
        assert_eq!(escape_value("alice"), "alice");
        assert_eq!(escape_value("a,b+c=d"), "a\\,b\\+c\\=d");
        assert_eq!(escape_value(" x "), "\\ x\\ ");
        assert_eq!(escape_value("#1"), "\\#1");
    }

    #[test]
    fn client_auth_values() {
        assert_eq!(ClientAuth::parse("REQUIRED"), Ok(ClientAuth::Required));
        assert_eq!(ClientAuth::parse("requested"), Ok(ClientAuth::Requested));
        assert!(ClientAuth::parse("yes").is_err());
    }

    #[test]
    fn principal_from_a_real_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CountryName, "DE");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        params.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, "eng");
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        // Java's X500Principal.getName(): the last RDN first, commas escaped.
        assert_eq!(principal_of(cert.der()).unwrap(), "User:CN=alice,OU=eng,O=Acme\\, Inc.,C=DE");
        assert!(principal_of(&CertificateDer::from(vec![1u8, 2, 3])).is_err());
    }
}
