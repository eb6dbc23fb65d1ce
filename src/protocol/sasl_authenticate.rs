//! SaslAuthenticate (key 36, v0–2, flexible from v2): one SASL token each way (KIP-152).
//!
//! ```text
//! request:  auth_bytes bytes
//! response: error_code i16 | error_message nullable string | auth_bytes bytes
//!           | session_lifetime_ms i64 (v1+, KIP-368; 0 = the session does not expire)
//! ```
//!
//! The tokens are the business of [`crate::auth::sasl`]; one that reaches the handlers came
//! outside an exchange: ILLEGAL_SASL_STATE, as the broker answers.

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;

use super::{error_code, respond, Context, Outcome, RequestMeta};

/// The response carrying `token` (or the error and its message).
pub fn response(
    code: i16,
    message: Option<String>,
    token: Bytes,
    session_lifetime_ms: i64,
) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_string))
        .with_auth_bytes(token)
        .with_session_lifetime_ms(session_lifetime_ms)
}

pub fn out_of_place(meta: &RequestMeta, _req: &SaslAuthenticateRequest, ctx: &mut Context<'_>) -> Outcome {
    ctx.note_error(error_code::ILLEGAL_SASL_STATE);
    let message = "SaslAuthenticate received outside a SASL exchange (no SaslHandshake on a SASL listener)";
    respond(meta, &response(error_code::ILLEGAL_SASL_STATE, Some(message.into()), Bytes::new(), 0))
}
