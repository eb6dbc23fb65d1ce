//! OffsetCommit (key 8, v2–9): stores a group's consumed positions durably.
//!
//! Owns the per-partition checks and the hand-over to the store: the request is first checked
//! against the group (generation, member, rebalance state; Kafka's `validateOffsetCommit`, see
//! [`crate::groups::coordinator::Coordinator::validate_commit`], or for a KIP-848 group the
//! member epoch, [`crate::groups::consumer::ConsumerCoordinator::validate_commit`]), then each
//! partition: unknown to
//! logferry (and, in a fleet, to the cluster) → UNKNOWN_TOPIC_OR_PARTITION; metadata above `metadata_bytes_max` →
//! OFFSET_METADATA_TOO_LARGE; a new group beyond the offsets' `groups_max` →
//! COORDINATOR_NOT_AVAILABLE. Accepted offsets (with leader epoch, v6+, and metadata) go to the
//! store, and the response is returned as [`Outcome::RespondAfterSync`]: the server writes it
//! only after the store has fsynced the turn's commits. v2–4 `retention_time_ms` is ignored, as
//! Kafka 4 does.

use std::time::Instant;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::{encode_response, error_code, Context, Outcome, RequestMeta};
use crate::auth::acl::Operation;
use crate::groups::{wall_ms, Committed};
use crate::log::TopicPartition;
use crate::send::WritePlan;

pub fn handle(meta: &RequestMeta, req: &OffsetCommitRequest, ctx: &mut Context<'_>, now: Instant) -> Outcome {
    let v = meta.api_version;
    let partitions: usize = req.topics.iter().map(|t| t.partitions.len()).sum();
    if partitions > ctx.config.partitions_per_request_max {
        return Outcome::Close(format!(
            "OffsetCommit with {partitions} partitions is above partitions_per_request_max {}",
            ctx.config.partitions_per_request_max
        ));
    }
    let group = req.group_id.as_str();
    let instance = if v >= 7 { req.group_instance_id.as_deref() } else { None };
    let group_error = if group.is_empty() {
        Err(error_code::INVALID_GROUP_ID)
    } else if let Some(code) = ctx.group_denied(Operation::Read, group) {
        Err(code)
    } else if !ctx.coordinates(group) {
        Err(error_code::NOT_COORDINATOR)
    } else if let Some(r) =
        ctx.groups.consumer.validate_commit(group, req.generation_id_or_member_epoch, &req.member_id)
    {
        // A KIP-848 group: the member epoch stands where the generation was.
        r
    } else {
        ctx.groups.coordinator.validate_commit(
            group,
            req.generation_id_or_member_epoch,
            &req.member_id,
            instance,
            v,
            now,
        )
    };
    let new_group_refused =
        ctx.groups.store.group(group).is_none() && ctx.groups.store.group_count() >= ctx.groups.limits.groups_max;
    if new_group_refused && group_error.is_ok() {
        log::warn!(
            "OffsetCommit for new group {group:?} refused: groups_max ({}) reached",
            ctx.groups.limits.groups_max
        );
    }
    let commit_ms = wall_ms();
    let mut stored = 0usize;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let tp = TopicPartition { topic: t.name.to_string(), partition: p.partition_index };
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
            let code = if let Err(e) = group_error {
                e
            } else if !ctx.topic_allowed(Operation::Read, &tp.topic) {
                error_code::TOPIC_AUTHORIZATION_FAILED
            } else if !ctx.view.partitions.contains_key(&tp)
                && ctx.view.cluster.as_ref().is_none_or(|c| c.image.partition(&tp.topic, tp.partition).is_none())
            {
                // Known here or, in a fleet, anywhere in the cluster (the coordinator instance
                // takes commits for partitions other instances serve).
                error_code::UNKNOWN_TOPIC_OR_PARTITION
            } else if metadata.as_ref().is_some_and(|m| m.len() > ctx.groups.limits.metadata_bytes_max) {
                error_code::OFFSET_METADATA_TOO_LARGE
            } else if new_group_refused {
                error_code::COORDINATOR_NOT_AVAILABLE
            } else {
                let c = Committed {
                    offset: p.committed_offset,
                    leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata,
                    commit_ms,
                };
                ctx.groups.store.commit(group, &tp.topic, tp.partition, c);
                stored += 1;
                error_code::NONE
            };
            ctx.note_error(code);
            parts.push(
                OffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code),
            );
        }
        topics.push(OffsetCommitResponseTopic::default().with_name(t.name.clone()).with_partitions(parts));
    }
    let body = OffsetCommitResponse::default().with_topics(topics);
    match encode_response(meta, &body) {
        Ok(b) => {
            let mut plan = WritePlan::new();
            plan.push_mem(b);
            if stored > 0 || ctx.groups.store.is_dirty() {
                Outcome::RespondAfterSync(plan)
            } else {
                Outcome::Respond(plan)
            }
        }
        Err(e) => Outcome::Close(e),
    }
}
