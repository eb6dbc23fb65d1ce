//! LeaveGroup (key 13, v0–5): members leave a group at once instead of waiting for their session
//! to expire. v0–2 name one member; v3+ a batch of members, each by member id and/or
//! `group.instance.id`, answered one by one (v5 adds a reason, which is logged).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{error_code, respond, Context, Outcome, RequestMeta};

pub fn handle(meta: &RequestMeta, req: &LeaveGroupRequest, ctx: &mut Context<'_>, now: std::time::Instant) -> Outcome {
    let v = meta.api_version;
    let members: Vec<(String, Option<String>)> = if v >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|s| s.to_string())))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    if v >= 5 {
        for m in &req.members {
            if let Some(r) = &m.reason {
                log::debug!("group {}: member {} leaves: {}", req.group_id.as_str(), m.member_id.as_str(), r.as_str());
            }
        }
    }
    let result = if let Some(code) = ctx.group_denied(crate::auth::acl::Operation::Read, &req.group_id) {
        Err(code)
    } else if ctx.coordinates(&req.group_id) {
        ctx.groups.coordinator.leave(&req.group_id, &members, now)
    } else {
        Err(error_code::NOT_COORDINATOR)
    };
    let mut resp = LeaveGroupResponse::default();
    match result {
        Err(code) => {
            ctx.note_error(code);
            resp.error_code = code;
        }
        Ok(codes) if v < 3 => {
            let code = codes.first().copied().unwrap_or(error_code::NONE);
            ctx.note_error(code);
            resp.error_code = code;
        }
        Ok(codes) => {
            resp.members = req
                .members
                .iter()
                .zip(codes)
                .map(|(m, code)| {
                    ctx.note_error(code);
                    MemberResponse::default()
                        .with_member_id(m.member_id.clone())
                        .with_group_instance_id(m.group_instance_id.clone())
                        .with_error_code(code)
                })
                .collect();
        }
    }
    respond(meta, &resp)
}
