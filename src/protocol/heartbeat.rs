//! Heartbeat (key 12, v0–4): keeps a member's session alive and tells it when a rebalance has
//! started (REBALANCE_IN_PROGRESS), or that it was fenced or forgotten. All rules are in
//! [`crate::groups::coordinator::Coordinator::heartbeat`].

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::{respond, Context, Outcome, RequestMeta};

pub fn handle(meta: &RequestMeta, req: &HeartbeatRequest, ctx: &mut Context<'_>, now: std::time::Instant) -> Outcome {
    let instance = if meta.api_version >= 3 { req.group_instance_id.as_deref() } else { None };
    if let Some(code) = ctx.group_denied(crate::auth::acl::Operation::Read, &req.group_id) {
        return respond(meta, &HeartbeatResponse::default().with_error_code(code));
    }
    let code = if ctx.coordinates(&req.group_id) {
        ctx.groups.coordinator.heartbeat(&req.group_id, req.generation_id, &req.member_id, instance, now)
    } else {
        super::error_code::NOT_COORDINATOR
    };
    ctx.note_error(code);
    respond(meta, &HeartbeatResponse::default().with_error_code(code))
}
