//! Metadata (key 3, v0–13): with a metadata log, the cluster as the fleet of logferry
//! instances beside its brokers ([`crate::cluster::fleet`]); without one, logferry presents
//! itself as a one-broker cluster that leads every partition it serves.
//!
//! Owns the topic listing: all topics (null request list, or an empty list in v0) or the named
//! ones (by name, or by topic id from v10), with leader epochs from `leader-epoch-checkpoint`,
//! topic ids from `partition.metadata`, the cluster id from `meta.properties`. Unknown topics get
//! UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID when asked by id) and nothing is ever created,
//! whatever `allow_auto_topic_creation` says. Partitions that appear in the log dir appear here on
//! the next request, without a restart.
//!
//! A broker's log dir usually holds a gappy set of a topic's partitions (replication factor
//! below the broker count: broker 1 holds `spread` 0, 2, 3 and 4). Every partition index up to
//! the highest one here is listed; those without a local replica are answered with
//! LEADER_NOT_AVAILABLE and no leader. Listing only the local ones would number them {0, 2, 3, 4}
//! with a count of 4, and librdkafka then ignores partition 4 ("partition_cnt 4: ignoring leader
//! update") and never reads it.

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{error_code, respond, Context, Outcome, RequestMeta};
use crate::cluster::fleet::{Fleet, Node};
use crate::log::meta::Uuid;
use crate::log::TopicPartition;

pub fn topic_uuid(id: &Uuid) -> uuid::Uuid {
    uuid::Uuid::from_bytes(*id)
}

fn is_internal(topic: &str) -> bool {
    topic == "__consumer_offsets" || topic == "__transaction_state" || topic == "__share_group_state"
}

/// Topic name → (topic id, partition numbers), from the view.
pub fn topics(ctx: &Context<'_>) -> BTreeMap<String, (Uuid, Vec<i32>)> {
    let mut out: BTreeMap<String, (Uuid, Vec<i32>)> = BTreeMap::new();
    for (tp, p) in &ctx.view.partitions {
        out.entry(tp.topic.clone()).or_insert_with(|| (p.topic_id, Vec::new())).1.push(tp.partition);
    }
    out
}

/// The topics a request names: `(name, id)`, all of `all` for a null list (or an empty v0 list).
fn wanted<'n>(
    req: &MetadataRequest,
    version: i16,
    all: impl Iterator<Item = &'n String>,
) -> Vec<(Option<String>, Option<uuid::Uuid>)> {
    match &req.topics {
        None => all.map(|t| (Some(t.clone()), None)).collect(),
        Some(list) if list.is_empty() && version == 0 => all.map(|t| (Some(t.clone()), None)).collect(),
        Some(list) => list
            .iter()
            .map(|t| {
                let id = (!t.topic_id.is_nil()).then_some(t.topic_id);
                // From v10 a topic may be named by id only; its name is then null (or empty).
                let name = t.name.as_ref().map(|n| n.0.to_string()).filter(|n| !(n.is_empty() && id.is_some()));
                (name, id)
            })
            .collect(),
    }
}

/// Whether the request lists every topic (null list, or an empty v0 list).
fn all_topics(req: &MetadataRequest, version: i16) -> bool {
    req.topics.as_ref().is_none_or(|l| l.is_empty() && version == 0)
}

/// The caller's TOPIC DESCRIBE check (Kafka's `handleTopicMetadataRequest`): `None` to answer
/// the topic; `Some(None)` to leave it out of an all-topics answer; `Some(Some(t))` for a named
/// topic: TOPIC_AUTHORIZATION_FAILED, named as asked (by id: name null), whether it exists or not.
fn refused(
    ctx: &Context<'_>,
    every: bool,
    name: &str,
    asked: (Option<String>, Option<uuid::Uuid>),
) -> Option<Option<MetadataResponseTopic>> {
    if ctx.topic_allowed(crate::auth::acl::Operation::Describe, name) {
        return None;
    }
    if every {
        return Some(None);
    }
    let (name, id) = asked;
    Some(Some(
        MetadataResponseTopic::default()
            .with_error_code(error_code::TOPIC_AUTHORIZATION_FAILED)
            .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(id.unwrap_or_default()),
    ))
}

fn unknown_topic(name: Option<String>, id: Option<uuid::Uuid>) -> MetadataResponseTopic {
    let code = if name.is_none() { error_code::UNKNOWN_TOPIC_ID } else { error_code::UNKNOWN_TOPIC_OR_PARTITION };
    MetadataResponseTopic::default()
        .with_error_code(code)
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_topic_id(id.unwrap_or_default())
}

fn broker(n: &Node) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(n.id))
        .with_host(StrBytes::from_string(n.host.clone()))
        .with_port(i32::from(n.port))
        .with_rack(n.rack.clone().map(StrBytes::from_string))
}

/// The fleet presentation (see [`crate::cluster::fleet`]): every topic and partition of the
/// cluster, led by the instance beside its Kafka leader, with the cluster's leader epochs.
fn fleet_response(
    meta: &RequestMeta,
    req: &MetadataRequest,
    ctx: &Context<'_>,
    fleet: &Fleet<'_>,
) -> (Outcome, Vec<i16>) {
    let version = meta.api_version;
    let config = ctx.config;
    let brokers_ids = |ids: &[i32]| ids.iter().map(|&i| BrokerId(i)).collect::<Vec<_>>();
    let mut topics_out = Vec::new();
    let image = fleet.image;
    let every = all_topics(req, version);
    for (name, id) in wanted(req, version, image.names.keys()) {
        if let Some(n) = &name {
            if let Some(r) = refused(ctx, every, n, (name.clone(), id)) {
                topics_out.extend(r);
                continue;
            }
        }
        let found = match (&name, id) {
            (Some(n), _) => image.topic(n),
            (None, Some(id)) => image.topics.get(id.as_bytes()),
            (None, None) => None,
        };
        let Some(t) = found else {
            topics_out.push(unknown_topic(name, id));
            continue;
        };
        if name.is_none() {
            if let Some(r) = refused(ctx, every, &t.name, (None, id)) {
                topics_out.extend(r);
                continue;
            }
        }
        let partitions = t
            .partitions
            .iter()
            .map(|(&index, p)| {
                let local =
                    ctx.view.partitions.contains_key(&TopicPartition { topic: t.name.clone(), partition: index });
                let leader = fleet.leader(p, local);
                MetadataResponsePartition::default()
                    .with_error_code(if leader.is_some() { error_code::NONE } else { error_code::LEADER_NOT_AVAILABLE })
                    .with_partition_index(index)
                    .with_leader_id(BrokerId(leader.unwrap_or(-1)))
                    .with_leader_epoch(if version >= 7 { p.leader_epoch } else { -1 })
                    .with_replica_nodes(brokers_ids(&p.replicas))
                    .with_isr_nodes(brokers_ids(&p.isr))
                    .with_offline_replicas(brokers_ids(&fleet.offline(p)))
            })
            .collect();
        topics_out.push(
            MetadataResponseTopic::default()
                .with_error_code(error_code::NONE)
                .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
                .with_topic_id(if version >= 10 { topic_uuid(&t.id) } else { uuid::Uuid::nil() })
                .with_is_internal(is_internal(&t.name))
                .with_partitions(partitions),
        );
    }
    // KRaft brokers report a live broker as the controller: this instance, as the broker does
    // with itself.
    let errors =
        topics_out.iter().map(|t| t.error_code).filter(|&c| c == error_code::TOPIC_AUTHORIZATION_FAILED).collect();
    let resp = MetadataResponse::default()
        .with_brokers(fleet.nodes.values().map(broker).collect())
        .with_cluster_id((version >= 2).then(|| StrBytes::from_string(config.cluster_id.clone())))
        .with_controller_id(if version >= 1 { BrokerId(config.node_id) } else { BrokerId(-1) })
        .with_topics(topics_out);
    (respond(meta, &resp), errors)
}

pub fn handle(meta: &RequestMeta, req: &MetadataRequest, ctx: &mut Context<'_>) -> Outcome {
    let version = meta.api_version;
    let fleet = ctx.fleet().map(|fleet| fleet_response(meta, req, ctx, &fleet));
    if let Some((outcome, errors)) = fleet {
        for code in errors {
            ctx.note_error(code);
        }
        return outcome;
    }
    let all = topics(ctx);
    let node = BrokerId(ctx.config.node_id);
    let every = all_topics(req, version);
    let wanted = wanted(req, version, all.keys());
    let mut topics_out = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        if let Some(n) = &name {
            if let Some(r) = refused(ctx, every, n, (name.clone(), id)) {
                if r.is_some() {
                    ctx.note_error(error_code::TOPIC_AUTHORIZATION_FAILED);
                }
                topics_out.extend(r);
                continue;
            }
        }
        let found = match (&name, id) {
            (Some(n), _) => all.get_key_value(n),
            (None, Some(id)) => all.iter().find(|(_, (tid, _))| topic_uuid(tid) == id),
            (None, None) => None,
        };
        let Some((topic, (tid, parts))) = found else {
            topics_out.push(unknown_topic(name, id));
            continue;
        };
        if name.is_none() {
            if let Some(r) = refused(ctx, every, topic, (None, id)) {
                if r.is_some() {
                    ctx.note_error(error_code::TOPIC_AUTHORIZATION_FAILED);
                }
                topics_out.extend(r);
                continue;
            }
        }
        let highest = parts.iter().copied().max().unwrap_or(-1);
        let mut partitions = Vec::with_capacity(parts.len());
        for missing in (0..=highest).filter(|p| !parts.contains(p)) {
            partitions.push(
                MetadataResponsePartition::default()
                    .with_error_code(error_code::LEADER_NOT_AVAILABLE)
                    .with_partition_index(missing)
                    .with_leader_id(BrokerId(-1))
                    .with_leader_epoch(-1)
                    .with_replica_nodes(Vec::new())
                    .with_isr_nodes(Vec::new())
                    .with_offline_replicas(Vec::new()),
            );
        }
        for &partition in parts {
            let epoch = ctx
                .view
                .partition(&crate::log::TopicPartition { topic: topic.clone(), partition })
                .map_or(-1, |p| p.leader_epoch());
            partitions.push(
                MetadataResponsePartition::default()
                    .with_error_code(error_code::NONE)
                    .with_partition_index(partition)
                    .with_leader_id(node)
                    .with_leader_epoch(if version >= 7 { epoch } else { -1 })
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node])
                    .with_offline_replicas(Vec::new()),
            );
        }
        topics_out.push(
            MetadataResponseTopic::default()
                .with_error_code(error_code::NONE)
                .with_name(Some(TopicName(StrBytes::from_string(topic.clone()))))
                .with_topic_id(if version >= 10 { topic_uuid(tid) } else { uuid::Uuid::nil() })
                .with_is_internal(is_internal(topic))
                .with_partitions({
                    partitions.sort_by_key(|p| p.partition_index);
                    partitions
                }),
        );
    }
    let resp = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(StrBytes::from_string(ctx.config.advertised_host.clone()))
            .with_port(ctx.config.advertised_port)])
        .with_cluster_id((version >= 2).then(|| StrBytes::from_string(ctx.config.cluster_id.clone())))
        .with_controller_id(if version >= 1 { node } else { BrokerId(-1) })
        .with_topics(topics_out);
    respond(meta, &resp)
}
