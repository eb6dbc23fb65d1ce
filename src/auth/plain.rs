//! SASL/PLAIN (RFC 4616): one client message, no challenge.
//!
//! ```text
//! message = [authzid] NUL authcid NUL passwd      (UTF-8; authzid empty or equal to authcid)
//! ```
//!
//! Checked as Kafka's `PlainSaslServer` does, with its messages.

use super::constant_time_eq;

/// Why a PLAIN message was refused; `Display` is Kafka's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainError {
    /// Not three NUL-separated UTF-8 tokens.
    Malformed,
    UsernameMissing,
    PasswordMissing,
    /// An authorization id other than the user.
    AuthzidMismatch,
    /// Unknown user or wrong password (not told apart, as the broker does not).
    BadCredentials,
}

impl std::fmt::Display for PlainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PlainError::Malformed => "Invalid SASL/PLAIN response: expected 3 tokens",
            PlainError::UsernameMissing => "Authentication failed: username not specified",
            PlainError::PasswordMissing => "Authentication failed: password not specified",
            PlainError::AuthzidMismatch => {
                "Authentication failed: Client requested an authorization id that is different from username"
            }
            PlainError::BadCredentials => "Authentication failed: Invalid username or password",
        })
    }
}

/// Checks one PLAIN message; `password_of` looks a user's password up. Returns the user.
pub fn authenticate<'a>(
    message: &'a [u8],
    password_of: impl FnOnce(&str) -> Option<&'a str>,
) -> Result<&'a str, PlainError> {
    let text = std::str::from_utf8(message).map_err(|_| PlainError::Malformed)?;
    let mut tokens = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (tokens.next(), tokens.next(), tokens.next(), tokens.next())
    else {
        return Err(PlainError::Malformed);
    };
    if user.is_empty() {
        return Err(PlainError::UsernameMissing);
    }
    if password.is_empty() {
        return Err(PlainError::PasswordMissing);
    }
    if !authzid.is_empty() && authzid != user {
        return Err(PlainError::AuthzidMismatch);
    }
    match password_of(user) {
        Some(expected) if constant_time_eq(expected.as_bytes(), password.as_bytes()) => Ok(user),
        _ => Err(PlainError::BadCredentials),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(u: &str) -> Option<&'static str> {
        (u == "alice").then_some("alice-secret")
    }

    #[test]
    fn accepts_the_right_password_with_or_without_authzid() {
        assert_eq!(authenticate(b"\0alice\0alice-secret", users), Ok("alice"));
        assert_eq!(authenticate(b"alice\0alice\0alice-secret", users), Ok("alice"));
    }

    #[test]
    fn refuses_with_kafkas_reasons() {
        assert_eq!(authenticate(b"\0alice\0wrong", users), Err(PlainError::BadCredentials));
        assert_eq!(authenticate(b"\0mallory\0alice-secret", users), Err(PlainError::BadCredentials));
        assert_eq!(authenticate(b"bob\0alice\0alice-secret", users), Err(PlainError::AuthzidMismatch));
        assert_eq!(authenticate(b"\0\0pw", users), Err(PlainError::UsernameMissing));
        assert_eq!(authenticate(b"\0alice\0", users), Err(PlainError::PasswordMissing));
        assert_eq!(authenticate(b"alice-secret", users), Err(PlainError::Malformed));
        assert_eq!(authenticate(b"\0a\0b\0c", users), Err(PlainError::Malformed));
        assert_eq!(authenticate(b"\0alice\0\xff", users), Err(PlainError::Malformed));
        assert_eq!(PlainError::BadCredentials.to_string(), "Authentication failed: Invalid username or password");
    }
}
