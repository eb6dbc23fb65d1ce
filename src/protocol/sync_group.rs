//! SyncGroup (key 14, v0–5): the leader hands in the assignment, every member gets its part.
//!
//! Owns the translation to and from the coordinator; assignments are opaque bytes passed
//! through untouched. Followers usually wait for the leader: [`Outcome::AwaitGroup`], answered
//! by [`response`] when the coordinator completes it. v3+ carry `group.instance.id`, v5+ the
//! protocol type and name (checked against the group's, INCONSISTENT_GROUP_PROTOCOL otherwise).

use std::time::Instant;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::{respond, Context, Outcome, RequestMeta};
use crate::groups::coordinator::{Reply, SyncRequest, SyncResult};

pub fn handle(meta: &RequestMeta, req: SyncGroupRequest, ctx: &mut Context<'_>, now: Instant) -> Outcome {
    let v = meta.api_version;
    if let Some(code) = ctx.group_denied(crate::auth::acl::Operation::Read, &req.group_id) {
        return respond(meta, &SyncGroupResponse::default().with_error_code(code));
    }
    if !ctx.coordinates(&req.group_id) {
        ctx.note_error(super::error_code::NOT_COORDINATOR);
        return respond(meta, &SyncGroupResponse::default().with_error_code(super::error_code::NOT_COORDINATOR));
    }
    let sr = SyncRequest {
        group_id: req.group_id.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: if v >= 3 { req.group_instance_id.map(|s| s.to_string()) } else { None },
        protocol_type: if v >= 5 { req.protocol_type.map(|s| s.to_string()) } else { None },
        protocol_name: if v >= 5 { req.protocol_name.map(|s| s.to_string()) } else { None },
        assignments: req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    match ctx.groups.coordinator.sync(sr, ctx.origin.waiter, now) {
        Reply::Now(r) => {
            ctx.note_error(r.error);
            respond(meta, &response(v, r))
        }
        Reply::Later => Outcome::AwaitGroup,
    }
}

pub fn response(v: i16, r: SyncResult) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_error_code(r.error)
        .with_protocol_type(if v >= 5 { r.protocol_type.map(StrBytes::from_string) } else { None })
        .with_protocol_name(if v >= 5 { r.protocol_name.map(StrBytes::from_string) } else { None })
        .with_assignment(r.assignment)
}
