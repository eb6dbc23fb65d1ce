//! OffsetFetch (key 9, v1–9): a group's committed offsets.
//!
//! Owns both request shapes: v1–7 name one group (topics null = every committed partition, v2+),
//! v8–9 a batch of groups. A partition without a committed offset answers offset −1, empty
//! metadata, error NONE, as Kafka does; the leader epoch (v5+) is the committed one or −1.
//! v9 members of a KIP-848 group are checked (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH).
//! `require_stable` (v7+) needs nothing: logferry has no pending transactional commits. When
//! commits of this loop turn are not yet on disk the response waits for the store's sync
//! ([`Outcome::RespondAfterSync`]), so nobody reads an offset a crash could still take back.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{encode_response, error_code, Context, Outcome, RequestMeta};
use crate::auth::acl::{Operation, Resource};
use crate::groups::store::GroupOffsets;
use crate::send::WritePlan;

/// (offset, leader epoch, metadata) for one partition of a group.
fn lookup(offs: Option<&GroupOffsets>, topic: &str, partition: i32) -> (i64, i32, String) {
    match offs.and_then(|o| o.get(&(topic.to_string(), partition))) {
        Some(c) => (c.offset, c.leader_epoch, c.metadata.clone().unwrap_or_default()),
        None => (-1, -1, String::new()),
    }
}

/// Topic → partitions to answer: the requested ones, or every committed one when `None`.
fn wanted(offs: Option<&GroupOffsets>, topics: Option<Vec<(String, Vec<i32>)>>) -> Vec<(String, Vec<i32>)> {
    match topics {
        Some(t) => t,
        None => {
            let mut out: Vec<(String, Vec<i32>)> = Vec::new();
            for (t, p) in offs.into_iter().flat_map(|o| o.keys()) {
                match out.last_mut() {
                    Some((last, ps)) if last == t => ps.push(*p),
                    _ => out.push((t.clone(), vec![*p])),
                }
            }
            out
        }
    }
}

/// The ACL checks (Kafka's `handleOffsetFetchRequest`): GROUP DESCRIBE, else the group's
/// error; then TOPIC DESCRIBE: a named topic the caller may not describe answers
/// TOPIC_AUTHORIZATION_FAILED per partition, an all-topics fetch leaves it out.
fn authorized(
    ctx: &Context<'_>,
    group: &str,
    named: bool,
    topics: Vec<(String, Vec<i32>)>,
) -> Result<Vec<(String, Vec<i32>, bool)>, i16> {
    if !ctx.allowed(Operation::Describe, Resource::Group, group) {
        return Err(error_code::GROUP_AUTHORIZATION_FAILED);
    }
    Ok(topics
        .into_iter()
        .map(|(t, ps)| {
            let ok = ctx.topic_allowed(Operation::Describe, &t);
            (t, ps, ok)
        })
        .filter(|(_, _, ok)| *ok || named)
        .collect())
}

pub fn handle(meta: &RequestMeta, req: &OffsetFetchRequest, ctx: &mut Context<'_>) -> Outcome {
    let v = meta.api_version;
    let store = &ctx.groups.store;
    let mut resp = OffsetFetchResponse::default();
    let mut errors = Vec::new();
    if v >= 8 {
        for g in &req.groups {
            let offs = store.group(g.group_id.as_str());
            let topics = g
                .topics
                .as_ref()
                .map(|ts| ts.iter().map(|t| (t.name.to_string(), t.partition_indexes.clone())).collect());
            let member = if v >= 9 && ctx.groups.consumer.state(g.group_id.as_str()).is_some() {
                // A KIP-848 member reads its group's offsets at its current member epoch.
                let id = g.member_id.as_deref().unwrap_or_default();
                ctx.groups.consumer.validate_fetch(g.group_id.as_str(), id, g.member_epoch)
            } else {
                Ok(())
            };
            let topics = match member
                .and_then(|()| authorized(ctx, g.group_id.as_str(), g.topics.is_some(), wanted(offs, topics)))
            {
                Ok(t) => t,
                Err(code) => {
                    errors.push(code);
                    resp.groups.push(
                        OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone()).with_error_code(code),
                    );
                    continue;
                }
            };
            let topics = topics
                .into_iter()
                .map(|(t, ps, ok)| {
                    let partitions = ps
                        .into_iter()
                        .map(|p| {
                            let (offset, epoch, md) = if ok { lookup(offs, &t, p) } else { (-1, -1, String::new()) };
                            if !ok {
                                errors.push(error_code::TOPIC_AUTHORIZATION_FAILED);
                            }
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(StrBytes::from_string(md)))
                                .with_error_code(if ok {
                                    error_code::NONE
                                } else {
                                    error_code::TOPIC_AUTHORIZATION_FAILED
                                })
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partitions(partitions)
                })
                .collect();
            resp.groups.push(OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone()).with_topics(topics));
        }
    } else {
        let offs = store.group(req.group_id.as_str());
        let topics = req
            .topics
            .as_ref()
            .map(|ts| ts.iter().map(|t| (t.name.to_string(), t.partition_indexes.clone())).collect());
        let named = req.topics.is_some();
        let topics = match authorized(ctx, req.group_id.as_str(), named, wanted(offs, topics)) {
            Ok(t) => t,
            Err(code) => {
                errors.push(code);
                resp.error_code = code;
                // v1 has no top-level error: each named partition carries it.
                req.topics
                    .iter()
                    .flatten()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone(), false))
                    .filter(|_| v < 2)
                    .collect()
            }
        };
        let group_code = resp.error_code;
        resp.topics = topics
            .into_iter()
            .map(|(t, ps, ok)| {
                let partitions = ps
                    .into_iter()
                    .map(|p| {
                        let (offset, epoch, md) = if ok { lookup(offs, &t, p) } else { (-1, -1, String::new()) };
                        let code = match (ok, group_code) {
                            (true, _) => error_code::NONE,
                            (false, error_code::NONE) => error_code::TOPIC_AUTHORIZATION_FAILED,
                            (false, g) => g,
                        };
                        if code != error_code::NONE && group_code == error_code::NONE {
                            errors.push(code);
                        }
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(if v >= 5 { epoch } else { -1 })
                            .with_metadata(Some(StrBytes::from_string(md)))
                            .with_error_code(code)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(t)))
                    .with_partitions(partitions)
            })
            .collect();
    }
    for code in errors {
        ctx.note_error(code);
    }
    match encode_response(meta, &resp) {
        Ok(b) => {
            let mut plan = WritePlan::new();
            plan.push_mem(b);
            if ctx.groups.store.is_dirty() {
                Outcome::RespondAfterSync(plan)
            } else {
                Outcome::Respond(plan)
            }
        }
        Err(e) => Outcome::Close(e),
    }
}
