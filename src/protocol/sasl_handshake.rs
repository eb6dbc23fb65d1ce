//! SaslHandshake (key 17, v0–1, never flexible): the client names its SASL mechanism.
//!
//! ```text
//! request:  mechanism string
//! response: error_code i16 | mechanisms [string]   (the listener's enabled list)
//! ```
//!
//! The exchange itself belongs to [`crate::auth::sasl`], which answers every SaslHandshake
//! on a SASL listener (the first one and re-authentication). A SaslHandshake that reaches the
//! handlers came on a listener without SASL, or on an authenticated connection that may not
//! re-authenticate: ILLEGAL_SASL_STATE, as the broker's `handleSaslHandshakeRequest` answers.

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;

use super::{error_code, respond, Context, Outcome, RequestMeta};

/// The response naming `mechanisms`.
pub fn response(code: i16, mechanisms: &[String]) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default()
        .with_error_code(code)
        .with_mechanisms(mechanisms.iter().map(|m| StrBytes::from_string(m.clone())).collect())
}

pub fn out_of_place(meta: &RequestMeta, _req: &SaslHandshakeRequest, ctx: &mut Context<'_>) -> Outcome {
    ctx.note_error(error_code::ILLEGAL_SASL_STATE);
    respond(meta, &response(error_code::ILLEGAL_SASL_STATE, &[]))
}
