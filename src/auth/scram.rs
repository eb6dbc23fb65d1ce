//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side, as Kafka's
//! `ScramSaslServer` runs them: two client messages, one challenge, one final answer.
//!
//! ```text
//! client-first  = gs2-header client-first-bare
//!   gs2-header  = "n" "," ["a=" saslname] ","   (Kafka's only form: "y" and "p=" are refused)
//!   client-first-bare = "n=" saslname ",r=" c-nonce ["," extensions]
//! server-first  = "r=" c-nonce s-nonce ",s=" base64(salt) ",i=" iterations
//! client-final  = "c=" base64(gs2-header) ",r=" c-nonce s-nonce ",p=" base64(ClientProof)
//! server-final  = "v=" base64(ServerSignature)
//!
//! AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
//! ClientSignature = HMAC(StoredKey, AuthMessage);   ClientKey = ClientProof XOR ClientSignature
//! accepted when H(ClientKey) == StoredKey;         ServerSignature = HMAC(ServerKey, AuthMessage)
//! saslname: UTF-8 with "," written "=2C" and "=" written "=3D"
//! ```
//!
//! Sans-io: the server nonce and the credential lookup are passed in. The credentials are the
//! cluster's (`UserScramCredentialRecord`s of the metadata log); Kafka's SCRAM mechanism type 1 is
//! SHA-256 and 2 is SHA-512. Delegation tokens (`tokenauth=true`) are not supported and refused.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::{base64_decode, base64_encode, constant_time_eq};
use crate::cluster::image::ScramCredential;

/// Kafka's minimum iteration count for both mechanisms (`ScramMechanism.minIterations`).
pub const ITERATIONS_MIN: i32 = 4096;
/// Kafka's maximum (`ScramMechanism.maxIterations`): a client refuses a server that asks more
/// (each iteration is an HMAC, so a hostile count would pin the loop).
pub const ITERATIONS_MAX: i32 = 16384;

/// The two SCRAM mechanisms Kafka offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    /// The SASL mechanism name, as in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    /// The mechanism's type in `UserScramCredentialRecord` (Kafka's `ScramMechanism.type`).
    pub fn kafka_type(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        match self {
            Mechanism::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
            Mechanism::Sha512 => match Hmac::<Sha512>::new_from_slice(key) {
                Ok(mut m) => {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            },
        }
    }
}

/// Why an exchange failed. `Display` is for the log line; the client is told
/// [`client_message`], the one text the broker sends for every SCRAM failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    /// A message that does not follow the grammar above.
    Malformed(&'static str),
    /// Channel binding (`p=`) or delegation tokens (`tokenauth`), which Kafka's SCRAM lacks too.
    Unsupported(&'static str),
    /// An authorization id other than the user.
    AuthzidMismatch,
    /// No credential for this user and mechanism.
    UnknownUser,
    /// A credential with fewer iterations than the mechanism's minimum.
    IterationsTooLow(i32),
    /// A server asking for more iterations than Kafka's maximum.
    IterationsTooHigh(i32),
    /// The final message's nonce is not the one this exchange made.
    NonceMismatch,
    /// The final message's channel binding is not the first message's gs2 header.
    ChannelBindingMismatch,
    /// A wrong password.
    BadProof,
    /// A message after the exchange ended (or after it failed).
    Finished,
}

impl std::fmt::Display for ScramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScramError::Malformed(what) => write!(f, "malformed SCRAM message: {what}"),
            ScramError::Unsupported(what) => write!(f, "unsupported: {what}"),
            ScramError::AuthzidMismatch => f.write_str(
                "Authentication failed: Client requested an authorization id that is different from username",
            ),
            ScramError::UnknownUser => f.write_str("Authentication failed: Invalid user credentials"),
            ScramError::IterationsTooLow(i) => write!(f, "Iterations {i} is less than the minimum {ITERATIONS_MIN}"),
            ScramError::IterationsTooHigh(i) => write!(f, "Iterations {i} is more than the maximum {ITERATIONS_MAX}"),
            ScramError::NonceMismatch => f.write_str("Invalid client nonce in the final client message."),
            ScramError::ChannelBindingMismatch => f.write_str("Invalid channel binding in the final client message."),
            ScramError::BadProof => f.write_str("Invalid client credentials"),
            ScramError::Finished => f.write_str("SCRAM exchange already finished"),
        }
    }
}

/// What the broker answers in SaslAuthenticate for any SCRAM failure.
pub fn client_message(mechanism: Mechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

/// What the server says after a client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge (server-first) and wait for the client's final message.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `server_final` as the last token.
    Done { user: String, server_final: Vec<u8> },
}

#[derive(Debug)]
enum State {
    Start,
    SentFirst { user: String, gs2_header: String, auth_prefix: String, nonce: String, credential: ScramCredential },
    Finished,
}

/// One SCRAM exchange on one connection.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: Mechanism,
    state: State,
}

impl ScramServer {
    pub fn new(mechanism: Mechanism) -> ScramServer {
        ScramServer { mechanism, state: State::Start }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Feeds one client token. `credential_of` looks up the user's credential for this
    /// mechanism; `server_nonce` is fresh randomness ([`super::random_nonce`]). A failure ends
    /// the exchange.
    pub fn step(
        &mut self,
        token: &[u8],
        credential_of: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &str,
    ) -> Result<Step, ScramError> {
        let state = std::mem::replace(&mut self.state, State::Finished);
        match state {
            State::Start => {
                let (next, challenge) = self.first(token, credential_of, server_nonce)?;
                self.state = next;
                Ok(Step::Challenge(challenge))
            }
            State::SentFirst { user, gs2_header, auth_prefix, nonce, credential } => {
                self.last(token, user, &gs2_header, &auth_prefix, &nonce, &credential)
            }
            State::Finished => Err(ScramError::Finished),
        }
    }

    fn first(
        &self,
        token: &[u8],
        credential_of: impl FnOnce(&str) -> Option<ScramCredential>,
        server_nonce: &str,
    ) -> Result<(State, Vec<u8>), ScramError> {
        let text = std::str::from_utf8(token).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (cbind, rest) = text.split_once(',').ok_or(ScramError::Malformed("no gs2 header"))?;
        match cbind {
            "n" => {}
            "y" => return Err(ScramError::Unsupported("a client that supports channel binding")),
            c if c.starts_with("p=") => return Err(ScramError::Unsupported("channel binding")),
            _ => return Err(ScramError::Malformed("gs2 channel binding flag")),
        }
        let (authzid, bare) = rest.split_once(',').ok_or(ScramError::Malformed("no gs2 header"))?;
        let gs2_header = format!("{cbind},{authzid},");
        let mut fields = bare.split(',');
        let user = fields
            .next()
            .and_then(|f| f.strip_prefix("n="))
            .ok_or(ScramError::Malformed("no n= in the first message"))?;
        let user = unescape(user).ok_or(ScramError::Malformed("saslname escape"))?;
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or(ScramError::Malformed("no r= in the first message"))?;
        for extension in fields {
            let (key, value) = extension.split_once('=').ok_or(ScramError::Malformed("extension"))?;
            if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
                return Err(ScramError::Unsupported("delegation tokens"));
            }
        }
        if !authzid.is_empty() {
            let requested = authzid.strip_prefix("a=").ok_or(ScramError::Malformed("authzid"))?;
            if unescape(requested).as_deref() != Some(user.as_str()) {
                return Err(ScramError::AuthzidMismatch);
            }
        }
        let credential = credential_of(&user).ok_or(ScramError::UnknownUser)?;
        if credential.iterations < ITERATIONS_MIN {
            return Err(ScramError::IterationsTooLow(credential.iterations));
        }
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={}", base64_encode(&credential.salt), credential.iterations);
        let auth_prefix = format!("{bare},{server_first}");
        let state = State::SentFirst { user, gs2_header, auth_prefix, nonce, credential };
        Ok((state, server_first.into_bytes()))
    }

    fn last(
        &self,
        token: &[u8],
        user: String,
        gs2_header: &str,
        auth_prefix: &str,
        nonce: &str,
        credential: &ScramCredential,
    ) -> Result<Step, ScramError> {
        let text = std::str::from_utf8(token).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) =
            text.rsplit_once(",p=").ok_or(ScramError::Malformed("no p= in the final message"))?;
        let mut fields = without_proof.split(',');
        let binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no c= in the final message"))?;
        let their_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no r= in the final message"))?;
        if their_nonce != nonce {
            return Err(ScramError::NonceMismatch);
        }
        if base64_decode(binding).as_deref() != Some(gs2_header.as_bytes()) {
            return Err(ScramError::ChannelBindingMismatch);
        }
        let proof = base64_decode(proof).ok_or(ScramError::Malformed("proof is not base64"))?;
        let auth_message = format!("{auth_prefix},{without_proof}");
        let m = self.mechanism;
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::BadProof);
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
            return Err(ScramError::BadProof);
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok(Step::Done { user, server_final: format!("v={}", base64_encode(&server_signature)).into_bytes() })
    }
}

/// SCRAM's Hi(): PBKDF2 (RFC 8018) with one output block (the client's salted password).
pub fn hi(m: Mechanism, password: &[u8], salt: &[u8], iterations: i32) -> Vec<u8> {
    let mut block = salt.to_vec();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = m.hmac(password, &block);
    let mut out = u.clone();
    for _ in 1..iterations.max(1) {
        u = m.hmac(password, &u);
        out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
    }
    out
}

/// Undoes saslname escaping: "=2C" is ',', "=3D" is '='; any other '=' is an error.
fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use super::hi;

    /// A credential as `kafka-configs.sh --add-config SCRAM-...=[password=...]` makes one.
    pub(crate) fn credential(m: Mechanism, password: &str, salt: &[u8], iterations: i32) -> ScramCredential {
        let salted = hi(m, password.as_bytes(), salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: m.hash(&client_key),
            server_key: m.hmac(&salted, b"Server Key"),
            iterations,
        }
    }

    /// The client's final message for a password, given the server's first message.
    pub(crate) fn client_final(m: Mechanism, password: &str, client_first_bare: &str, server_first: &str) -> String {
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = &fields[0][2..];
        let salt = base64_decode(&fields[1][2..]).expect("salt");
        let iterations: i32 = fields[2][2..].parse().expect("iterations");
        let salted = hi(m, password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", base64_encode(&proof))
    }

    /// RFC 7677 section 3: the SCRAM-SHA-256 example exchange, byte for byte.
    #[test]
    fn rfc7677_example() {
        let salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let cred = credential(Mechanism::Sha256, "pencil", &salt, 4096);
        let mut s = ScramServer::new(Mechanism::Sha256);
        let first = s.step(
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            |u| (u == "user").then(|| cred.clone()),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        assert_eq!(
            first,
            Ok(Step::Challenge(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".to_vec()
            ))
        );
        let last = s.step(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            |_| None,
            "",
        );
        assert_eq!(
            last,
            Ok(Step::Done {
                user: "user".into(),
                server_final: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
            })
        );
        assert_eq!(s.step(b"again", |_| None, ""), Err(ScramError::Finished));
    }

    /// The credential of user alice (password alice-secret, SCRAM-SHA-256) that a real Kafka
    /// 4.4 cluster wrote to its metadata log (tests/fixtures/cluster-metadata, offset 126).
    #[test]
    fn authenticates_against_a_credential_kafka_wrote() {
        let cred = ScramCredential {
            salt: base64_decode("MW9kdjFhY3FpOG1id2doOWlyMnpscXMwNzQ=").expect("b64"),
            stored_key: base64_decode("//mLUQzEWyXlYkgu2gfMObEYIVSmcylKgOzvXTODHAw=").expect("b64"),
            server_key: base64_decode("WVMn7mfNkjfPR4AKPvGiz21x3a8oIUymAgOX5gvaFtI=").expect("b64"),
            iterations: 4096,
        };
        for (password, ok) in [("alice-secret", true), ("alice-secreT", false)] {
            let mut s = ScramServer::new(Mechanism::Sha256);
            let bare = "n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
            let Ok(Step::Challenge(first)) =
                s.step(format!("n,,{bare}").as_bytes(), |_| Some(cred.clone()), "3rfcNHYJY1ZVvWVs7j")
            else {
                panic!("no challenge")
            };
            let first = String::from_utf8(first).expect("utf8");
            let last = s.step(client_final(Mechanism::Sha256, password, bare, &first).as_bytes(), |_| None, "");
            if ok {
                assert!(matches!(last, Ok(Step::Done { ref user, .. }) if user == "alice"), "{last:?}");
            } else {
                assert_eq!(last, Err(ScramError::BadProof));
            }
        }
    }

    #[test]
    fn sha512_round_trip_and_escaped_names() {
        let m = Mechanism::Sha512;
        let cred = credential(m, "p,w=", b"0123456789abcdef", 4096);
        let mut s = ScramServer::new(m);
        let bare = "n=a=2Cb=3Dc,r=nonce1";
        let Ok(Step::Challenge(first)) =
            s.step(format!("n,a=a=2Cb=3Dc,{bare}").as_bytes(), |u| (u == "a,b=c").then(|| cred.clone()), "srv")
        else {
            panic!("no challenge")
        };
        let first = String::from_utf8(first).expect("utf8");
        // The client sent "n,a=...,": its final c= is that header in base64.
        let fin = client_final(m, "p,w=", bare, &first).replacen(
            "c=biws",
            &format!("c={}", base64_encode(b"n,a=a=2Cb=3Dc,")),
            1,
        );
        // The proof covers c=biws; with another c= the signature differs: bad proof, not a pass.
        assert_eq!(s.step(fin.as_bytes(), |_| None, ""), Err(ScramError::BadProof));
        let mut y = ScramServer::new(m);
        assert!(matches!(
            y.step(format!("y,,{bare}").as_bytes(), |_| Some(cred.clone()), "srv"),
            Err(ScramError::Unsupported(_))
        ));
        let mut s = ScramServer::new(m);
        let Ok(Step::Challenge(first)) =
            s.step(format!("n,,{bare}").as_bytes(), |u| (u == "a,b=c").then(|| cred.clone()), "srv")
        else {
            panic!("no challenge")
        };
        let first = String::from_utf8(first).expect("utf8");
        let fin = client_final(m, "p,w=", bare, &first);
        assert!(matches!(s.step(fin.as_bytes(), |_| None, ""), Ok(Step::Done { ref user, .. }) if user == "a,b=c"));
    }

    #[test]
    fn refusals() {
        let cred = credential(Mechanism::Sha256, "pw", b"salt", 4096);
        let first =
            |msg: &[u8], cred: Option<ScramCredential>| ScramServer::new(Mechanism::Sha256).step(msg, |_| cred, "s");
        assert_eq!(first(b"n,,n=ghost,r=x", None), Err(ScramError::UnknownUser));
        assert_eq!(
            first(b"p=tls-unique,,n=u,r=x", Some(cred.clone())),
            Err(ScramError::Unsupported("channel binding"))
        );
        assert_eq!(
            first(b"n,,n=u,r=x,tokenauth=true", Some(cred.clone())),
            Err(ScramError::Unsupported("delegation tokens"))
        );
        assert_eq!(first(b"n,a=other,n=u,r=x", Some(cred.clone())), Err(ScramError::AuthzidMismatch));
        assert!(matches!(first(b"n,,n=u", Some(cred.clone())), Err(ScramError::Malformed(_))));
        assert!(matches!(first(b"n,,n=bad=escape,r=x", Some(cred.clone())), Err(ScramError::Malformed(_))));
        assert!(matches!(first(b"garbage", Some(cred.clone())), Err(ScramError::Malformed(_))));
        assert!(matches!(first(b"\xff\xfe", Some(cred.clone())), Err(ScramError::Malformed(_))));
        let weak = credential(Mechanism::Sha256, "pw", b"salt", 1000);
        assert_eq!(first(b"n,,n=u,r=x", Some(weak)), Err(ScramError::IterationsTooLow(1000)));
        // A final message with another nonce, or a broken proof.
        let mut s = ScramServer::new(Mechanism::Sha256);
        assert!(s.step(b"n,,n=u,r=x", |_| Some(cred.clone()), "s").is_ok());
        assert_eq!(s.step(b"c=biws,r=xOTHER,p=AAAA", |_| None, ""), Err(ScramError::NonceMismatch));
        assert_eq!(
            s.step(b"c=biws,r=xs,p=AAAA", |_| None, ""),
            Err(ScramError::Finished),
            "a failure ends the exchange"
        );
        let mut s = ScramServer::new(Mechanism::Sha256);
        assert!(s.step(b"n,,n=u,r=x", |_| Some(cred.clone()), "s").is_ok());
        assert_eq!(s.step(b"c=biws,r=xs,p=AAAA", |_| None, ""), Err(ScramError::BadProof));
        let mut s = ScramServer::new(Mechanism::Sha256);
        assert!(s.step(b"n,,n=u,r=x", |_| Some(cred.clone()), "s").is_ok());
        assert_eq!(s.step(b"c=eSws,r=xs,p=AAAA", |_| None, ""), Err(ScramError::ChannelBindingMismatch));
        assert_eq!(
            client_message(Mechanism::Sha512),
            "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
        );
    }

    #[test]
    fn mechanism_names_and_types() {
        for m in [Mechanism::Sha256, Mechanism::Sha512] {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
        }
        assert_eq!((Mechanism::Sha256.kafka_type(), Mechanism::Sha512.kafka_type()), (1, 2));
        assert_eq!(Mechanism::from_name("PLAIN"), None);
    }
}
