//! FindCoordinator (key 10, v0–6): without a fleet, logferry is the coordinator of every
//! consumer group it is asked about (it is a one-node cluster to its clients); in a fleet, the
//! instance that leads the group's `__consumer_offsets` partition is, whichever instance is
//! asked ([`crate::cluster::fleet::Fleet::group_coordinator`]).
//!
//! Owns the answer per key: group keys (type 0) get this node's id and advertised address;
//! transaction keys (type 1) get COORDINATOR_NOT_AVAILABLE with a message saying transactions
//! need the broker (logferry is read-only); other key types (share groups) get INVALID_REQUEST.
//! v0–3 carry one key, v4+ a batch of keys answered one by one.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::auth::acl::{Operation, Resource};

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

/// The coordinator of one key: (error code, message, node id, host, port).
fn coordinator(key_type: i8, key: &str, ctx: &Context<'_>) -> (i16, Option<&'static str>, i32, StrBytes, i32) {
    let (code, msg) = answer(key_type);
    if code != error_code::NONE {
        return (code, msg, -1, StrBytes::default(), -1);
    }
    if !ctx.allowed(Operation::Describe, Resource::Group, key) {
        return (error_code::GROUP_AUTHORIZATION_FAILED, None, -1, StrBytes::default(), -1);
    }
    let Some(fleet) = ctx.fleet() else {
        let c = ctx.config;
        return (code, None, c.node_id, StrBytes::from_string(c.advertised_host.clone()), c.advertised_port);
    };
    match fleet.group_coordinator(key).and_then(|id| fleet.nodes.get(&id)) {
        Some(n) => (code, None, n.id, StrBytes::from_string(n.host.clone()), i32::from(n.port)),
        None => (
            error_code::COORDINATOR_NOT_AVAILABLE,
            Some("the leader of the group's __consumer_offsets partition is not available"),
            -1,
            StrBytes::default(),
            -1,
        ),
    }
}

pub fn handle(meta: &RequestMeta, req: &FindCoordinatorRequest, ctx: &mut Context<'_>) -> Outcome {
    let v = meta.api_version;
    let mut resp = FindCoordinatorResponse::default();
    if v >= 4 {
        for key in &req.coordinator_keys {
            let (code, msg, node, host, port) = coordinator(req.key_type, key, ctx);
            ctx.note_error(code);
            resp.coordinators.push(
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(host)
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(msg.map(StrBytes::from_static_str)),
            );
        }
    } else {
        let key_type = if v >= 1 { req.key_type } else { KEY_TYPE_GROUP };
        let (code, msg, node, host, port) = coordinator(key_type, &req.key, ctx);
        ctx.note_error(code);
        resp.error_code = code;
        if v >= 1 {
            resp.error_message = msg.map(StrBytes::from_static_str);
        }
        resp.node_id = BrokerId(node);
        resp.host = host;
        resp.port = port;
    }
    respond(meta, &resp)
}
