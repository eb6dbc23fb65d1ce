//! The upstream watcher: logferry's client connection to the co-located broker, as a sans-io
//! state machine (response bytes and `now` in, request bytes and decisions out; the loop owns
//! the socket).
//!
//! Owns what logferry learns from the broker in real time: each watched partition's high
//! watermark and last stable offset, the broker's API version ranges (for relayed group APIs)
//! and its cluster id (checked against the log dir's `meta.properties`).
//!
//! Mechanism (`docs/cluster-and-security.md` §4.2, §10): one long-polling consumer Fetch v12
//! over every partition logferry serves, each at `FetchOffset` = the last high watermark
//! learned, `MinBytes` 1, `MaxWaitMs` [`WATCH_WAIT_MS`], `MaxBytes` and `PartitionMaxBytes` 1,
//! inside an incremental fetch session (KIP-227). The broker parks it and answers as soon as
//! some high watermark passes its fetch offset, listing only the partitions that changed, so
//! an idle cluster costs one small request per `WATCH_WAIT_MS` and a busy one a request per
//! high-watermark move, batched over all partitions. Alternatives measured against it: polling
//! ListOffsets (a round trip per poll interval and leader-only, so no better than the poll
//! period) and reading the checkpoint file (up to 5 s late). A v11+ consumer Fetch is served by
//! a follower too, up to its own high watermark, so the same request works for partitions the
//! co-located broker follows. Records that come back with the answer (at most one batch) are
//! ignored.
//!
//! ```text
//!   Down ──connect──▶ Connecting ──writable──▶ ApiVersions ──▶ Metadata (cluster id) ──▶ Watching
//!    ▲                                                                                   │
//!    └──────────── error, close, or a Fetch unanswered past WATCH_WAIT_MS + slack ────────┘
//!                  (reconnect after a backoff that doubles from 100 ms to 5 s)
//! ```
//!
//! With a metadata log followed (the fleet), the watcher also learns the metadata quorum's high
//! watermark: between watch Fetches, at most every [`QUORUM_POLL`], a DescribeQuorum v0 for
//! `__cluster_metadata-0` (the broker forwards it to the active controller; it needs CLUSTER
//! DESCRIBE, `docs/cluster-and-security.md` §1.5), and the watch Fetch is held for at most
//! [`QUORUM_WATCH_WAIT_MS`] so the poll keeps its pace on an idle cluster. The reader of the
//! metadata log then applies only committed records. A broker that refuses DescribeQuorum
//! (an error code) is not asked again on that connection.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use crate::log::TopicPartition;

/// How long the broker may hold the watch Fetch.
pub const WATCH_WAIT_MS: i32 = 500;
/// The watch Fetch's wait while the metadata quorum's high watermark is followed too.
pub const QUORUM_WATCH_WAIT_MS: i32 = 200;
/// Least time between two DescribeQuorum requests.
pub const QUORUM_POLL: Duration = Duration::from_millis(100);
const DESCRIBE_QUORUM_VERSION: i16 = 0;
/// A request unanswered this long past its own wait means the broker is slow or stuck.
const RESPONSE_SLACK: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A partition the broker answered with an error is left out of the watch this long.
const BENCH: Duration = Duration::from_secs(1);
const FETCH_VERSION: i16 = 12;
const METADATA_VERSION: i16 = 12;
const API_VERSIONS_VERSION: i16 = 3;

/// What the broker said of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub high_watermark: i64,
    pub last_stable: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Down { retry_at: Instant },
    Connecting,
    ApiVersions,
    Metadata,
    Watching,
}

/// Why the watcher dropped the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The broker belongs to another cluster than the log dir: never use it.
    ClusterIdMismatch { log_dir: String, broker: String },
    /// Bytes that do not decode, or an answer to nothing asked.
    Protocol(String),
    /// A request-level error code.
    Broker(i16),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClusterIdMismatch { log_dir, broker } => {
                write!(f, "the upstream broker is in cluster {broker}, the log dir in cluster {log_dir}")
            }
            Self::Protocol(s) => write!(f, "protocol: {s}"),
            Self::Broker(code) => write!(f, "error code {code}"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Pending {
    ApiVersions,
    Metadata,
    Fetch,
    Quorum,
}

pub struct Watcher {
    pub phase: Phase,
    cluster_id: Option<String>,
    correlation: i32,
    in_flight: Option<(i32, Pending, Instant)>,
    backoff: Duration,
    /// Fetch session: id (0 = none), next epoch, and the fetch offset last sent per partition.
    session_id: i32,
    session_epoch: i32,
    sent: HashMap<TopicPartition, i64>,
    benched: HashMap<TopicPartition, Instant>,
    pub marks: HashMap<TopicPartition, Mark>,
    /// The broker's version range per API key, from ApiVersions.
    pub api_ranges: HashMap<i16, (i16, i16)>,
    /// Bumped whenever `api_ranges` is learned again (each connection's handshake).
    pub api_ranges_epoch: u64,
    /// Set once: a broker of another cluster is never used.
    pub refused: Option<UpstreamError>,
    pub reconnects: u64,
    pub responses: u64,
    /// Follow the metadata quorum's high watermark (set when a metadata log is followed).
    pub track_quorum: bool,
    /// The metadata quorum's high watermark, from the last DescribeQuorum answer on this
    /// connection (`None` while not known).
    pub metadata_high_watermark: Option<i64>,
    quorum_asked_at: Option<Instant>,
    quorum_refused: bool,
}

/// A partition to watch: where to start when nothing was learned yet (a known-safe offset).
pub struct Watched {
    pub tp: TopicPartition,
    pub start: i64,
}

pub(crate) fn frame<R: Request + Encodable>(req: &R, version: i16, correlation: i32) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("logferry-upstream")));
    let mut b = BytesMut::new();
    // Encoding our own well-formed values into a growable buffer cannot fail.
    let _ = header.encode(&mut b, R::header_version(version));
    let _ = req.encode(&mut b, version);
    let mut out = (b.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&b);
    out
}

/// Decodes a response frame (without its size prefix) to the request `corr` asked.
pub(crate) fn decode<Resp: HeaderVersion + Decodable>(
    mut body: Bytes,
    version: i16,
    corr: i32,
    what: &str,
) -> Result<Resp, UpstreamError> {
    let h = ResponseHeader::decode(&mut body, Resp::header_version(version))
        .map_err(|e| UpstreamError::Protocol(format!("{what} response header: {e}")))?;
    check_corr(h.correlation_id, corr)?;
    Resp::decode(&mut body, version).map_err(|e| UpstreamError::Protocol(format!("{what}: {e}")))
}

impl Watcher {
    pub fn new(cluster_id: Option<String>, now: Instant) -> Self {
        Self {
            phase: Phase::Down { retry_at: now },
            cluster_id,
            correlation: 0,
            in_flight: None,
            backoff: BACKOFF_MIN,
            session_id: 0,
            session_epoch: 0,
            sent: HashMap::new(),
            benched: HashMap::new(),
            marks: HashMap::new(),
            api_ranges: HashMap::new(),
            api_ranges_epoch: 0,
            refused: None,
            reconnects: 0,
            responses: 0,
            track_quorum: false,
            metadata_high_watermark: None,
            quorum_asked_at: None,
            quorum_refused: false,
        }
    }

    fn watch_wait_ms(&self) -> i32 {
        if self.track_quorum && !self.quorum_refused {
            QUORUM_WATCH_WAIT_MS
        } else {
            WATCH_WAIT_MS
        }
    }

    /// How long the broker may hold the next watch Fetch.
    pub fn hold(&self) -> Duration {
        Duration::from_millis(self.watch_wait_ms() as u64)
    }

    /// True while the watch is running: marks are being kept up to date.
    pub fn live(&self) -> bool {
        self.phase == Phase::Watching
    }

    /// When the loop should call [`connect_due`](Self::connect_due) or time the request out.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Down { retry_at } if self.refused.is_none() => Some(retry_at),
            Phase::Down { .. } => None,
            _ => self
                .in_flight
                .map(|(_, _, at)| at + Duration::from_millis(self.watch_wait_ms() as u64) + RESPONSE_SLACK),
        }
    }

    /// True when it is time to (re)connect.
    pub fn connect_due(&self, now: Instant) -> bool {
        matches!(self.phase, Phase::Down { retry_at } if now >= retry_at && self.refused.is_none())
    }

    pub fn on_connecting(&mut self) {
        self.phase = Phase::Connecting;
    }

    /// The connection is established: the handshake starts.
    pub fn on_connected(&mut self) {
        self.phase = Phase::ApiVersions;
        self.in_flight = None;
    }

    /// The connection is gone (or must go): back off and forget the fetch session.
    pub fn on_disconnected(&mut self, now: Instant) {
        if self.phase == Phase::Watching {
            self.backoff = BACKOFF_MIN;
        }
        self.phase = Phase::Down { retry_at: now + self.backoff };
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.in_flight = None;
        self.session_id = 0;
        self.session_epoch = 0;
        self.sent.clear();
        self.reconnects += 1;
        self.metadata_high_watermark = None;
        self.quorum_asked_at = None;
        self.quorum_refused = false;
    }

    /// True when a request may be sent now (connected, handshaking or watching, none in flight).
    pub fn request_due(&self) -> bool {
        self.in_flight.is_none() && matches!(self.phase, Phase::ApiVersions | Phase::Metadata | Phase::Watching)
    }

    /// True when the request in flight has waited past its deadline (a slow or stuck broker).
    pub fn timed_out(&self, now: Instant) -> bool {
        self.in_flight
            .is_some_and(|(_, _, at)| now >= at + Duration::from_millis(self.watch_wait_ms() as u64) + RESPONSE_SLACK)
    }

    fn next_correlation(&mut self) -> i32 {
        self.correlation = self.correlation.wrapping_add(1).max(1);
        self.correlation
    }

    /// The next request to write, if one is due: the handshake, or the watch Fetch over
    /// `watched` (called with every partition served; unchanged ones cost nothing in a session).
    pub fn next_request(&mut self, watched: &[Watched], now: Instant) -> Option<Vec<u8>> {
        if self.in_flight.is_some() {
            return None;
        }
        let corr = self.next_correlation();
        let (bytes, pending) = match self.phase {
            Phase::ApiVersions => (
                frame(
                    &ApiVersionsRequest::default()
                        .with_client_software_name(StrBytes::from_static_str("logferry"))
                        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION"))),
                    API_VERSIONS_VERSION,
                    corr,
                ),
                Pending::ApiVersions,
            ),
            Phase::Metadata => (
                frame(&MetadataRequest::default().with_topics(Some(vec![])), METADATA_VERSION, corr),
                Pending::Metadata,
            ),
            Phase::Watching if self.quorum_due(now) => {
                self.quorum_asked_at = Some(now);
                let req = DescribeQuorumRequest::default().with_topics(vec![
                    kafka_protocol::messages::describe_quorum_request::TopicData::default()
                        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                        .with_partitions(vec![
                            kafka_protocol::messages::describe_quorum_request::PartitionData::default()
                                .with_partition_index(0),
                        ]),
                ]);
                (frame(&req, DESCRIBE_QUORUM_VERSION, corr), Pending::Quorum)
            }
            Phase::Watching => (self.watch_fetch(watched, now, corr), Pending::Fetch),
            _ => return None,
        };
        self.in_flight = Some((corr, pending, now));
        Some(bytes)
    }

    fn quorum_due(&self, now: Instant) -> bool {
        self.track_quorum && !self.quorum_refused && self.quorum_asked_at.is_none_or(|at| now >= at + QUORUM_POLL)
    }

    fn watch_fetch(&mut self, watched: &[Watched], now: Instant, corr: i32) -> Vec<u8> {
        self.benched.retain(|_, until| *until > now);
        let full = self.session_id == 0;
        let mut want: HashMap<&TopicPartition, i64> = HashMap::with_capacity(watched.len());
        for w in watched {
            if self.benched.contains_key(&w.tp) {
                continue;
            }
            let offset = self.marks.get(&w.tp).map_or(w.start, |m| m.high_watermark.max(w.start));
            want.insert(&w.tp, offset);
        }
        let mut topics: Vec<(String, Vec<(i32, i64)>)> = Vec::new();
        let mut add = |tp: &TopicPartition, offset: i64| match topics.iter_mut().find(|(t, _)| *t == tp.topic) {
            Some((_, ps)) => ps.push((tp.partition, offset)),
            None => topics.push((tp.topic.clone(), vec![(tp.partition, offset)])),
        };
        for (tp, &offset) in &want {
            if full || self.sent.get(*tp) != Some(&offset) {
                add(tp, offset);
            }
        }
        let mut forgotten: Vec<(String, Vec<i32>)> = Vec::new();
        if !full {
            let gone: Vec<TopicPartition> = self.sent.keys().filter(|tp| !want.contains_key(tp)).cloned().collect();
            for tp in gone {
                self.sent.remove(&tp);
                match forgotten.iter_mut().find(|(t, _)| *t == tp.topic) {
                    Some((_, ps)) => ps.push(tp.partition),
                    None => forgotten.push((tp.topic.clone(), vec![tp.partition])),
                }
            }
        } else {
            self.sent.clear();
        }
        for (tp, offset) in want {
            self.sent.insert(tp.clone(), offset);
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.watch_wait_ms())
            .with_min_bytes(1)
            .with_max_bytes(1)
            .with_isolation_level(0)
            .with_session_id(self.session_id)
            .with_session_epoch(self.session_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        FetchTopic::default().with_topic(TopicName(StrBytes::from_string(t))).with_partitions(
                            ps.into_iter()
                                .map(|(p, o)| {
                                    FetchPartition::default()
                                        .with_partition(p)
                                        .with_fetch_offset(o)
                                        .with_partition_max_bytes(1)
                                        .with_current_leader_epoch(-1)
                                        .with_log_start_offset(-1)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            )
            .with_forgotten_topics_data(
                forgotten
                    .into_iter()
                    .map(|(t, ps)| {
                        ForgottenTopic::default().with_topic(TopicName(StrBytes::from_string(t))).with_partitions(ps)
                    })
                    .collect(),
            )
            .with_rack_id(StrBytes::from_static_str(""));
        frame(&req, FETCH_VERSION, corr)
    }

    /// One response frame (size prefix removed). Returns the partitions whose high watermark
    /// or last stable offset moved. An error means: close the connection (then
    /// [`on_disconnected`](Self::on_disconnected)).
    pub fn on_response(&mut self, body: Bytes, now: Instant) -> Result<Vec<TopicPartition>, UpstreamError> {
        let Some((corr, pending, _)) = self.in_flight.take() else {
            return Err(UpstreamError::Protocol("a response with no request in flight".into()));
        };
        self.responses += 1;
        match pending {
            Pending::ApiVersions => {
                let r: ApiVersionsResponse = decode(body, API_VERSIONS_VERSION, corr, "ApiVersions")?;
                if r.error_code != 0 {
                    return Err(UpstreamError::Broker(r.error_code));
                }
                self.api_ranges = r.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
                self.api_ranges_epoch += 1;
                self.phase = Phase::Metadata;
                Ok(Vec::new())
            }
            Pending::Metadata => {
                let r: MetadataResponse = decode(body, METADATA_VERSION, corr, "Metadata")?;
                let theirs = r.cluster_id.as_ref().map(|s| s.to_string());
                if let (Some(ours), Some(theirs)) = (&self.cluster_id, &theirs) {
                    if ours != theirs {
                        let e = UpstreamError::ClusterIdMismatch { log_dir: ours.clone(), broker: theirs.clone() };
                        self.refused = Some(e.clone());
                        return Err(e);
                    }
                }
                self.phase = Phase::Watching;
                self.backoff = BACKOFF_MIN;
                Ok(Vec::new())
            }
            Pending::Quorum => {
                let r: DescribeQuorumResponse = decode(body, DESCRIBE_QUORUM_VERSION, corr, "DescribeQuorum")?;
                let p = r.topics.first().and_then(|t| t.partitions.first());
                match (r.error_code, p) {
                    (0, Some(p)) if p.error_code == 0 && p.high_watermark >= 0 => {
                        self.metadata_high_watermark = Some(p.high_watermark);
                    }
                    (code, p) => {
                        let code = if code != 0 { code } else { p.map_or(-1, |p| p.error_code) };
                        log::warn!(
                            "upstream: DescribeQuorum answered error {code}; the metadata log is followed without its \
                             high watermark on this connection"
                        );
                        self.quorum_refused = true;
                        self.metadata_high_watermark = None;
                    }
                }
                Ok(Vec::new())
            }
            Pending::Fetch => {
                let r: FetchResponse = decode(body, FETCH_VERSION, corr, "Fetch")?;
                match r.error_code {
                    0 => {}
                    // FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH: start a new session.
                    70 | 71 => {
                        self.session_id = 0;
                        self.session_epoch = 0;
                        return Ok(Vec::new());
                    }
                    code => return Err(UpstreamError::Broker(code)),
                }
                if self.session_id == 0 || r.session_id != self.session_id {
                    // A new session (or none: the broker's cache was full; full fetches then).
                    self.session_id = r.session_id;
                    self.session_epoch = if r.session_id == 0 { 0 } else { 1 };
                } else {
                    self.session_epoch = self.session_epoch.wrapping_add(1).max(1);
                }
                let mut moved = Vec::new();
                for t in &r.responses {
                    for p in &t.partitions {
                        let tp = TopicPartition { topic: t.topic.0.to_string(), partition: p.partition_index };
                        if p.error_code != 0 || p.high_watermark < 0 {
                            // Not led or followed here, unknown, out of range: leave it out for a
                            // while (an error answers at once, which would spin the watch).
                            self.benched.insert(tp.clone(), now + BENCH);
                            continue;
                        }
                        let mark = Mark { high_watermark: p.high_watermark, last_stable: p.last_stable_offset };
                        if self.marks.get(&tp) != Some(&mark) {
                            self.marks.insert(tp.clone(), mark);
                            moved.push(tp);
                        }
                    }
                }
                Ok(moved)
            }
        }
    }
}

fn check_corr(got: i32, want: i32) -> Result<(), UpstreamError> {
    if got == want {
        Ok(())
    } else {
        Err(UpstreamError::Protocol(format!("correlation id {got}, expected {want}")))
    }
}

/// The first complete frame in `buf` (its length including the size prefix), or `None` while
/// incomplete. A negative or absurd size is a protocol error.
pub fn complete_frame(buf: &[u8], frame_bytes_max: usize) -> Result<Option<usize>, UpstreamError> {
    let Some(size) = buf.get(..4) else { return Ok(None) };
    let size = i32::from_be_bytes([size[0], size[1], size[2], size[3]]);
    let size = usize::try_from(size).map_err(|_| UpstreamError::Protocol(format!("negative frame size {size}")))?;
    if size > frame_bytes_max {
        return Err(UpstreamError::Protocol(format!("frame of {size} bytes is above {frame_bytes_max}")));
    }
    Ok((buf.len() >= 4 + size).then_some(4 + size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition { topic: "t".into(), partition: p }
    }

    /// Encodes a response the way a broker would (header + body), without the size prefix.
    fn response<R: Encodable + HeaderVersion>(corr: i32, version: i16, r: &R) -> Bytes {
        let mut b = BytesMut::new();
        ResponseHeader::default().with_correlation_id(corr).encode(&mut b, R::header_version(version)).unwrap();
        r.encode(&mut b, version).unwrap();
        b.freeze()
    }

    fn request_of<R: Decodable + Request>(bytes: &[u8], version: i16) -> (i32, R) {
        let mut b = Bytes::copy_from_slice(&bytes[4..]);
        let h = RequestHeader::decode(&mut b, R::header_version(version)).unwrap();
        (h.correlation_id, R::decode(&mut b, version).unwrap())
    }

    fn fetch_answer(session: i32, parts: &[(i32, i64, i16)]) -> FetchResponse {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        FetchResponse::default().with_session_id(session).with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(
                parts
                    .iter()
                    .map(|&(p, hw, err)| {
                        PartitionData::default()
                            .with_partition_index(p)
                            .with_error_code(err)
                            .with_high_watermark(hw)
                            .with_last_stable_offset(hw)
                    })
                    .collect(),
            )])
    }

    fn handshake(w: &mut Watcher, now: Instant, cluster: &str) -> Result<(), UpstreamError> {
        w.on_connected();
        let req = w.next_request(&[], now).unwrap();
        let (corr, _) = request_of::<ApiVersionsRequest>(&req, 3);
        w.on_response(response(corr, 3, &ApiVersionsResponse::default()), now)?;
        let req = w.next_request(&[], now).unwrap();
        let (corr, _) = request_of::<MetadataRequest>(&req, 12);
        let md = MetadataResponse::default().with_cluster_id(Some(StrBytes::from_string(cluster.into())));
        w.on_response(response(corr, 12, &md), now).map(|_| ())
    }

    #[test]
    fn a_broker_of_another_cluster_is_refused_for_good() {
        let now = Instant::now();
        let mut w = Watcher::new(Some("ours".into()), now);
        let e = handshake(&mut w, now, "theirs").unwrap_err();
        assert_eq!(e, UpstreamError::ClusterIdMismatch { log_dir: "ours".into(), broker: "theirs".into() });
        w.on_disconnected(now);
        assert!(!w.connect_due(now + Duration::from_secs(60)));
    }

    #[test]
    fn the_watch_is_an_incremental_session_of_changed_offsets() {
        let now = Instant::now();
        let mut w = Watcher::new(Some("c".into()), now);
        handshake(&mut w, now, "c").unwrap();
        assert!(w.live());
        let watched = vec![Watched { tp: tp(0), start: 5 }, Watched { tp: tp(1), start: 0 }];
        // Full request: both partitions, at their safe starts, a new session asked for.
        let req = w.next_request(&watched, now).unwrap();
        assert!(w.next_request(&watched, now).is_none(), "one request in flight");
        let (corr, f) = request_of::<FetchRequest>(&req, 12);
        assert_eq!((f.session_id, f.session_epoch, f.max_bytes, f.min_bytes), (0, 0, 1, 1));
        let offsets: Vec<(i32, i64)> = f.topics[0].partitions.iter().map(|p| (p.partition, p.fetch_offset)).collect();
        assert_eq!(offsets.len(), 2);
        assert!(offsets.contains(&(0, 5)) && offsets.contains(&(1, 0)));
        let moved = w.on_response(response(corr, 12, &fetch_answer(77, &[(0, 10, 0), (1, 3, 0)])), now).unwrap();
        assert_eq!(moved.len(), 2);
        assert_eq!(w.marks[&tp(0)], Mark { high_watermark: 10, last_stable: 10 });
        // Incremental: both partitions' offsets moved to what was learned.
        let req = w.next_request(&watched, now).unwrap();
        let (corr, f) = request_of::<FetchRequest>(&req, 12);
        assert_eq!((f.session_id, f.session_epoch), (77, 1));
        assert_eq!(f.topics[0].partitions.len(), 2);
        // Only partition 1 moves; partition 0 is absent from the answer (unchanged).
        let moved = w.on_response(response(corr, 12, &fetch_answer(77, &[(1, 4, 0)])), now).unwrap();
        assert_eq!(moved, vec![tp(1)]);
        let req = w.next_request(&watched[..1], now).unwrap();
        let (corr, f) = request_of::<FetchRequest>(&req, 12);
        assert_eq!(f.session_epoch, 2);
        assert!(f.topics.is_empty(), "partition 0 unchanged, so not named again");
        assert_eq!(f.forgotten_topics_data[0].partitions, vec![1], "partition 1 is no longer watched");
        // A session error starts over with a full request.
        let bad = FetchResponse::default().with_error_code(70);
        assert!(w.on_response(response(corr, 12, &bad), now).unwrap().is_empty());
        let req = w.next_request(&watched, now).unwrap();
        let (_, f) = request_of::<FetchRequest>(&req, 12);
        assert_eq!((f.session_id, f.session_epoch), (0, 0));
        let offsets: Vec<(i32, i64)> = f.topics[0].partitions.iter().map(|p| (p.partition, p.fetch_offset)).collect();
        assert!(offsets.contains(&(0, 10)) && offsets.contains(&(1, 4)), "{offsets:?}");
    }

    #[test]
    fn the_metadata_quorum_high_watermark_is_polled_between_watch_fetches() {
        use kafka_protocol::messages::describe_quorum_response::{PartitionData, TopicData};
        let now = Instant::now();
        let mut w = Watcher::new(Some("c".into()), now);
        w.track_quorum = true;
        handshake(&mut w, now, "c").unwrap();
        let watched = vec![Watched { tp: tp(0), start: 0 }];
        let quorum = |hw: i64, code: i16| {
            DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                .with_partitions(vec![PartitionData::default().with_error_code(code).with_high_watermark(hw)])])
        };
        // First: DescribeQuorum for __cluster_metadata-0.
        let req = w.next_request(&watched, now).unwrap();
        let (corr, q) = request_of::<DescribeQuorumRequest>(&req, 0);
        assert_eq!(
            (q.topics[0].topic_name.0.as_str(), q.topics[0].partitions[0].partition_index),
            ("__cluster_metadata", 0)
        );
        w.on_response(response(corr, 0, &quorum(217, 0)), now).unwrap();
        assert_eq!(w.metadata_high_watermark, Some(217));
        // Then the watch Fetch, held shorter; the next DescribeQuorum only after QUORUM_POLL.
        let req = w.next_request(&watched, now).unwrap();
        let (corr, f) = request_of::<FetchRequest>(&req, 12);
        assert_eq!(f.max_wait_ms, QUORUM_WATCH_WAIT_MS);
        w.on_response(response(corr, 12, &fetch_answer(5, &[(0, 1, 0)])), now).unwrap();
        let req = w.next_request(&watched, now).unwrap();
        let (corr, _) = request_of::<FetchRequest>(&req, 12);
        w.on_response(response(corr, 12, &fetch_answer(5, &[])), now).unwrap();
        let later = now + QUORUM_POLL;
        let req = w.next_request(&watched, later).unwrap();
        let (corr, _) = request_of::<DescribeQuorumRequest>(&req, 0);
        // A refusal (CLUSTER_AUTHORIZATION_FAILED) stops the polling, not the watch.
        w.on_response(response(corr, 0, &quorum(-1, 31)), later).unwrap();
        assert_eq!(w.metadata_high_watermark, None);
        assert!(w.live());
        let req = w.next_request(&watched, later + QUORUM_POLL).unwrap();
        let (_, f) = request_of::<FetchRequest>(&req, 12);
        assert_eq!(f.max_wait_ms, WATCH_WAIT_MS);
    }

    #[test]
    fn errors_bench_a_partition_and_faults_back_off() {
        let now = Instant::now();
        let mut w = Watcher::new(None, now);
        handshake(&mut w, now, "any").unwrap();
        let watched = vec![Watched { tp: tp(0), start: 0 }, Watched { tp: tp(1), start: 0 }];
        let req = w.next_request(&watched, now).unwrap();
        let (corr, _) = request_of::<FetchRequest>(&req, 12);
        w.on_response(response(corr, 12, &fetch_answer(0, &[(0, -1, 6), (1, 2, 0)])), now).unwrap();
        let req = w.next_request(&watched, now).unwrap();
        let (corr, f) = request_of::<FetchRequest>(&req, 12);
        assert_eq!(f.session_id, 0, "no session offered: full requests");
        assert_eq!(f.topics[0].partitions.len(), 1, "partition 0 is benched after NOT_LEADER_OR_FOLLOWER");
        // A stuck broker: the request times out; a reply to nothing is a protocol error.
        assert!(!w.timed_out(now + Duration::from_secs(1)));
        assert!(w.timed_out(now + Duration::from_secs(6)));
        w.on_disconnected(now);
        assert!(!w.live());
        assert!(!w.connect_due(now));
        assert!(w.connect_due(now + Duration::from_millis(100)));
        assert!(matches!(
            w.on_response(response(corr, 12, &fetch_answer(0, &[])), now),
            Err(UpstreamError::Protocol(_))
        ));
        // Marks survive a disconnect: they stay known-safe offsets.
        assert_eq!(w.marks[&tp(1)].high_watermark, 2);
        assert_eq!(complete_frame(&[0, 0, 0, 2, 1], 100), Ok(None));
        assert_eq!(complete_frame(&[0, 0, 0, 2, 1, 2], 100), Ok(Some(6)));
        assert!(complete_frame(&[0xff, 0, 0, 0], 100).is_err());
    }
}
