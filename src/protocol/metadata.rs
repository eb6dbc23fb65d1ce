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

pub fn is_internal(topic: &str) -> bool {
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

/// One partition as this server presents it (Metadata, DescribeTopicPartitions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub error_code: i16,
    pub index: i32,
    /// −1: no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub elr: Vec<i32>,
    pub last_known_elr: Vec<i32>,
    pub offline: Vec<i32>,
}

/// One topic as this server presents it, partitions in index order.
#[derive(Clone, Debug)]
pub struct TopicView {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionView>,
}

impl TopicView {
    pub fn is_internal(&self) -> bool {
        is_internal(&self.name)
    }
}

/// What this server presents: the cluster of the metadata log as the fleet of logferry
/// instances beside its brokers, or, without one, itself as a one-broker cluster leading every
/// partition of its log dirs. Metadata and DescribeTopicPartitions answer from the same one.
pub enum Presentation<'a> {
    Fleet(Fleet<'a>),
    Alone(BTreeMap<String, (Uuid, Vec<i32>)>),
}

impl<'a> Presentation<'a> {
    pub fn of(ctx: &'a Context<'_>) -> Presentation<'a> {
        match ctx.fleet() {
            Some(f) => Presentation::Fleet(f),
            None => Presentation::Alone(topics(ctx)),
        }
    }

    /// Every topic name, in name order.
    pub fn names(&self) -> Vec<&String> {
        match self {
            Presentation::Fleet(f) => f.image.names.keys().collect(),
            Presentation::Alone(t) => t.keys().collect(),
        }
    }

    /// The topic's name, if it exists, found by name or else by id.
    pub fn find(&self, name: Option<&str>, id: Option<uuid::Uuid>) -> Option<String> {
        match (self, name, id) {
            (Presentation::Fleet(f), Some(n), _) => f.image.topic(n).map(|t| t.name.clone()),
            (Presentation::Fleet(f), None, Some(id)) => f.image.topics.get(id.as_bytes()).map(|t| t.name.clone()),
            (Presentation::Alone(t), Some(n), _) => t.contains_key(n).then(|| n.to_string()),
            (Presentation::Alone(t), None, Some(id)) => {
                t.iter().find(|(_, (tid, _))| topic_uuid(tid) == id).map(|(n, _)| n.clone())
            }
            (_, None, None) => None,
        }
    }

    /// The shown nodes (brokers), by id.
    pub fn nodes(&self, ctx: &Context<'_>) -> Vec<Node> {
        match self {
            Presentation::Fleet(f) => f.nodes.values().cloned().collect(),
            Presentation::Alone(_) => vec![Node {
                id: ctx.config.node_id,
                host: ctx.config.advertised_host.clone(),
                port: u16::try_from(ctx.config.advertised_port).unwrap_or(0),
                rack: None,
            }],
        }
    }

    /// A topic with its partitions. Fleet: each led by the instance beside its Kafka leader,
    /// with the cluster's leader epochs, replicas, ISR and ELR. Alone: every index up to the
    /// highest local one, the missing ones LEADER_NOT_AVAILABLE without a leader (see the
    /// module doc), the local ones led by this node at the epoch of `leader-epoch-checkpoint`.
    pub fn topic(&self, ctx: &Context<'_>, name: &str) -> Option<TopicView> {
        match self {
            Presentation::Fleet(fleet) => {
                let t = fleet.image.topic(name)?;
                let partitions = t
                    .partitions
                    .iter()
                    .map(|(&index, p)| {
                        let tp = TopicPartition { topic: t.name.clone(), partition: index };
                        let leader = fleet.leader(p, ctx.view.partitions.contains_key(&tp));
                        PartitionView {
                            error_code: if leader.is_some() {
                                error_code::NONE
                            } else {
                                error_code::LEADER_NOT_AVAILABLE
                            },
                            index,
                            leader: leader.unwrap_or(-1),
                            leader_epoch: p.leader_epoch,
                            replicas: p.replicas.clone(),
                            isr: p.isr.clone(),
                            elr: p.elr.clone(),
                            last_known_elr: p.last_known_elr.clone(),
                            offline: fleet.offline(p),
                        }
                    })
                    .collect();
                Some(TopicView { name: t.name.clone(), id: t.id, partitions })
            }
            Presentation::Alone(all) => {
                let (id, parts) = all.get(name)?;
                let node = ctx.config.node_id;
                let highest = parts.iter().copied().max().unwrap_or(-1);
                let partitions = (0..=highest)
                    .map(|index| {
                        let tp = TopicPartition { topic: name.to_string(), partition: index };
                        match ctx.view.partition(&tp) {
                            Some(p) => PartitionView {
                                error_code: error_code::NONE,
                                index,
                                leader: node,
                                leader_epoch: p.leader_epoch(),
                                replicas: vec![node],
                                isr: vec![node],
                                elr: Vec::new(),
                                last_known_elr: Vec::new(),
                                offline: Vec::new(),
                            },
                            None => PartitionView {
                                error_code: error_code::LEADER_NOT_AVAILABLE,
                                index,
                                leader: -1,
                                leader_epoch: -1,
                                replicas: Vec::new(),
                                isr: Vec::new(),
                                elr: Vec::new(),
                                last_known_elr: Vec::new(),
                                offline: Vec::new(),
                            },
                        }
                    })
                    .collect();
                Some(TopicView { name: name.to_string(), id: *id, partitions })
            }
        }
    }
}

fn metadata_topic(t: TopicView, version: i16) -> MetadataResponseTopic {
    let ids = |ids: Vec<i32>| ids.into_iter().map(BrokerId).collect::<Vec<_>>();
    let partitions = t
        .partitions
        .into_iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_error_code(p.error_code)
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(if version >= 7 { p.leader_epoch } else { -1 })
                .with_replica_nodes(ids(p.replicas))
                .with_isr_nodes(ids(p.isr))
                .with_offline_replicas(ids(p.offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(error_code::NONE)
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(if version >= 10 { topic_uuid(&t.id) } else { uuid::Uuid::nil() })
        .with_is_internal(is_internal(&t.name))
        .with_partitions(partitions)
}

/// The answer, and the errors to count (the caller's refusals).
fn answer(meta: &RequestMeta, req: &MetadataRequest, ctx: &Context<'_>) -> (Outcome, Vec<i16>) {
    let version = meta.api_version;
    let view = Presentation::of(ctx);
    let every = all_topics(req, version);
    let mut topics_out = Vec::new();
    for (name, id) in wanted(req, version, view.names().into_iter()) {
        if let Some(n) = &name {
            if let Some(r) = refused(ctx, every, n, (name.clone(), id)) {
                topics_out.extend(r);
                continue;
            }
        }
        let Some(found) = view.find(name.as_deref(), id) else {
            topics_out.push(unknown_topic(name, id));
            continue;
        };
        if name.is_none() {
            if let Some(r) = refused(ctx, every, &found, (None, id)) {
                topics_out.extend(r);
                continue;
            }
        }
        match view.topic(ctx, &found) {
            Some(t) => topics_out.push(metadata_topic(t, version)),
            None => topics_out.push(unknown_topic(name, id)),
        }
    }
    let errors =
        topics_out.iter().map(|t| t.error_code).filter(|&c| c == error_code::TOPIC_AUTHORIZATION_FAILED).collect();
    // KRaft brokers report a live broker as the controller: this instance, as the broker does
    // with itself.
    let node = BrokerId(ctx.config.node_id);
    let resp = MetadataResponse::default()
        .with_brokers(view.nodes(ctx).iter().map(broker).collect())
        .with_cluster_id((version >= 2).then(|| StrBytes::from_string(ctx.config.cluster_id.clone())))
        .with_controller_id(if version >= 1 { node } else { BrokerId(-1) })
        .with_topics(topics_out);
    (respond(meta, &resp), errors)
}

pub fn handle(meta: &RequestMeta, req: &MetadataRequest, ctx: &mut Context<'_>) -> Outcome {
    let (outcome, errors) = answer(meta, req, ctx);
    for code in errors {
        ctx.note_error(code);
    }
    outcome
}
