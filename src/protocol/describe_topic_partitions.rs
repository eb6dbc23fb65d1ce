//! DescribeTopicPartitions (key 75, v0, KIP-966): topics with their partitions, paged, as the
//! broker's `DescribeTopicPartitionsRequestHandler` answers it, from the same presentation as
//! Metadata ([`super::metadata::Presentation`]) plus the cluster's eligible leader replicas.
//!
//! The topics named (or all, for an empty list) from the cursor's topic on are answered in
//! name order; the first one from the cursor's partition. At most
//! `min(max.request.partition.size.limit, ResponsePartitionLimit)` partitions (at least one)
//! are answered; `NextCursor` then names the first partition left out (or the next topic at
//! partition 0), null when nothing is. Named topics the caller may not DESCRIBE answer
//! TOPIC_AUTHORIZATION_FAILED with a zero id, whether they exist or not; in an all-topics
//! request they are left out. Unknown named topics answer UNKNOWN_TOPIC_OR_PARTITION (or
//! INVALID_TOPIC_EXCEPTION for a name Kafka refuses). A cursor whose topic is not among those
//! named, or with a negative partition, fails the request with INVALID_REQUEST on every topic.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::valid_topic;
use super::metadata::{is_internal, topic_uuid, Presentation, TopicView};
use super::{error_code, respond, Context, Outcome, RequestMeta};
use crate::auth::acl::{Operation, Resource};

/// The broker's `max.request.partition.size.limit` default.
pub const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;
const INVALID_TOPIC_EXCEPTION: i16 = 17;

/// `AclEntry.supportedOperations(TOPIC)`.
pub const TOPIC_OPERATIONS: [Operation; 8] = [
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Describe,
    Operation::Delete,
    Operation::Alter,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];

fn name(n: &str) -> Option<TopicName> {
    Some(TopicName(StrBytes::from_string(n.to_string())))
}

fn refusal(topic: &str, code: i16) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default().with_error_code(code).with_name(name(topic))
}

/// The partitions of `t` from index `start`, at most `room`; and the first index left out.
fn page(t: TopicView, start: i32, room: usize) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut rest = t.partitions.into_iter().filter(|p| p.index >= start).peekable();
    let mut partitions = Vec::new();
    while partitions.len() < room {
        let Some(p) = rest.next() else { break };
        partitions.push(
            DescribeTopicPartitionsResponsePartition::default()
                .with_error_code(error_code::NONE)
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(p.replicas))
                .with_isr_nodes(ids(p.isr))
                .with_eligible_leader_replicas(Some(ids(p.elr)))
                .with_last_known_elr(Some(ids(p.last_known_elr)))
                .with_offline_replicas(ids(p.offline)),
        );
    }
    let next = rest.peek().map(|p| p.index);
    let topic = DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error_code::NONE)
        .with_name(name(&t.name))
        .with_topic_id(topic_uuid(&t.id))
        .with_is_internal(is_internal(&t.name))
        .with_partitions(partitions);
    (topic, next)
}

pub fn handle(meta: &RequestMeta, req: &DescribeTopicPartitionsRequest, ctx: &mut Context<'_>) -> Outcome {
    let every = req.topics.is_empty();
    let cursor = req.cursor.as_ref().map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let from = cursor.as_ref().map_or("", |(t, _)| t.as_str());
    let view = Presentation::of(ctx);
    let asked: BTreeSet<String> = if every {
        view.names().into_iter().filter(|n| n.as_str() >= from).cloned().collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).filter(|n| n.as_str() >= from).collect()
    };
    let bad_cursor = match &cursor {
        Some((t, p)) => *p < 0 || (!every && !asked.contains(t)),
        None => false,
    };
    if bad_cursor {
        let topics = req.topics.iter().map(|t| refusal(&t.name.0, error_code::INVALID_REQUEST)).collect();
        ctx.note_error(error_code::INVALID_REQUEST);
        return respond(meta, &DescribeTopicPartitionsResponse::default().with_topics(topics));
    }
    let configured = ctx
        .config
        .broker_properties
        .get("max.request.partition.size.limit")
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(PARTITIONS_PER_RESPONSE_MAX);
    let mut room = usize::try_from(configured.min(req.response_partition_limit).max(1)).unwrap_or(1);
    let (mut topics, mut denied) = (Vec::new(), Vec::new());
    let mut next_cursor = None;
    for topic in &asked {
        if !ctx.topic_allowed(Operation::Describe, topic) {
            if !every {
                denied.push(refusal(topic, error_code::TOPIC_AUTHORIZATION_FAILED));
            }
            continue;
        }
        if next_cursor.is_some() {
            continue;
        }
        if room == 0 {
            next_cursor = Some(Cursor::default().with_topic_name(TopicName(StrBytes::from_string(topic.clone()))));
            continue;
        }
        let start = match &cursor {
            Some((t, p)) if t == topic => *p,
            _ => 0,
        };
        let Some(t) = view.find(Some(topic), None).and_then(|n| view.topic(ctx, &n)) else {
            if !every {
                let code =
                    if valid_topic(topic) { error_code::UNKNOWN_TOPIC_OR_PARTITION } else { INVALID_TOPIC_EXCEPTION };
                topics.push(refusal(topic, code).with_is_internal(is_internal(topic)));
            }
            continue;
        };
        let (answer, next) = page(t, start, room);
        room -= answer.partitions.len();
        topics.push(answer);
        if let Some(index) = next {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_index(index),
            );
        }
    }
    for t in &mut topics {
        let n = t.name.as_ref().map_or(String::new(), |n| n.0.to_string());
        t.topic_authorized_operations = ctx.authorized_operations(Resource::Topic, &n, &TOPIC_OPERATIONS);
    }
    let codes: Vec<i16> = topics.iter().chain(&denied).map(|t| t.error_code).collect();
    topics.extend(denied);
    for code in codes {
        ctx.note_error(code);
    }
    respond(meta, &DescribeTopicPartitionsResponse::default().with_topics(topics).with_next_cursor(next_cursor))
}
