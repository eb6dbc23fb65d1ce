//! FindCoordinator (key 10, v0–6): logferry is the coordinator of every consumer group it is
//! asked about (it is a one-node cluster to its clients).
//!
//! Owns the answer per key: group keys (type 0) get this node's id and advertised address;
//! transaction keys (type 1) get COORDINATOR_NOT_AVAILABLE with a message saying transactions
//! need the broker (logferry is read-only); other key types (share groups) get INVALID_REQUEST.
//! v0–3 carry one key, v4+ a batch of keys answered one by one.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{error_code, respond, Context, Outcome, RequestMeta};

pub const KEY_TYPE_GROUP: i8 = 0;
pub const KEY_TYPE_TRANSACTION: i8 = 1;
pub const TXN_REFUSED_MESSAGE: &str =
    "logferry is a read-only replica and coordinates no transactions: use the Kafka broker";

/// (error code, message) for a key type.
fn answer(key_type: i8) -> (i16, Option<&'static str>) {
    match key_type {
        KEY_TYPE_GROUP => (error_code::NONE, None),
        KEY_TYPE_TRANSACTION => (error_code::COORDINATOR_NOT_AVAILABLE, Some(TXN_REFUSED_MESSAGE)),
        _ => (error_code::INVALID_REQUEST, Some("logferry coordinates classic consumer groups only")),
    }
}

pub fn handle(meta: &RequestMeta, req: &FindCoordinatorRequest, ctx: &mut Context<'_>) -> Outcome {
    let v = meta.api_version;
    let node = ctx.config.node_id;
    let host = StrBytes::from_string(ctx.config.advertised_host.clone());
    let port = ctx.config.advertised_port;
    let mut resp = FindCoordinatorResponse::default();
    if v >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let (code, msg) = answer(req.key_type);
                ctx.note_error(code);
                let ok = code == error_code::NONE;
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(if ok { node } else { -1 }))
                    .with_host(if ok { host.clone() } else { StrBytes::default() })
                    .with_port(if ok { port } else { -1 })
                    .with_error_code(code)
                    .with_error_message(msg.map(StrBytes::from_static_str))
            })
            .collect();
    } else {
        let key_type = if v >= 1 { req.key_type } else { KEY_TYPE_GROUP };
        let (code, msg) = answer(key_type);
        ctx.note_error(code);
        let ok = code == error_code::NONE;
        resp.error_code = code;
        if v >= 1 {
            resp.error_message = msg.map(StrBytes::from_static_str);
        }
        resp.node_id = BrokerId(if ok { node } else { -1 });
        resp.host = if ok { host } else { StrBytes::default() };
        resp.port = if ok { port } else { -1 };
    }
    respond(meta, &resp)
}
