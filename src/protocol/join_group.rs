//! JoinGroup (key 11, v0–9): a member joins (or rejoins) a classic group.
//!
//! Owns the translation between the wire message and the coordinator: v0 has no rebalance
//! timeout (the session timeout stands in, as in Kafka), v4+ members must first obtain their id
//! (MEMBER_ID_REQUIRED), v5+ carry `group.instance.id`, v9 may tell a rejoining static leader to
//! skip the assignment. The answer often has to wait for the other members; the handler then
//! returns [`Outcome::AwaitGroup`] and the server encodes the [`JoinResult`] when the
//! coordinator completes it ([`response`]).

use std::time::Instant;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{respond, Context, Outcome, RequestMeta};
use crate::groups::coordinator::{JoinRequest, JoinResult, Reply};

pub fn handle(meta: &RequestMeta, req: JoinGroupRequest, ctx: &mut Context<'_>, now: Instant) -> Outcome {
    let v = meta.api_version;
    if let Some(code) = ctx.group_denied(crate::auth::acl::Operation::Read, &req.group_id) {
        let r = JoinGroupResponse::default().with_error_code(code).with_generation_id(-1);
        return respond(meta, &r);
    }
    if !ctx.coordinates(&req.group_id) {
        // Another instance of the fleet coordinates this group (FindCoordinator says which).
        ctx.note_error(super::error_code::NOT_COORDINATOR);
        let r = JoinGroupResponse::default()
            .with_error_code(super::error_code::NOT_COORDINATOR)
            .with_generation_id(-1)
            .with_member_id(req.member_id.clone());
        return respond(meta, &r);
    }
    if ctx.groups.consumer.has_members(&req.group_id) {
        // A live KIP-848 group: classic members may not join it (the broker's online migration
        // between the protocols is not built here).
        ctx.note_error(super::error_code::INCONSISTENT_GROUP_PROTOCOL);
        let r = JoinGroupResponse::default()
            .with_error_code(super::error_code::INCONSISTENT_GROUP_PROTOCOL)
            .with_generation_id(-1)
            .with_member_id(req.member_id.clone());
        return respond(meta, &r);
    }
    let jr = JoinRequest {
        group_id: req.group_id.to_string(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if v >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        member_id: req.member_id.to_string(),
        group_instance_id: if v >= 5 { req.group_instance_id.map(|s| s.to_string()) } else { None },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        client_id: meta.client_id.clone().unwrap_or_default(),
        client_host: ctx.origin.client_host.clone(),
        require_known_member_id: v >= 4,
        supports_skip_assignment: v >= 9,
    };
    match ctx.groups.coordinator.join(jr, ctx.origin.waiter, now) {
        Reply::Now(r) => {
            ctx.note_error(r.error);
            respond(meta, &response(meta.api_version, r))
        }
        Reply::Later => Outcome::AwaitGroup,
    }
}

/// The wire response for a coordinator answer, with the fields each version has.
pub fn response(v: i16, r: JoinResult) -> JoinGroupResponse {
    let name = match (v >= 7, r.protocol_name) {
        (true, n) => n.map(StrBytes::from_string),
        // Non-nullable before v7.
        (false, n) => Some(StrBytes::from_string(n.unwrap_or_default())),
    };
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_type(if v >= 7 { r.protocol_type.map(StrBytes::from_string) } else { None })
        .with_protocol_name(name)
        .with_leader(StrBytes::from_string(r.leader))
        .with_skip_assignment(v >= 9 && r.skip_assignment)
        .with_member_id(StrBytes::from_string(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(if v >= 5 {
                            m.group_instance_id.map(StrBytes::from_string)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
