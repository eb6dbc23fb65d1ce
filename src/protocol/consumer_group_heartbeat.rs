//! ConsumerGroupHeartbeat (key 68, v0–1): a KIP-848 member joins, heartbeats, acknowledges
//! revocations and leaves; the answer carries its member epoch and, when it changed, its whole
//! assignment (by topic id).
//!
//! Owns the translation between the wire message and
//! [`crate::groups::consumer::ConsumerCoordinator::heartbeat`] (all the rules are there), and the
//! topics the assignor may hand out: those the caller's Metadata shows (the fleet's when a
//! metadata log is followed, else the log dir's), so the topic ids are the ones the client
//! resolves. v1 members name themselves (KIP-1082); v0 members are named by the coordinator.

use std::time::Instant;

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::metadata::{topic_uuid, Presentation};
use super::{error_code, respond, Context, Outcome, RequestMeta};
use crate::auth::acl::Operation;
use crate::groups::consumer::{Heartbeat, Partitions, TopicSource};
use crate::groups::GroupState;

/// The topics as the caller's Metadata shows them.
struct Shown<'a, 'c> {
    presentation: Presentation<'a>,
    ctx: &'a Context<'c>,
}

impl TopicSource for Shown<'_, '_> {
    fn topic(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        if super::metadata::is_internal(name) || !self.ctx.topic_allowed(Operation::Describe, name) {
            return None;
        }
        let t = self.presentation.topic(self.ctx, name)?;
        Some((topic_uuid(&t.id), t.partitions.len() as i32))
    }

    fn names(&self) -> Vec<String> {
        self.presentation.names().into_iter().filter(|n| !super::metadata::is_internal(n)).cloned().collect()
    }
}

pub fn handle(meta: &RequestMeta, req: &ConsumerGroupHeartbeatRequest, ctx: &mut Context<'_>, now: Instant) -> Outcome {
    let group = req.group_id.as_str();
    let refuse = |code: i16, message: Option<&str>, ctx: &mut Context<'_>| {
        ctx.note_error(code);
        let r = ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(message.map(|m| StrBytes::from_string(m.to_string())))
            .with_member_id(None);
        respond(meta, &r)
    };
    if let Some(code) = ctx.group_denied(Operation::Read, group) {
        return refuse(code, None, ctx);
    }
    // The broker's KafkaApis check: every topic named in the subscription must be DESCRIBE-able.
    let names = req.subscribed_topic_names.iter().flatten();
    if names.clone().any(|n| !ctx.topic_allowed(Operation::Describe, n)) {
        let m = "The group has subscribed to topics which are not authorized.";
        return refuse(error_code::TOPIC_AUTHORIZATION_FAILED, Some(m), ctx);
    }
    if !ctx.coordinates(group) {
        return refuse(error_code::NOT_COORDINATOR, None, ctx);
    }
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut p = Partitions::new();
        for tp in tps {
            p.entry(tp.topic_id).or_default().extend(tp.partitions.iter().copied());
        }
        p
    });
    let hb = Heartbeat {
        group_id: group.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req.subscribed_topic_names.as_ref().map(|v| v.iter().map(|n| n.to_string()).collect()),
        subscribed_topic_regex: if meta.api_version >= 1 {
            req.subscribed_topic_regex.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id: meta.client_id.clone().unwrap_or_default(),
        client_host: ctx.origin.client_host.clone(),
    };
    let classic_live = ctx.groups.coordinator.state(group).is_some_and(|s| s != GroupState::Empty);
    // The coordinator needs `&mut` while the topic source borrows the whole context, so it is
    // moved out for the call and back (an empty coordinator stands in meanwhile).
    let stand_in = crate::groups::ConsumerCoordinator::new(ctx.groups.consumer.config().clone());
    let mut consumer = std::mem::replace(&mut ctx.groups.consumer, stand_in);
    let answer = {
        let shown = Shown { presentation: Presentation::of(ctx), ctx };
        consumer.heartbeat(hb, meta.api_version, classic_live, &shown, now)
    };
    ctx.groups.consumer = consumer;
    ctx.note_error(answer.error_code);
    let assignment = answer.assignment.map(|p| {
        Assignment::default().with_topic_partitions(
            p.into_iter()
                .map(|(t, ps)| TopicPartitions::default().with_topic_id(t).with_partitions(ps.into_iter().collect()))
                .collect(),
        )
    });
    let r = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(answer.error_code)
        .with_error_message(answer.error_message.map(StrBytes::from_string))
        .with_member_id((!answer.member_id.is_empty()).then(|| StrBytes::from_string(answer.member_id)))
        .with_member_epoch(answer.member_epoch)
        .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
        .with_assignment(assignment);
    respond(meta, &r)
}
