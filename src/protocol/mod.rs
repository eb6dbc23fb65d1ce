//! The Kafka protocol: request framing, the supported-API table, and dispatch to one module per
//! API.
//!
//! Owns everything between "bytes arrived on a connection" and "a response plan to write": the
//! size check on the 4-byte frame length *before* anything is buffered ([`check_frame`]), request
//! header decoding, the table of `(api, min, max)` that is the single source of truth for what is
//! served (it also generates the ApiVersions response), and the handlers. Handlers are pure with
//! respect to I/O on sockets: they take a decoded request, the log view, the groups and `now`,
//! and return an [`Outcome`] (a JoinGroup or SyncGroup may wait for the coordinator; an
//! OffsetCommit response waits for the offsets store's sync). Decoding and encoding of non-Fetch messages use the `kafka-protocol` crate; Fetch
//! responses are framed by hand in [`fetch`] so record bytes can go out with `sendfile`.
//!
//! ```text
//! request frame:  size i32 | api_key i16 | api_version i16 | correlation_id i32
//!                 | client_id (i16 length, nullable) | [tagged fields, header v2] | body
//! response frame: size i32 | correlation_id i32 | [tagged fields, header v1] | body
//! ```
//!
//! Unsupported requests: ApiVersions with an unknown version is answered in v0 format with
//! UNSUPPORTED_VERSION and the API list (KIP-511), as a broker does; any other API or version that
//! is not in the table closes the connection with a log line (what a 4.x broker's socket layer
//! does). Write APIs get a log line saying logferry is read-only.

pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_topic_partitions;
pub mod fetch;
pub mod fetch_session;
pub mod find_coordinator;
pub mod heartbeat;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, BrokerId, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::groups::{Groups, Waiter};
use crate::log::{LogView, TopicPartition};
use crate::send::WritePlan;

/// Kafka error codes used here (`clients/…/common/protocol/Errors.java`).
pub mod error_code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_REQUEST: i16 = 42;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
}

/// The APIs logferry serves, with the version ranges it implements. ApiVersions is generated
/// from this table, so a client is never told about something that is not here. Produce is
/// implemented as a refusal (see [`produce`] for why it must be advertised).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// APIs that write or administer; refused with a log line naming logferry as read-only.
const WRITE_APIS: &[ApiKey] = &[
    ApiKey::InitProducerId,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::CreatePartitions,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ElectLeaders,
];

pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == key).map(|&(_, lo, hi)| (lo, hi))
}

/// Bytes of the request header before the client id (api key, version, correlation id).
pub const REQUEST_HEADER_FIXED_BYTES: usize = 8;
/// Smallest request a client can send: fixed header plus a client id length.
pub const REQUEST_BYTES_MIN: usize = REQUEST_HEADER_FIXED_BYTES + 2;

/// Why a frame is refused before it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The declared size is below the smallest possible request.
    TooSmall(i32),
    /// The declared size is above `request_bytes_max`.
    TooLarge { size: i32, max: u32 },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            FrameError::TooSmall(n) => write!(f, "request size {n} is below the minimum {REQUEST_BYTES_MIN}"),
            FrameError::TooLarge { size, max } => write!(f, "request size {size} is above request_bytes_max {max}"),
        }
    }
}

/// [`check_frame`] for a raw SASL token (after SaslHandshake v0): any size from 0, no header.
pub fn check_token_frame(buf: &[u8], bytes_max: u32) -> Result<Option<usize>, FrameError> {
    let Some(size) = buf.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
        return Ok(None);
    };
    if size < 0 {
        return Err(FrameError::TooSmall(size));
    }
    if size as u32 > bytes_max {
        return Err(FrameError::TooLarge { size, max: bytes_max });
    }
    let total = size as usize + 4;
    Ok((buf.len() >= total).then_some(total))
}

/// Looks at the start of a connection's read buffer. `Ok(None)`: more bytes needed (not an
/// error). `Ok(Some(n))`: a whole frame of `n` bytes (size prefix included) is there. The size is
/// checked from the first 4 bytes, so an oversized request is refused before it is buffered.
pub fn check_frame(buf: &[u8], request_bytes_max: u32) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < REQUEST_BYTES_MIN as i32 {
        return Err(FrameError::TooSmall(size));
    }
    if size as u32 > request_bytes_max {
        return Err(FrameError::TooLarge { size, max: request_bytes_max });
    }
    let total = 4 + size as usize;
    Ok((buf.len() >= total).then_some(total))
}

/// How logferry decides what consumers may see (product rule 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Up to the last complete batch: single-replica topics, backups, other writers.
    LogEnd,
    /// Up to the broker's `replication-offset-checkpoint` high watermark.
    Checkpoint,
    /// Up to the co-located broker's current high watermark, learned over the upstream
    /// connection; the checkpoint bound while that is not known (never above a known-safe
    /// offset: both are high watermarks the broker has reached).
    Upstream,
}

impl Visibility {
    pub fn name(self) -> &'static str {
        match self {
            Visibility::LogEnd => "log-end",
            Visibility::Checkpoint => "checkpoint",
            Visibility::Upstream => "upstream",
        }
    }
}

/// The high watermark consumers of `p` may read up to, by visibility mode.
pub fn visible_high_watermark(p: &crate::log::Partition, visibility: Visibility) -> i64 {
    let log_start = p.log_start_offset();
    let log_end = p.log_end_offset();
    // No checkpoint entry yet (a new partition): nothing is known to be committed.
    let checkpoint = p.high_watermark_checkpoint.unwrap_or(log_start);
    match visibility {
        Visibility::LogEnd => log_end,
        Visibility::Checkpoint => checkpoint.clamp(log_start, log_end),
        Visibility::Upstream => checkpoint.max(p.upstream_high_watermark.unwrap_or(i64::MIN)).clamp(log_start, log_end),
    }
}

/// What the handlers need to know about this server.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub node_id: i32,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub cluster_id: String,
    pub visibility: Visibility,
    /// Upper bound on a Fetch's `max_wait_ms` (the client's value is used when smaller).
    pub fetch_wait_ms_max: u64,
    /// Upper bound on the bytes of one Fetch response (the client's `max_bytes` when smaller).
    pub response_bytes_max: u64,
    /// Partitions in one Fetch, ListOffsets or OffsetForLeaderEpoch request; a larger request
    /// closes the connection with a log line (Kafka has no request-level error for it).
    pub partitions_per_request_max: usize,
    /// Consumer groups are the cluster's: the group APIs are relayed to the upstream broker.
    pub groups_upstream: bool,
    /// The upstream broker's (api key, min, max) versions, once its ApiVersions answered;
    /// relayed APIs are advertised and accepted only in the versions both sides speak.
    pub upstream_api_ranges: Vec<(i16, i16, i16)>,
    /// Where the other instances of the fleet listen (used when a metadata log is followed).
    pub fleet: crate::cluster::fleet::FleetConfig,
    /// The broker's `server.properties` (`--broker-config`; empty without): static configs for
    /// DescribeConfigs.
    pub broker_properties: std::sync::Arc<std::collections::BTreeMap<String, String>>,
}

/// The versions of `key` this server accepts and advertises: its own, narrowed for a relayed
/// group API to what the upstream broker supports (when known). `None`: not served.
pub fn advertised_range(config: &ServeConfig, key: ApiKey) -> Option<(i16, i16)> {
    let (lo, hi) = supported_range(key)?;
    if !(config.groups_upstream && RELAYED_GROUP_APIS.contains(&key)) {
        return Some((lo, hi));
    }
    match config.upstream_api_ranges.iter().find(|(k, _, _)| *k == key as i16) {
        Some(&(_, ulo, uhi)) => {
            let (lo, hi) = (lo.max(ulo), hi.min(uhi));
            (lo <= hi).then_some((lo, hi))
        }
        None if config.upstream_api_ranges.is_empty() => Some((lo, hi)),
        None => None,
    }
}

/// The APIs relayed to the upstream broker with `--groups upstream`: the cluster's group
/// coordinator answers them, committed offsets live in its `__consumer_offsets`.
pub const RELAYED_GROUP_APIS: [ApiKey; 11] = [
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
];

/// The client's answer from the broker's answer to a relayed request (`body` excludes the size
/// prefix). Passed through unchanged, except FindCoordinator: a coordinator that is the
/// co-located broker (our node id) is given logferry's own address, the one logferry's
/// Metadata shows for that id, so every client stack keeps one address per node id (see
/// `docs/cluster-and-security.md` §5.4) and the group traffic comes back through logferry.
/// Another broker as coordinator is given the address of the logferry beside it when the fleet
/// shows that node (`fleet`), else answered COORDINATOR_NOT_AVAILABLE: no known logferry speaks
/// for it.
pub fn relayed_response(
    meta: &RequestMeta,
    body: Bytes,
    config: &ServeConfig,
    fleet: Option<&std::collections::BTreeMap<i32, crate::cluster::fleet::Node>>,
) -> Result<Bytes, String> {
    if meta.api_key != ApiKey::FindCoordinator {
        return Ok(body);
    }
    use kafka_protocol::messages::FindCoordinatorResponse;
    let v = meta.api_version;
    let mut b = body;
    let header_version = meta.api_key.response_header_version(v);
    let header =
        ResponseHeader::decode(&mut b, header_version).map_err(|e| format!("relayed FindCoordinator header: {e}"))?;
    let mut r = FindCoordinatorResponse::decode(&mut b, v).map_err(|e| format!("relayed FindCoordinator: {e}"))?;
    let here = |node: i32| node == config.node_id;
    let peer = |node: i32| {
        fleet.and_then(|f| f.get(&node)).map(|n| (StrBytes::from_string(n.host.clone()), i32::from(n.port)))
    };
    let other = "the group's coordinator is another broker; this logferry relays only to its co-located broker";
    let host = StrBytes::from_string(config.advertised_host.clone());
    if v >= 4 {
        for c in r.coordinators.iter_mut() {
            if c.error_code != error_code::NONE {
                continue;
            }
            if here(c.node_id.0) {
                c.host = host.clone();
                c.port = config.advertised_port;
            } else if let Some((h, p)) = peer(c.node_id.0) {
                c.host = h;
                c.port = p;
            } else {
                c.error_code = error_code::COORDINATOR_NOT_AVAILABLE;
                c.error_message = Some(StrBytes::from_static_str(other));
                c.node_id = BrokerId(-1);
                c.host = StrBytes::default();
                c.port = -1;
            }
        }
    } else if r.error_code == error_code::NONE {
        if here(r.node_id.0) {
            r.host = host;
            r.port = config.advertised_port;
        } else if let Some((h, p)) = peer(r.node_id.0) {
            r.host = h;
            r.port = p;
        } else {
            r.error_code = error_code::COORDINATOR_NOT_AVAILABLE;
            if v >= 1 {
                r.error_message = Some(StrBytes::from_static_str(other));
            }
            r.node_id = BrokerId(-1);
            r.host = StrBytes::default();
            r.port = -1;
        }
    }
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version).map_err(|e| e.to_string())?;
    r.encode(&mut out, v).map_err(|e| e.to_string())?;
    Ok(out.freeze())
}

/// Offsets that bound what a consumer sees in a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub log_start: i64,
    pub log_end: i64,
    pub high_watermark: i64,
    pub last_stable: i64,
    pub leader_epoch: i32,
}

/// Where a request came from: what the group coordinator needs to answer it later and to
/// describe the member.
#[derive(Clone, Debug)]
pub struct Origin {
    pub waiter: Waiter,
    pub client_host: String,
}

/// The handlers' view of the world: the log, the groups, and this server's configuration.
pub struct Context<'a> {
    pub view: &'a mut LogView,
    pub config: &'a ServeConfig,
    pub groups: &'a mut Groups,
    pub origin: Origin,
    /// Error codes the handlers answered with, for metrics.
    pub errors: Vec<i16>,
    /// Who asks, when the broker's authorizer is on (`None`: no authorizer, all allowed).
    pub auth: Option<Auth<'a>>,
    /// The incremental fetch session cache (KIP-227).
    pub sessions: &'a mut fetch_session::FetchSessions,
}

/// The caller and the broker's authorizer settings, for the handlers' ACL checks.
#[derive(Clone, Copy, Debug)]
pub struct Auth<'a> {
    pub config: &'a crate::auth::acl::AuthorizerConfig,
    /// `User:NAME`, `User:ANONYMOUS` before SASL or on PLAINTEXT.
    pub principal: &'a str,
    pub host: std::net::IpAddr,
}

impl Context<'_> {
    /// Records a non-zero error code for the metrics.
    pub fn note_error(&mut self, code: i16) {
        if code != error_code::NONE {
            self.errors.push(code);
        }
    }

    /// Log start, log end, high watermark and last stable offset of a partition, by the
    /// configured visibility mode. `None` for a partition logferry does not have.
    pub fn bounds(&mut self, tp: &TopicPartition) -> Result<Option<Bounds>, crate::log::LogError> {
        let visibility = self.config.visibility;
        let view = &mut *self.view;
        let Some(p) = view.partitions.get_mut(tp) else { return Ok(None) };
        let log_end = p.log_end_offset();
        let log_start = p.log_start_offset();
        let high_watermark = visible_high_watermark(p, visibility);
        let open = p.first_open_txn_offset(&mut view.cache)?;
        let last_stable = open.map_or(high_watermark, |o| o.min(high_watermark)).max(log_start);
        // In a fleet the cluster's leader epoch is the one consumers hold (KIP-320); the local
        // `leader-epoch-checkpoint` may lag it (no batch of the new epoch written yet).
        let leader_epoch = view
            .cluster
            .as_ref()
            .and_then(|c| c.image.partition(&tp.topic, tp.partition))
            .map_or(p.leader_epoch(), |s| s.leader_epoch);
        Ok(Some(Bounds { log_start, log_end, high_watermark, last_stable, leader_epoch }))
    }

    /// The fleet presentation, when a metadata log with registered brokers is followed.
    pub fn fleet(&self) -> Option<crate::cluster::fleet::Fleet<'_>> {
        crate::cluster::fleet::Fleet::of(self.view.cluster.as_ref(), self.config)
    }

    /// Whether the caller may do `op` on a resource: always without an authorizer; else Kafka's
    /// `StandardAuthorizer` decision over the metadata log's ACLs (none known: only super users
    /// and `allow.everyone.if.no.acl.found` pass).
    pub fn allowed(&self, op: crate::auth::acl::Operation, kind: crate::auth::acl::Resource, name: &str) -> bool {
        let Some(a) = &self.auth else { return true };
        let caller = crate::auth::acl::Caller { principal: a.principal, host: a.host };
        let acls = self.view.cluster.as_ref().map(|c| c.image.acl_index.candidates(&c.image.acls, kind, name));
        crate::auth::acl::authorize(acls.into_iter().flatten(), a.config, &caller, op, kind, name)
    }

    /// The `AuthorizedOperations` bit field of a resource: bit `op` for each of `ops` the caller
    /// may do (Kafka's `AuthHelper.authorizedOperations`; without an authorizer, all of them).
    pub fn authorized_operations(
        &self,
        kind: crate::auth::acl::Resource,
        name: &str,
        ops: &[crate::auth::acl::Operation],
    ) -> i32 {
        ops.iter().filter(|&&op| self.allowed(op, kind, name)).fold(0, |bits, &op| bits | (1 << (op as i32)))
    }

    /// Whether the caller may `op` the topic `name`.
    pub fn topic_allowed(&self, op: crate::auth::acl::Operation, name: &str) -> bool {
        self.allowed(op, crate::auth::acl::Resource::Topic, name)
    }

    /// GROUP_AUTHORIZATION_FAILED when the caller may not `op` the group, noted for the metrics.
    pub fn group_denied(&mut self, op: crate::auth::acl::Operation, group: &str) -> Option<i16> {
        if self.allowed(op, crate::auth::acl::Resource::Group, group) {
            return None;
        }
        self.note_error(error_code::GROUP_AUTHORIZATION_FAILED);
        Some(error_code::GROUP_AUTHORIZATION_FAILED)
    }

    /// Whether this instance coordinates `group`: always without a fleet; in a fleet, when it is
    /// the node [`crate::cluster::fleet::Fleet::group_coordinator`] names.
    pub fn coordinates(&self, group: &str) -> bool {
        self.fleet().is_none_or(|f| f.group_coordinator(group) == Some(self.config.node_id))
    }

    /// The error for a partition this instance holds no replica of: NOT_LEADER_OR_FOLLOWER when
    /// the cluster has it (another instance leads it), else UNKNOWN_TOPIC_OR_PARTITION.
    pub fn absent_partition_code(&self, tp: &TopicPartition) -> i16 {
        match &self.view.cluster {
            Some(c) if c.image.partition(&tp.topic, tp.partition).is_some() => error_code::NOT_LEADER_OR_FOLLOWER,
            _ => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        }
    }
}

/// What to do after a request.
pub enum Outcome {
    /// Write this whole response frame.
    Respond(WritePlan),
    /// A Fetch that must wait for data (long poll) until `deadline`.
    Park(Box<fetch::Parked>),
    /// Close the connection; the string says why, for the log line.
    Close(String),
    /// A JoinGroup or SyncGroup waiting for other members: the coordinator completes it later
    /// (see [`encode_completion`]).
    AwaitGroup,
    /// A response that may only be written once the offsets store has synced this turn's
    /// commits (OffsetCommit, and OffsetFetch while commits are unsynced).
    RespondAfterSync(WritePlan),
    /// Send this request frame (size prefix excluded) to the co-located broker unchanged and
    /// answer with its response (`--groups upstream`; see [`relayed_response`]).
    Relay(Bytes),
}

/// Encodes the coordinator's late answer to a JoinGroup or SyncGroup.
pub fn encode_completion(meta: &RequestMeta, completion: crate::groups::coordinator::Completion) -> Outcome {
    use crate::groups::coordinator::Completion;
    match (meta.api_key, completion) {
        (ApiKey::JoinGroup, Completion::Join(r)) => respond(meta, &join_group::response(meta.api_version, r)),
        (ApiKey::SyncGroup, Completion::Sync(r)) => respond(meta, &sync_group::response(meta.api_version, r)),
        (key, _) => Outcome::Close(format!("internal: a group completion does not match the {key:?} in flight")),
    }
}

/// The header fields a response and the log lines need.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// Encodes a whole response frame (size prefix, header of the right version, body).
pub fn encode_response<R: Encodable>(meta: &RequestMeta, body: &R) -> Result<Bytes, String> {
    let header_version =
        if meta.api_key == ApiKey::ApiVersions { 0 } else { meta.api_key.response_header_version(meta.api_version) };
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(meta.correlation_id)
        .encode(&mut buf, header_version)
        .map_err(|e| format!("encoding response header: {e}"))?;
    body.encode(&mut buf, meta.api_version)
        .map_err(|e| format!("encoding {:?} v{} response: {e}", meta.api_key, meta.api_version))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// A response as a one-chunk plan.
pub fn respond<R: Encodable>(meta: &RequestMeta, body: &R) -> Outcome {
    match encode_response(meta, body) {
        Ok(b) => {
            let mut plan = WritePlan::new();
            plan.push_mem(b);
            Outcome::Respond(plan)
        }
        Err(e) => Outcome::Close(e),
    }
}

fn decode_body<T: Decodable>(body: &mut Bytes, meta: &RequestMeta) -> Result<T, String> {
    T::decode(body, meta.api_version)
        .map_err(|e| format!("malformed {:?} v{} request: {e}", meta.api_key, meta.api_version))
}

/// Splits a request frame (size prefix excluded) into its header and body, for callers that
/// look at a request before the handlers (the SASL session). Err: not a Kafka request.
pub fn split_request(frame: Bytes) -> Result<(RequestMeta, Bytes), String> {
    if frame.len() < REQUEST_BYTES_MIN {
        return Err(format!("request of {} bytes is shorter than a header", frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| format!("unknown API key {raw_key}"))?;
    let Some((lo, hi)) = supported_range(api_key) else {
        return Ok((RequestMeta { api_key, api_version: version, correlation_id: 0, client_id: None }, Bytes::new()));
    };
    if version < lo || version > hi {
        return Err(format!("{api_key:?} v{version} is outside the supported range {lo}-{hi}"));
    }
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(version))
        .map_err(|e| format!("malformed request header: {e}"))?;
    let meta = RequestMeta {
        api_key,
        api_version: version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.as_ref().map(|s| s.to_string()),
    };
    Ok((meta, buf))
}

/// Decodes a request body of `meta`'s API and version.
pub fn decode_request<T: Decodable>(mut body: Bytes, meta: &RequestMeta) -> Result<T, String> {
    decode_body(&mut body, meta)
}

/// Handles one whole request frame (`frame` excludes the 4-byte size prefix).
pub fn handle_request(frame: Bytes, ctx: &mut Context<'_>, now: Instant) -> (Option<RequestMeta>, Outcome) {
    if frame.len() < REQUEST_BYTES_MIN {
        return (None, Outcome::Close(format!("request of {} bytes is shorter than a header", frame.len())));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api_key) = ApiKey::try_from(raw_key) else {
        return (None, Outcome::Close(format!("unknown API key {raw_key}")));
    };
    let Some((lo, hi)) = advertised_range(ctx.config, api_key) else {
        let what = if WRITE_APIS.contains(&api_key) {
            format!("{api_key:?} refused: logferry is a read-only replica; send writes to the broker")
        } else {
            format!("{api_key:?} v{version} is not supported by logferry")
        };
        return (None, Outcome::Close(what));
    };
    if version < lo || version > hi {
        if api_key == ApiKey::ApiVersions {
            let meta = RequestMeta { api_key, api_version: 0, correlation_id, client_id: None };
            return (Some(meta.clone()), api_versions::unsupported_version(&meta, ctx.config));
        }
        return (None, Outcome::Close(format!("{api_key:?} v{version} is outside the supported range {lo}-{hi}")));
    }
    let original = frame.clone();
    let mut buf = frame;
    let header_version = api_key.request_header_version(version);
    let header = match RequestHeader::decode(&mut buf, header_version) {
        Ok(h) => h,
        Err(e) => return (None, Outcome::Close(format!("malformed request header: {e}"))),
    };
    let meta = RequestMeta {
        api_key,
        api_version: version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.as_ref().map(|s| s.to_string()),
    };
    if ctx.config.groups_upstream && RELAYED_GROUP_APIS.contains(&api_key) {
        // The broker sees logferry's own connection: the caller's ACLs are checked here first.
        if relay_allowed(&meta, buf.clone(), ctx) {
            return (Some(meta), Outcome::Relay(original));
        }
    }
    let outcome = match api_key {
        ApiKey::ApiVersions => match decode_body(&mut buf, &meta) {
            Ok(req) => api_versions::handle(&meta, &req, ctx.config),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::Metadata => match decode_body(&mut buf, &meta) {
            Ok(req) => metadata::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::ListOffsets => match decode_body(&mut buf, &meta) {
            Ok(req) => list_offsets::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::OffsetForLeaderEpoch => match decode_body(&mut buf, &meta) {
            Ok(req) => offset_for_leader_epoch::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::Produce => match decode_body(&mut buf, &meta) {
            Ok(req) => produce::handle(&meta, &req),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::Fetch => match decode_body(&mut buf, &meta) {
            Ok(req) => fetch::handle(meta.clone(), req, ctx, now),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::FindCoordinator => match decode_body(&mut buf, &meta) {
            Ok(req) => find_coordinator::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::JoinGroup => match decode_body(&mut buf, &meta) {
            Ok(req) => join_group::handle(&meta, req, ctx, now),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::SyncGroup => match decode_body(&mut buf, &meta) {
            Ok(req) => sync_group::handle(&meta, req, ctx, now),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::Heartbeat => match decode_body(&mut buf, &meta) {
            Ok(req) => heartbeat::handle(&meta, &req, ctx, now),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::LeaveGroup => match decode_body(&mut buf, &meta) {
            Ok(req) => leave_group::handle(&meta, &req, ctx, now),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::OffsetCommit => match decode_body(&mut buf, &meta) {
            Ok(req) => offset_commit::handle(&meta, &req, ctx, now),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::OffsetFetch => match decode_body(&mut buf, &meta) {
            Ok(req) => offset_fetch::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::ListGroups => match decode_body(&mut buf, &meta) {
            Ok(req) => list_groups::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::DescribeGroups => match decode_body(&mut buf, &meta) {
            Ok(req) => describe_groups::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::DescribeConfigs => match decode_body(&mut buf, &meta) {
            Ok(req) => describe_configs::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::DescribeCluster => match decode_body(&mut buf, &meta) {
            Ok(req) => describe_cluster::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::DescribeTopicPartitions => match decode_body(&mut buf, &meta) {
            Ok(req) => describe_topic_partitions::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::DescribeLogDirs => match decode_body(&mut buf, &meta) {
            Ok(req) => describe_log_dirs::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::ConsumerGroupHeartbeat => match decode_body(&mut buf, &meta) {
            Ok(req) => consumer_group_heartbeat::handle(&meta, &req, ctx, now),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::ConsumerGroupDescribe => match decode_body(&mut buf, &meta) {
            Ok(req) => consumer_group_describe::handle(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        // Reached only outside a SASL exchange (the session answers those first): a PLAINTEXT
        // or SSL listener, or a SASL connection already authenticated without re-authentication.
        ApiKey::SaslHandshake => match decode_body(&mut buf, &meta) {
            Ok(req) => sasl_handshake::out_of_place(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        ApiKey::SaslAuthenticate => match decode_body(&mut buf, &meta) {
            Ok(req) => sasl_authenticate::out_of_place(&meta, &req, ctx),
            Err(e) => Outcome::Close(e),
        },
        other => Outcome::Close(format!("{other:?} has no handler")),
    };
    (Some(meta), outcome)
}

/// With `--groups upstream` and an authorizer: whether the caller may see every group the
/// request names (the broker authorizes logferry's own connection, not the caller, so the check
/// is made here). A request that fails it is answered by the local handler, which refuses the
/// denied groups with GROUP_AUTHORIZATION_FAILED. ListGroups is always relayed; its answer is
/// filtered for the caller by the server ([`list_groups::filter_relayed`]).
fn relay_allowed(meta: &RequestMeta, mut body: Bytes, ctx: &Context<'_>) -> bool {
    use crate::auth::acl::{Operation, Resource};
    use kafka_protocol::messages::*;
    if ctx.auth.is_none() {
        return true;
    }
    let v = meta.api_version;
    let (op, groups): (Operation, Vec<String>) = match meta.api_key {
        ApiKey::JoinGroup => match decode_body::<JoinGroupRequest>(&mut body, meta) {
            Ok(r) => (Operation::Read, vec![r.group_id.to_string()]),
            Err(_) => return false,
        },
        ApiKey::SyncGroup => match decode_body::<SyncGroupRequest>(&mut body, meta) {
            Ok(r) => (Operation::Read, vec![r.group_id.to_string()]),
            Err(_) => return false,
        },
        ApiKey::Heartbeat => match decode_body::<HeartbeatRequest>(&mut body, meta) {
            Ok(r) => (Operation::Read, vec![r.group_id.to_string()]),
            Err(_) => return false,
        },
        ApiKey::LeaveGroup => match decode_body::<LeaveGroupRequest>(&mut body, meta) {
            Ok(r) => (Operation::Read, vec![r.group_id.to_string()]),
            Err(_) => return false,
        },
        ApiKey::OffsetCommit => match decode_body::<OffsetCommitRequest>(&mut body, meta) {
            Ok(r) => {
                let topics_ok = r.topics.iter().all(|t| ctx.topic_allowed(Operation::Read, &t.name));
                if !topics_ok {
                    return false;
                }
                (Operation::Read, vec![r.group_id.to_string()])
            }
            Err(_) => return false,
        },
        ApiKey::OffsetFetch => match decode_body::<OffsetFetchRequest>(&mut body, meta) {
            Ok(r) if v >= 8 => (Operation::Describe, r.groups.iter().map(|g| g.group_id.to_string()).collect()),
            Ok(r) => (Operation::Describe, vec![r.group_id.to_string()]),
            Err(_) => return false,
        },
        ApiKey::FindCoordinator => match decode_body::<FindCoordinatorRequest>(&mut body, meta) {
            // Transaction coordinators are not logferry's business; key type 0 is a group.
            Ok(r) if r.key_type != 0 => return true,
            Ok(r) if v >= 4 => (Operation::Describe, r.coordinator_keys.iter().map(|k| k.to_string()).collect()),
            Ok(r) => (Operation::Describe, vec![r.key.to_string()]),
            Err(_) => return false,
        },
        ApiKey::DescribeGroups => match decode_body::<DescribeGroupsRequest>(&mut body, meta) {
            Ok(r) => (Operation::Describe, r.groups.iter().map(|g| g.to_string()).collect()),
            Err(_) => return false,
        },
        ApiKey::ConsumerGroupHeartbeat => match decode_body::<ConsumerGroupHeartbeatRequest>(&mut body, meta) {
            Ok(r) => (Operation::Read, vec![r.group_id.to_string()]),
            Err(_) => return false,
        },
        ApiKey::ConsumerGroupDescribe => match decode_body::<ConsumerGroupDescribeRequest>(&mut body, meta) {
            Ok(r) => (Operation::Describe, r.group_ids.iter().map(|g| g.to_string()).collect()),
            Err(_) => return false,
        },
        _ => return true,
    };
    groups.iter().all(|g| ctx.allowed(op, Resource::Group, g))
}

/// Checks a consumer's `current_leader_epoch` against ours (KIP-320): older is fenced, newer is
/// unknown to us; −1 skips the check.
pub fn epoch_error(current_leader_epoch: i32, ours: i32) -> Option<i16> {
    if current_leader_epoch < 0 || ours < 0 || current_leader_epoch == ours {
        None
    } else if current_leader_epoch < ours {
        Some(error_code::FENCED_LEADER_EPOCH)
    } else {
        Some(error_code::UNKNOWN_LEADER_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_find_coordinator_points_at_logferry_for_the_colocated_broker() {
        use kafka_protocol::messages::find_coordinator_response::Coordinator;
        use kafka_protocol::messages::FindCoordinatorResponse;
        let config = ServeConfig {
            node_id: 1,
            advertised_host: "ferry.local".into(),
            advertised_port: 9192,
            cluster_id: "c".into(),
            visibility: Visibility::Upstream,
            fetch_wait_ms_max: 0,
            response_bytes_max: 1 << 20,
            partitions_per_request_max: 10,
            groups_upstream: true,
            upstream_api_ranges: vec![(ApiKey::JoinGroup as i16, 2, 9), (ApiKey::OffsetCommit as i16, 10, 12)],
            broker_properties: Default::default(),
            fleet: Default::default(),
        };
        // Relayed APIs in the versions both sides speak; an API the broker lacks is not offered.
        assert_eq!(advertised_range(&config, ApiKey::JoinGroup), Some((2, 9)));
        assert_eq!(advertised_range(&config, ApiKey::OffsetCommit), None, "no common version");
        assert_eq!(advertised_range(&config, ApiKey::Heartbeat), None, "not offered by this broker");
        assert_eq!(advertised_range(&config, ApiKey::Fetch), supported_range(ApiKey::Fetch), "served here");
        let broker_answer = |v: i16, r: &FindCoordinatorResponse| {
            let mut b = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(42)
                .encode(&mut b, ApiKey::FindCoordinator.response_header_version(v))
                .unwrap();
            r.encode(&mut b, v).unwrap();
            b.freeze()
        };
        let decode = |v: i16, mut b: Bytes| {
            let h = ResponseHeader::decode(&mut b, ApiKey::FindCoordinator.response_header_version(v)).unwrap();
            assert_eq!(h.correlation_id, 42);
            FindCoordinatorResponse::decode(&mut b, v).unwrap()
        };
        let meta =
            |v| RequestMeta { api_key: ApiKey::FindCoordinator, api_version: v, correlation_id: 42, client_id: None };
        // v4+: per key; the co-located node 1 gets logferry's address, node 2 is not ours.
        let r = FindCoordinatorResponse::default().with_coordinators(vec![
            Coordinator::default()
                .with_key(StrBytes::from_static_str("g1"))
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("broker"))
                .with_port(9092),
            Coordinator::default()
                .with_key(StrBytes::from_static_str("g2"))
                .with_node_id(BrokerId(2))
                .with_host(StrBytes::from_static_str("other"))
                .with_port(9092),
        ]);
        let out = decode(4, relayed_response(&meta(4), broker_answer(4, &r), &config, None).unwrap());
        assert_eq!(
            (out.coordinators[0].node_id.0, out.coordinators[0].host.as_str(), out.coordinators[0].port),
            (1, "ferry.local", 9192)
        );
        assert_eq!(out.coordinators[1].error_code, error_code::COORDINATOR_NOT_AVAILABLE);
        // In a fleet that shows node 2, its coordinator is the logferry beside it.
        let nodes = std::collections::BTreeMap::from([(
            2,
            crate::cluster::fleet::Node { id: 2, host: "ferry2".into(), port: 9193, rack: None },
        )]);
        let out = decode(4, relayed_response(&meta(4), broker_answer(4, &r), &config, Some(&nodes)).unwrap());
        assert_eq!(
            (out.coordinators[1].error_code, out.coordinators[1].host.as_str(), out.coordinators[1].port),
            (error_code::NONE, "ferry2", 9193)
        );
        // v0–3: one coordinator.
        for v in 0..4 {
            let r = FindCoordinatorResponse::default()
                .with_node_id(BrokerId(1))
                .with_host(StrBytes::from_static_str("broker"))
                .with_port(9092);
            let out = decode(v, relayed_response(&meta(v), broker_answer(v, &r), &config, None).unwrap());
            assert_eq!((out.node_id.0, out.host.as_str(), out.port), (1, "ferry.local", 9192));
        }
        // Other APIs pass through byte for byte.
        let body = Bytes::from_static(b"\0\0\0\x2aanything");
        let join = RequestMeta { api_key: ApiKey::JoinGroup, api_version: 9, correlation_id: 42, client_id: None };
        assert_eq!(relayed_response(&join, body.clone(), &config, None).unwrap(), body);
    }

    #[test]
    fn frame_size_is_checked_before_buffering() {
        assert_eq!(check_frame(&[0, 0], 100), Ok(None));
        assert_eq!(check_frame(&[0, 0, 0, 3, 1], 100), Err(FrameError::TooSmall(3)));
        assert_eq!(check_frame(&[0x80, 0, 0, 0], 100), Err(FrameError::TooSmall(i32::MIN)));
        assert_eq!(
            check_frame(&[0x7f, 0xff, 0xff, 0xff], 1 << 20),
            Err(FrameError::TooLarge { size: i32::MAX, max: 1 << 20 })
        );
        let mut f = vec![0, 0, 0, 10];
        f.extend_from_slice(&[0; 9]);
        assert_eq!(check_frame(&f, 100), Ok(None));
        f.push(0);
        assert_eq!(check_frame(&f, 100), Ok(Some(14)));
        f.extend_from_slice(&[1, 2, 3]);
        assert_eq!(check_frame(&f, 100), Ok(Some(14)));
    }

    #[test]
    fn epoch_rules() {
        assert_eq!(epoch_error(-1, 5), None);
        assert_eq!(epoch_error(5, 5), None);
        assert_eq!(epoch_error(4, 5), Some(error_code::FENCED_LEADER_EPOCH));
        assert_eq!(epoch_error(6, 5), Some(error_code::UNKNOWN_LEADER_EPOCH));
        assert_eq!(epoch_error(3, -1), None);
    }

    #[test]
    fn table_is_within_what_the_codec_knows() {
        for &(key, lo, hi) in SUPPORTED {
            let v = key.valid_versions();
            assert!(v.min <= lo && hi <= v.max, "{key:?}");
        }
    }
}
