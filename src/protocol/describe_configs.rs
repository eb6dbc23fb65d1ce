//! DescribeConfigs (key 32, v1–4): the configs of topics and of this broker, as the broker's
//! `ConfigHelper` reports them, from the cluster's own sources: the metadata log's config
//! records (topic overrides, per-broker and cluster-default dynamic broker configs), the
//! broker's `server.properties` (`--broker-config`) and Kafka's built-in defaults.
//!
//! A topic key's value is its override (source 1, DYNAMIC_TOPIC_CONFIG), else the first of its
//! broker synonyms that is set (`ServerTopicConfigSynonyms`: `retention.ms` ← `log.retention.ms`
//! ← `log.retention.minutes` ← `log.retention.hours`, each per broker (2), cluster default (3),
//! static (4)), converted to the topic's unit, else Kafka's default. The synonym list is the
//! broker's: the override, then every set synonym by source (2, 3, 4, then 5 for the broker
//! keys' own defaults), cut before the first entry of the primary synonym, so `retention.ms`
//! with only `log.retention.hours` set reports source 5 as Kafka does. The entry's source is
//! the list's first; `kafka-topics.sh` prints the entries whose source is not 5,
//! `kafka-configs.sh` those of source 1. The table below is Kafka 4.4's topic configs, checked
//! against a 4.4 broker's `kafka-configs.sh --describe --all` in `tests/e2e/test_admin.py`.
//!
//! The BROKER resource (this node's id, or "" for the cluster default) lists the dynamic
//! configs of the metadata log and the keys of `server.properties` (secrets as null and
//! sensitive), not the hundreds of broker defaults the broker adds. GROUP and CLIENT_METRICS
//! resources list their dynamic configs. Refusals are the broker's: TOPIC_AUTHORIZATION_FAILED
//! (TOPIC DESCRIBE_CONFIGS), CLUSTER_AUTHORIZATION_FAILED (BROKER, CLUSTER DESCRIBE_CONFIGS),
//! GROUP_AUTHORIZATION_FAILED, UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION, and
//! INVALID_REQUEST for another broker's id, BROKER_LOGGER and unknown resource types.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{error_code, respond, Context, Outcome, RequestMeta};
use crate::auth::acl::{Operation, Resource, CLUSTER_NAME};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_CLIENT_METRICS: i8 = 16;
const RESOURCE_GROUP: i8 = 32;

const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT: i8 = 3;
const SOURCE_STATIC: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_CLIENT_METRICS: i8 = 7;
const SOURCE_GROUP: i8 = 8;

const INVALID_REQUEST: i16 = 42;
const INVALID_TOPIC: i16 = 17;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// `ConfigDef.Type` as DescribeConfigs v3+ numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Boolean = 1,
    Str = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// How a broker synonym's value becomes the topic key's (`ConfigSynonym` converters).
#[derive(Clone, Copy, Debug)]
enum Unit {
    Same,
    HoursToMs,
    MinutesToMs,
}

/// A broker synonym: its name, unit, and the broker key's own default (`None`: null).
type Synonym = (&'static str, Unit, Option<&'static str>);

/// A topic-level config: name, type, default, broker synonyms in priority order.
struct TopicConfig {
    name: &'static str,
    kind: Kind,
    default: &'static str,
    synonyms: &'static [Synonym],
}

const LONG_MAX: &str = "9223372036854775807";

macro_rules! same {
    ($n:literal, $d:expr) => {
        &[($n, Unit::Same, Some($d))]
    };
}

/// Kafka 4.4's topic configs (`LogConfig`, `ServerTopicConfigSynonyms`), in name order.
const TOPIC_CONFIGS: &[TopicConfig] = &[
    TopicConfig {
        name: "cleanup.policy",
        kind: Kind::List,
        default: "delete",
        synonyms: same!("log.cleanup.policy", "delete"),
    },
    TopicConfig {
        name: "compression.gzip.level",
        kind: Kind::Int,
        default: "-1",
        synonyms: same!("compression.gzip.level", "-1"),
    },
    TopicConfig {
        name: "compression.lz4.level",
        kind: Kind::Int,
        default: "9",
        synonyms: same!("compression.lz4.level", "9"),
    },
    TopicConfig {
        name: "compression.type",
        kind: Kind::Str,
        default: "producer",
        synonyms: same!("compression.type", "producer"),
    },
    TopicConfig {
        name: "compression.zstd.level",
        kind: Kind::Int,
        default: "3",
        synonyms: same!("compression.zstd.level", "3"),
    },
    TopicConfig {
        name: "delete.retention.ms",
        kind: Kind::Long,
        default: "86400000",
        synonyms: same!("log.cleaner.delete.retention.ms", "86400000"),
    },
    TopicConfig { name: "errors.deadletterqueue.group.enable", kind: Kind::Boolean, default: "false", synonyms: &[] },
    TopicConfig {
        name: "file.delete.delay.ms",
        kind: Kind::Long,
        default: "60000",
        synonyms: same!("log.segment.delete.delay.ms", "60000"),
    },
    TopicConfig {
        name: "flush.messages",
        kind: Kind::Long,
        default: LONG_MAX,
        synonyms: same!("log.flush.interval.messages", LONG_MAX),
    },
    TopicConfig {
        name: "flush.ms",
        kind: Kind::Long,
        default: LONG_MAX,
        synonyms: &[
            ("log.flush.interval.ms", Unit::Same, None),
            ("log.flush.scheduler.interval.ms", Unit::Same, Some(LONG_MAX)),
        ],
    },
    TopicConfig { name: "follower.replication.throttled.replicas", kind: Kind::List, default: "", synonyms: &[] },
    TopicConfig {
        name: "index.interval.bytes",
        kind: Kind::Int,
        default: "4096",
        synonyms: same!("log.index.interval.bytes", "4096"),
    },
    TopicConfig { name: "leader.replication.throttled.replicas", kind: Kind::List, default: "", synonyms: &[] },
    TopicConfig {
        name: "local.retention.bytes",
        kind: Kind::Long,
        default: "-2",
        synonyms: same!("log.local.retention.bytes", "-2"),
    },
    TopicConfig {
        name: "local.retention.ms",
        kind: Kind::Long,
        default: "-2",
        synonyms: same!("log.local.retention.ms", "-2"),
    },
    TopicConfig {
        name: "max.compaction.lag.ms",
        kind: Kind::Long,
        default: LONG_MAX,
        synonyms: same!("log.cleaner.max.compaction.lag.ms", LONG_MAX),
    },
    TopicConfig {
        name: "max.decompressed.message.bytes",
        kind: Kind::Int,
        default: "2147483639",
        synonyms: same!("max.decompressed.message.bytes", "2147483639"),
    },
    TopicConfig {
        name: "max.message.bytes",
        kind: Kind::Int,
        default: "1048588",
        synonyms: same!("message.max.bytes", "1048588"),
    },
    TopicConfig {
        name: "message.timestamp.after.max.ms",
        kind: Kind::Long,
        default: "3600000",
        synonyms: same!("log.message.timestamp.after.max.ms", "3600000"),
    },
    TopicConfig {
        name: "message.timestamp.before.max.ms",
        kind: Kind::Long,
        default: LONG_MAX,
        synonyms: same!("log.message.timestamp.before.max.ms", LONG_MAX),
    },
    TopicConfig {
        name: "message.timestamp.type",
        kind: Kind::Str,
        default: "CreateTime",
        synonyms: same!("log.message.timestamp.type", "CreateTime"),
    },
    TopicConfig {
        name: "min.cleanable.dirty.ratio",
        kind: Kind::Double,
        default: "0.5",
        synonyms: same!("log.cleaner.min.cleanable.ratio", "0.5"),
    },
    TopicConfig {
        name: "min.compaction.lag.ms",
        kind: Kind::Long,
        default: "0",
        synonyms: same!("log.cleaner.min.compaction.lag.ms", "0"),
    },
    TopicConfig {
        name: "min.insync.replicas",
        kind: Kind::Int,
        default: "1",
        synonyms: same!("min.insync.replicas", "1"),
    },
    TopicConfig {
        name: "preallocate",
        kind: Kind::Boolean,
        default: "false",
        synonyms: same!("log.preallocate", "false"),
    },
    TopicConfig {
        name: "remote.copy.lag.bytes",
        kind: Kind::Long,
        default: "-1",
        synonyms: same!("log.remote.copy.lag.bytes", "-1"),
    },
    TopicConfig {
        name: "remote.copy.lag.ms",
        kind: Kind::Long,
        default: "0",
        synonyms: same!("log.remote.copy.lag.ms", "0"),
    },
    TopicConfig { name: "remote.log.copy.disable", kind: Kind::Boolean, default: "false", synonyms: &[] },
    TopicConfig { name: "remote.log.delete.on.disable", kind: Kind::Boolean, default: "false", synonyms: &[] },
    TopicConfig { name: "remote.storage.enable", kind: Kind::Boolean, default: "false", synonyms: &[] },
    TopicConfig {
        name: "retention.bytes",
        kind: Kind::Long,
        default: "-1",
        synonyms: same!("log.retention.bytes", "-1"),
    },
    TopicConfig {
        name: "retention.ms",
        kind: Kind::Long,
        default: "604800000",
        synonyms: &[
            ("log.retention.ms", Unit::Same, None),
            ("log.retention.minutes", Unit::MinutesToMs, None),
            ("log.retention.hours", Unit::HoursToMs, Some("168")),
        ],
    },
    TopicConfig {
        name: "segment.bytes",
        kind: Kind::Int,
        default: "1073741824",
        synonyms: same!("log.segment.bytes", "1073741824"),
    },
    TopicConfig {
        name: "segment.index.bytes",
        kind: Kind::Int,
        default: "10485760",
        synonyms: same!("log.index.size.max.bytes", "10485760"),
    },
    TopicConfig {
        name: "segment.jitter.ms",
        kind: Kind::Long,
        default: "0",
        synonyms: &[("log.roll.jitter.ms", Unit::Same, None), ("log.roll.jitter.hours", Unit::HoursToMs, Some("0"))],
    },
    TopicConfig {
        name: "segment.ms",
        kind: Kind::Long,
        default: "604800000",
        synonyms: &[("log.roll.ms", Unit::Same, None), ("log.roll.hours", Unit::HoursToMs, Some("168"))],
    },
    TopicConfig {
        name: "unclean.leader.election.enable",
        kind: Kind::Boolean,
        default: "false",
        synonyms: same!("unclean.leader.election.enable", "false"),
    },
];

/// The metadata log's dynamic configs: (resource type, name) → key → value.
pub type DynamicConfigs = BTreeMap<(i8, String), BTreeMap<String, String>>;

/// Where config values come from.
pub struct Sources<'a> {
    /// Dynamic configs of the metadata log, by (resource type, name).
    pub dynamic: Option<&'a DynamicConfigs>,
    /// The broker's `server.properties`.
    pub static_props: &'a BTreeMap<String, String>,
    pub node_id: i32,
}

impl Sources<'_> {
    fn dynamic(&self, kind: i8, name: &str) -> Option<&BTreeMap<String, String>> {
        self.dynamic.and_then(|d| d.get(&(kind, name.to_string())))
    }

    /// A broker key's value by priority: this broker's dynamic, the cluster default, static.
    fn broker_value(&self, key: &str) -> Option<&str> {
        self.dynamic(RESOURCE_BROKER, &self.node_id.to_string())
            .and_then(|m| m.get(key))
            .or_else(|| self.dynamic(RESOURCE_BROKER, "").and_then(|m| m.get(key)))
            .or_else(|| self.static_props.get(key))
            .map(|v| v.trim())
    }
}

fn normalize(kind: Kind, value: &str) -> String {
    match kind {
        Kind::List => value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(","),
        Kind::Double => value.trim().parse::<f64>().map_or_else(|_| value.trim().to_string(), java_double),
        _ => value.trim().to_string(),
    }
}

/// `Double.toString` for the plain values configs hold (0.5, 1.0, 0.25).
fn java_double(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e7 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn convert(unit: Unit, value: &str) -> String {
    let factor = match unit {
        Unit::Same => return value.to_string(),
        Unit::HoursToMs => 3_600_000i64,
        Unit::MinutesToMs => 60_000,
    };
    value.parse::<i64>().ok().and_then(|v| v.checked_mul(factor)).map_or_else(|| value.to_string(), |v| v.to_string())
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value(Some(StrBytes::from_string(value.to_string())))
        .with_source(source)
}

/// One topic config entry (value, source, synonyms), as `ConfigHelper.createTopicConfigEntry`.
fn topic_entry(
    def: &TopicConfig,
    overrides: Option<&BTreeMap<String, String>>,
    src: &Sources<'_>,
    with_synonyms: bool,
) -> DescribeConfigsResourceResult {
    let mut list: Vec<DescribeConfigsSynonym> = Vec::new();
    let own = overrides.and_then(|o| o.get(def.name));
    if let Some(v) = own {
        list.push(synonym(def.name, &normalize(def.kind, v), SOURCE_TOPIC));
    }
    let node = src.node_id.to_string();
    let mut broker: Vec<DescribeConfigsSynonym> = Vec::new();
    for (source, map) in [
        (SOURCE_DYNAMIC_BROKER, src.dynamic(RESOURCE_BROKER, &node)),
        (SOURCE_DYNAMIC_DEFAULT, src.dynamic(RESOURCE_BROKER, "")),
        (SOURCE_STATIC, Some(src.static_props)),
    ] {
        for (name, _, _) in def.synonyms {
            if let Some(v) = map.and_then(|m| m.get(*name)) {
                broker.push(synonym(name, v.trim(), source));
            }
        }
    }
    for (name, _, default) in def.synonyms {
        if let Some(d) = default {
            broker.push(synonym(name, d, SOURCE_DEFAULT));
        }
    }
    // Kafka drops what precedes the primary synonym (`allSynonyms.dropWhile(_.name != name)`).
    if let Some((primary, _, _)) = def.synonyms.first() {
        let keep = broker.iter().position(|s| s.name.as_str() == *primary).unwrap_or(broker.len());
        list.extend(broker.into_iter().skip(keep));
    }
    let value = match own {
        Some(v) => normalize(def.kind, v),
        None => def
            .synonyms
            .iter()
            .find_map(|(name, unit, _)| src.broker_value(name).map(|v| convert(*unit, &normalize(def.kind, v))))
            .unwrap_or_else(|| def.default.to_string()),
    };
    let source = list.first().map_or(SOURCE_DEFAULT, |s| s.source);
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(def.name))
        .with_value(Some(StrBytes::from_string(value)))
        .with_read_only(false)
        .with_config_source(source)
        .with_is_sensitive(false)
        .with_synonyms(if with_synonyms { list } else { Vec::new() })
        .with_config_type(def.kind as i8)
}

/// Broker keys whose values are secrets (Kafka's PASSWORD type): shown as null.
fn sensitive(key: &str) -> bool {
    key.contains("password") || key.ends_with("sasl.jaas.config") || key.contains("secret") || key.ends_with(".key")
}

fn plain_entry(name: &str, value: &str, source: i8, read_only: bool) -> DescribeConfigsResourceResult {
    let secret = sensitive(name);
    let mut own = synonym(name, value, source);
    if secret {
        own.value = None;
    }
    DescribeConfigsResourceResult::default()
        .with_synonyms(vec![own])
        .with_name(StrBytes::from_string(name.to_string()))
        .with_value((!secret).then(|| StrBytes::from_string(value.to_string())))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_is_sensitive(secret)
        .with_config_type(if secret { 9 } else { 0 })
}

/// Topic names Kafka accepts (`Topic.validate`).
pub fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    keys.as_ref().is_none_or(|k| k.is_empty() || k.iter().any(|k| k.as_str() == name))
}

/// Whether logferry knows the topic (served here, or in the cluster's metadata).
fn topic_known(ctx: &Context<'_>, local: &std::collections::BTreeSet<String>, name: &str) -> bool {
    ctx.view.cluster.as_ref().is_some_and(|c| c.image.topic(name).is_some()) || local.contains(name)
}

pub fn handle(meta: &RequestMeta, req: &DescribeConfigsRequest, ctx: &mut Context<'_>) -> Outcome {
    // Kafka has no bound here; one resource per topic is what `kafka-topics.sh` sends, so the
    // request bound on partitions is as generous.
    if req.resources.len() > ctx.config.partitions_per_request_max {
        return Outcome::Close(format!(
            "DescribeConfigs for {} resources exceeds partitions_per_request_max",
            req.resources.len()
        ));
    }
    // The local topic names once, not a walk of every partition per resource.
    let local: std::collections::BTreeSet<String> = ctx.view.partitions.keys().map(|tp| tp.topic.clone()).collect();
    let mut results = Vec::with_capacity(req.resources.len());
    for r in &req.resources {
        let name = r.resource_name.as_str();
        let fail = |code: i16, message: String| {
            DescribeConfigsResult::default()
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message)))
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
        };
        let dynamic = ctx.view.cluster.as_ref().map(|c| &c.image.configs);
        let src = Sources { dynamic, static_props: &ctx.config.broker_properties, node_id: ctx.config.node_id };
        let result = match r.resource_type {
            RESOURCE_TOPIC if !ctx.topic_allowed(Operation::DescribeConfigs, name) => {
                fail(TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed.".into())
            }
            RESOURCE_TOPIC if !valid_topic(name) => fail(INVALID_TOPIC, format!("Topic name \"{name}\" is illegal")),
            RESOURCE_TOPIC if !topic_known(ctx, &local, name) => {
                fail(error_code::UNKNOWN_TOPIC_OR_PARTITION, format!("Topic {name} does not exist."))
            }
            RESOURCE_TOPIC => {
                let overrides = src.dynamic(RESOURCE_TOPIC, name);
                let configs = TOPIC_CONFIGS
                    .iter()
                    .filter(|d| wanted(&r.configuration_keys, d.name))
                    .map(|d| topic_entry(d, overrides, &src, req.include_synonyms))
                    .collect();
                DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
                    .with_configs(configs)
            }
            RESOURCE_BROKER | RESOURCE_BROKER_LOGGER | RESOURCE_CLIENT_METRICS
                if !ctx.allowed(Operation::DescribeConfigs, Resource::Cluster, CLUSTER_NAME) =>
            {
                fail(CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed.".into())
            }
            RESOURCE_BROKER if !name.is_empty() && name != ctx.config.node_id.to_string() => fail(
                INVALID_REQUEST,
                format!("Unexpected broker id, expected {} or empty string, but received {name}", ctx.config.node_id),
            ),
            RESOURCE_BROKER => {
                // name "": the cluster default only; this broker: its own, the default, the file.
                let mut entries: BTreeMap<String, DescribeConfigsResourceResult> = BTreeMap::new();
                let mut layers = vec![(SOURCE_DYNAMIC_DEFAULT, src.dynamic(RESOURCE_BROKER, ""))];
                if !name.is_empty() {
                    layers.insert(0, (SOURCE_DYNAMIC_BROKER, src.dynamic(RESOURCE_BROKER, name)));
                    layers.push((SOURCE_STATIC, Some(src.static_props)));
                }
                for (source, map) in layers {
                    for (k, v) in map.into_iter().flatten() {
                        if wanted(&r.configuration_keys, k) && !entries.contains_key(k) {
                            entries.insert(k.clone(), plain_entry(k, v, source, source == SOURCE_STATIC));
                        }
                    }
                }
                DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
                    .with_configs(entries.into_values().collect())
            }
            RESOURCE_GROUP if !ctx.allowed(Operation::DescribeConfigs, Resource::Group, name) => {
                fail(GROUP_AUTHORIZATION_FAILED, "Group authorization failed.".into())
            }
            kind @ (RESOURCE_GROUP | RESOURCE_CLIENT_METRICS) => {
                let source = if kind == RESOURCE_GROUP { SOURCE_GROUP } else { SOURCE_CLIENT_METRICS };
                let configs = src
                    .dynamic(kind, name)
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| wanted(&r.configuration_keys, k))
                    .map(|(k, v)| plain_entry(k, v, source, false))
                    .collect();
                DescribeConfigsResult::default()
                    .with_resource_type(kind)
                    .with_resource_name(r.resource_name.clone())
                    .with_configs(configs)
            }
            RESOURCE_BROKER_LOGGER => {
                fail(INVALID_REQUEST, "logferry has no broker loggers to describe (a read replica)".into())
            }
            other => fail(INVALID_REQUEST, format!("Unsupported resource type: {other}")),
        };
        let mut result = result;
        if !req.include_synonyms {
            result.configs.iter_mut().for_each(|c| c.synonyms.clear());
        }
        ctx.note_error(result.error_code);
        results.push(result);
    }
    respond(meta, &DescribeConfigsResponse::default().with_results(results))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn def(name: &str) -> &'static TopicConfig {
        TOPIC_CONFIGS.iter().find(|d| d.name == name).unwrap()
    }

    fn show(e: &DescribeConfigsResourceResult) -> (String, i8, Vec<String>) {
        (
            e.value.as_ref().map_or("null".into(), |v| v.to_string()),
            e.config_source,
            e.synonyms
                .iter()
                .map(|s| format!("{}:{}={}", s.source, s.name.as_str(), s.value.as_ref().map_or("", |v| v.as_str())))
                .collect(),
        )
    }

    /// What a 4.4 broker answered (`kafka-configs.sh --describe --all`) with a
    /// `server.properties` setting log.segment.bytes and log.segment.delete.delay.ms and the
    /// cluster default min.insync.replicas=1 that KRaft writes, and two topic overrides.
    #[test]
    fn sources_and_synonyms_as_the_broker_reports_them() {
        let static_props = props(&[
            ("log.segment.bytes", "1048576"),
            ("log.segment.delete.delay.ms", "1000"),
            ("file.delete.delay.ms", "1000"),
        ]);
        let mut dynamic = BTreeMap::new();
        dynamic.insert((RESOURCE_BROKER, String::new()), props(&[("min.insync.replicas", "1")]));
        dynamic.insert(
            (RESOURCE_TOPIC, "dc".into()),
            props(&[("retention.ms", "1000"), ("cleanup.policy", "compact,delete")]),
        );
        let src = Sources { dynamic: Some(&dynamic), static_props: &static_props, node_id: 1 };
        let overrides = src.dynamic(RESOURCE_TOPIC, "dc");
        let e = |name| show(&topic_entry(def(name), overrides, &src, true));
        assert_eq!(
            e("segment.bytes"),
            ("1048576".into(), 4, vec!["4:log.segment.bytes=1048576".into(), "5:log.segment.bytes=1073741824".into()])
        );
        assert_eq!(e("file.delete.delay.ms").1, 4);
        assert_eq!(
            e("min.insync.replicas"),
            ("1".into(), 3, vec!["3:min.insync.replicas=1".into(), "5:min.insync.replicas=1".into()])
        );
        assert_eq!(e("retention.ms"), ("1000".into(), 1, vec!["1:retention.ms=1000".into()]));
        assert_eq!(
            e("cleanup.policy"),
            (
                "compact,delete".into(),
                1,
                vec!["1:cleanup.policy=compact,delete".into(), "5:log.cleanup.policy=delete".into()]
            )
        );
        assert_eq!(e("flush.ms"), (LONG_MAX.into(), 5, vec![]));
        assert_eq!(e("segment.ms"), ("604800000".into(), 5, vec![]));
        assert_eq!(e("errors.deadletterqueue.group.enable"), ("false".into(), 5, vec![]));
        // log.retention.hours alone: the value converts, the source stays DEFAULT (dropWhile).
        let hours = props(&[("log.retention.hours", "1"), ("log.roll.ms", "5000")]);
        let src = Sources { dynamic: None, static_props: &hours, node_id: 1 };
        assert_eq!(show(&topic_entry(def("retention.ms"), None, &src, true)), ("3600000".into(), 5, vec![]));
        assert_eq!(show(&topic_entry(def("segment.ms"), None, &src, true)).1, 4);
        assert_eq!(TOPIC_CONFIGS.len(), 37, "Kafka 4.4 reports 37 topic configs");
        assert!(TOPIC_CONFIGS.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn secrets_are_null_and_topic_names_are_checked() {
        let e = plain_entry("listener.name.sasl_ssl.plain.sasl.jaas.config", "x", SOURCE_STATIC, true);
        assert!(e.value.is_none() && e.is_sensitive);
        assert!(plain_entry("ssl.keystore.password", "x", 4, true).value.is_none());
        assert_eq!(plain_entry("num.partitions", "3", 4, true).value.as_ref().map(|v| v.as_str()), Some("3"));
        assert!(valid_topic("a.b_c-1") && !valid_topic("a b") && !valid_topic("..") && !valid_topic(&"x".repeat(250)));
        assert_eq!(normalize(Kind::List, "compact, delete"), "compact,delete");
        assert_eq!(normalize(Kind::Double, "0.50"), "0.5");
        assert_eq!(normalize(Kind::Double, "1"), "1.0");
    }
}
