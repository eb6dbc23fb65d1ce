//! ApiVersions (key 18, v0–4): tells a client which APIs and versions logferry serves.
//!
//! Owns the response, generated from [`super::SUPPORTED`] (narrowed for relayed group APIs to
//! what the upstream broker speaks, see [`super::advertised_range`]) so it never advertises more
//! than is implemented (product rule 1), and the KIP-511 fallback: a request with a version this server
//! does not know is answered in v0 format with UNSUPPORTED_VERSION plus the list, so the client can
//! retry with a version from it. The response header is always v0, whatever the request version.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::{advertised_range, error_code, respond, Outcome, RequestMeta, ServeConfig, SUPPORTED};

fn api_list(config: &ServeConfig) -> Vec<ApiVersion> {
    let mut keys: Vec<ApiVersion> = SUPPORTED
        .iter()
        .filter_map(|&(key, _, _)| {
            let (lo, hi) = advertised_range(config, key)?;
            Some(ApiVersion::default().with_api_key(key as i16).with_min_version(lo).with_max_version(hi))
        })
        .collect();
    keys.sort_by_key(|k| k.api_key);
    keys
}

pub fn handle(meta: &RequestMeta, _req: &ApiVersionsRequest, config: &ServeConfig) -> Outcome {
    let resp = ApiVersionsResponse::default().with_error_code(error_code::NONE).with_api_keys(api_list(config));
    respond(meta, &resp)
}

/// The v0-format answer to an ApiVersions request of an unknown version.
pub fn unsupported_version(meta: &RequestMeta, config: &ServeConfig) -> Outcome {
    let resp =
        ApiVersionsResponse::default().with_error_code(error_code::UNSUPPORTED_VERSION).with_api_keys(api_list(config));
    respond(meta, &resp)
}
