//! `logferry serve` as a black box: the real binary on `127.0.0.1:0`, driven by a raw Kafka
//! protocol client (requests encoded and responses decoded by the `kafka-protocol` crate), over
//! a copy of the committed real fixture. Each API at its version boundaries, the error codes,
//! long polling, and bad input that must cost one connection, never the process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A copy of the real fixture and a `logferry serve` process over it.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    /// The "serving on" list: `SCHEME://ADDR (advertised ...)`, PLAINTEXT bare.
    pub listening: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    pub fn logdir(&self) -> PathBuf {
        self.dir.path().join("logdir")
    }

    /// The bound address of the first listener of `protocol` ("SSL", "SASL_SSL", ...).
    pub fn addr_of(&self, protocol: &str) -> SocketAddr {
        let prefix = format!("{protocol}://");
        let rest = self.listening.split(", ").find_map(|l| l.strip_prefix(&prefix)).expect("listener listed");
        rest.split_whitespace().next().unwrap().parse().unwrap()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits (bounded) for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn serve(extra: &[&str]) -> Served {
    serve_with(extra, &[], |_| {})
}

pub fn serve_with_env(extra: &[&str], env: &[(&str, &str)]) -> Served {
    serve_with(extra, env, |_| {})
}

/// Copies the fixture, lets `setup` change the copy, then starts `logferry serve` on it.
pub fn serve_with(extra: &[&str], env: &[(&str, &str)], setup: impl FnOnce(&Path)) -> Served {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logdir"), &dir.path().join("logdir"));
    let logdir = dir.path().join("logdir");
    let state = dir.path().join("state");
    setup(&logdir);
    // LOGFERRY_BIN_UNDER_TEST runs the black box against another build (a before/after figure).
    let bin = std::env::var("LOGFERRY_BIN_UNDER_TEST").unwrap_or_else(|_| env!("CARGO_BIN_EXE_logferry").to_string());
    let mut child = Command::new(bin)
        .args(["serve", "--log-dir", logdir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(if extra.contains(&"--rescan-ms") { &[][..] } else { &["--rescan-ms", "200"][..] })
        .args(if extra.contains(&"--state-dir") {
            vec![]
        } else {
            vec!["--state-dir".to_string(), state.display().to_string()]
        })
        .args(extra)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logferry");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(rest) = line.split("serving on ").nth(1) {
                    let _ = tx.send(rest.split("; node").next().unwrap_or(rest).to_string());
                    sent = true;
                }
            }
            if std::env::var_os("LOGFERRY_TEST_LOG").is_some() {
                eprintln!("[server] {line}");
            }
        }
    });
    let listening = rx.recv_timeout(Duration::from_secs(20)).expect("logferry did not print its address");
    let addr = listening.split_whitespace().next().unwrap().parse().unwrap();
    Served { child, addr, dir, listening }
}

/// The active (last) `.log` of a partition directory in the served copy.
pub fn active_segment(s: &Served, partition_dir: &str) -> PathBuf {
    std::fs::read_dir(s.logdir().join(partition_dir))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max()
        .unwrap()
}

/// Appends `batch` (whose base offset is the current end) to `plain-<partition>` and waits
/// (bounded) until ListOffsets shows it. Returns the segment path and its length before.
pub fn append_visible(s: &Served, c: &mut Client, partition: i32, batch: &[u8]) -> (PathBuf, u64) {
    let end = list_offsets(c, 5, "plain", partition, -1, -1, 0).offset;
    let records = i64::from(i32::from_be_bytes(batch[57..61].try_into().unwrap()));
    let seg = active_segment(s, &format!("plain-{partition}"));
    let before = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(batch).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while list_offsets(c, 5, "plain", partition, -1, -1, 0).offset != end + records {
        assert!(Instant::now() < deadline, "the appended batch never became visible");
        std::thread::sleep(Duration::from_millis(50));
    }
    (seg, before)
}

/// A raw Kafka client over a TCP stream, or any other byte stream (a TLS session: `tls.rs`).
pub struct Client<S = TcpStream> {
    pub s: S,
    correlation: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { s, correlation: 0 }
    }
}

impl<S: Read + Write> Client<S> {
    pub fn over(s: S) -> Self {
        Client { s, correlation: 0 }
    }

    pub fn frame<R: Request>(&mut self, version: i16, req: &R) -> Vec<u8> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("it")));
        let mut b = BytesMut::new();
        header.encode(&mut b, R::header_version(version)).unwrap();
        req.encode(&mut b, version).unwrap();
        let mut out = (b.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&b);
        out
    }

    pub fn read_frame(&mut self) -> std::io::Result<Bytes> {
        let mut size = [0u8; 4];
        self.s.read_exact(&mut size)?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.s.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let f = self.frame(version, req);
        self.s.write_all(&f).unwrap();
        let mut body = self.read_frame().expect("response");
        let hv = if R::KEY == ApiKey::ApiVersions as i16 {
            0
        } else {
            <R::Response as kafka_protocol::protocol::HeaderVersion>::header_version(version)
        };
        let h = ResponseHeader::decode(&mut body, hv).unwrap();
        assert_eq!(h.correlation_id, self.correlation);
        R::Response::decode(&mut body, version).unwrap()
    }

    /// True when the server closed the connection (EOF or reset) within the timeout.
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.s.read(&mut b), Ok(0) | Err(_))
    }
}

pub fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

pub fn fetch_req(topic_name: &str, topic_id: uuid::Uuid, partition: i32, offset: i64, isolation: i8) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(isolation)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic(topic_name)).with_topic_id(topic_id).with_partitions(
            vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)],
        )])
}

pub fn topic_id_of(c: &mut Client, name: &str) -> uuid::Uuid {
    let m = c.call(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic(name)))])),
    );
    m.topics[0].topic_id
}

#[test]
fn api_versions_every_version_and_the_unknown_one() {
    // v0-4 list exactly the served table; an unknown version gets the v0-format
    // UNSUPPORTED_VERSION answer with the list (KIP-511), not a closed socket.
    let s = serve(&[]);
    let mut c = Client::connect(s.addr);
    for v in 0..=4 {
        let r = c.call(v, &ApiVersionsRequest::default());
        assert_eq!(r.error_code, 0, "v{v}");
        let keys: Vec<(i16, i16, i16)> = r.api_keys.iter().map(|k| (k.api_key, k.min_version, k.max_version)).collect();
        assert!(keys.contains(&(1, 4, 18)), "v{v} {keys:?}");
        assert!(keys.contains(&(3, 0, 13)));
        assert!(keys.contains(&(2, 1, 10)));
        assert!(keys.contains(&(23, 2, 4)));
        assert!(keys.contains(&(18, 0, 4)));
        assert!(keys.contains(&(0, 3, 13)));
        // The group coordinator's APIs.
        for k in
            [(10, 0, 6), (11, 0, 9), (14, 0, 5), (12, 0, 4), (13, 0, 5), (8, 2, 9), (9, 1, 9), (16, 0, 5), (15, 0, 6)]
        {
            assert!(keys.contains(&k), "v{v} lacks {k:?}");
        }
        // SaslHandshake and SaslAuthenticate, listed on every listener as the broker lists them.
        assert!(keys.contains(&(17, 0, 1)) && keys.contains(&(36, 0, 2)), "v{v} {keys:?}");
        assert!(keys.contains(&(32, 1, 4)), "DescribeConfigs");
        assert!(keys.contains(&(35, 1, 4)) && keys.contains(&(60, 0, 2)) && keys.contains(&(75, 0, 0)), "{keys:?}");
        assert!(keys.contains(&(68, 0, 1)) && keys.contains(&(69, 0, 1)), "KIP-848 {keys:?}");
        assert_eq!(keys.len(), 23, "nothing else is advertised");
    }
    // On a PLAINTEXT listener a SASL exchange is out of place: ILLEGAL_SASL_STATE, as the broker.
    let h = c.call(1, &kafka_protocol::messages::SaslHandshakeRequest::default());
    assert_eq!(h.error_code, 34);
    let a = c.call(2, &kafka_protocol::messages::SaslAuthenticateRequest::default());
    assert_eq!(a.error_code, 34);
    let mut f = c.frame(4, &ApiVersionsRequest::default());
    f[6..8].copy_from_slice(&9i16.to_be_bytes());
    c.s.write_all(&f).unwrap();
    let mut body = c.read_frame().unwrap();
    let _ = ResponseHeader::decode(&mut body, 0).unwrap();
    let r = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(r.error_code, 35);
    assert_eq!(r.api_keys.len(), 23);
}

#[test]
fn metadata_every_version() {
    let s = serve(&[]);
    let mut c = Client::connect(s.addr);
    for v in 0..=13 {
        let all = c.call(v, &MetadataRequest::default().with_topics(if v == 0 { Some(vec![]) } else { None }));
        assert_eq!(all.brokers.len(), 1);
        assert_eq!(all.brokers[0].port, i32::from(s.addr.port()), "v{v}: advertised port is the bound one");
        let plain =
            all.topics.iter().find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("plain")).expect("plain listed");
        assert_eq!(plain.partitions.len(), 3);
        assert!(plain.partitions.iter().all(|p| p.leader_id == all.brokers[0].node_id));
        if v >= 10 {
            assert!(!plain.topic_id.is_nil());
        }
        if v >= 7 {
            assert!(plain.partitions[0].leader_epoch >= 0);
        }
        if v >= 2 {
            assert_eq!(all.cluster_id.as_ref().map(|c| c.as_str()), Some("MkU3OEVBNTcwNTJENDM2Qk"));
        }
        if v >= 1 {
            let unknown = c.call(
                v,
                &MetadataRequest::default()
                    .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic("nope")))])),
            );
            assert_eq!(unknown.topics[0].error_code, 3, "v{v}");
        }
    }
    let gone = uuid::Uuid::from_bytes([3; 16]);
    let r = c.call(
        12,
        &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_topic_id(gone)])),
    );
    assert_eq!(r.topics[0].error_code, 100);
}

pub fn list_offsets(
    c: &mut Client,
    v: i16,
    name: &str,
    partition: i32,
    ts: i64,
    epoch: i32,
    isolation: i8,
) -> kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse {
    let req =
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(isolation).with_topics(vec![
            ListOffsetsTopic::default().with_name(topic(name)).with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(ts)
                .with_current_leader_epoch(epoch)]),
        ]);
    c.call(v, &req).topics[0].partitions[0].clone()
}

#[test]
fn list_offsets_every_version() {
    let s = serve(&[]);
    let mut c = Client::connect(s.addr);
    let expected =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/expected/plain.txt"))
            .unwrap();
    let p0: Vec<(i64, i64)> = expected
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[2] == "0").then(|| (f[3].parse().unwrap(), f[4].parse().unwrap()))
        })
        .collect();
    let end = p0.iter().map(|x| x.0).max().unwrap() + 1;
    for v in 1..=10 {
        assert_eq!(list_offsets(&mut c, v, "plain", 0, -2, -1, 0).offset, 0, "v{v} earliest");
        assert_eq!(list_offsets(&mut c, v, "plain", 0, -1, -1, 0).offset, end, "v{v} latest");
        let (o, ts) = p0[p0.len() / 2];
        let r = list_offsets(&mut c, v, "plain", 0, ts, -1, 0);
        assert!(r.offset <= o && r.timestamp >= 0 && r.timestamp <= ts, "v{v}: {r:?} for ({o},{ts})");
        assert_eq!(list_offsets(&mut c, v, "plain", 0, i64::MAX / 2, -1, 0).offset, -1);
        assert_eq!(list_offsets(&mut c, v, "plain", 9, -1, -1, 0).error_code, 3);
        if v >= 4 {
            assert_eq!(list_offsets(&mut c, v, "plain", 0, -1, 1_000_000, 0).error_code, 75);
        }
        if v >= 7 {
            let max = list_offsets(&mut c, v, "plain", 0, -3, -1, 0);
            let best = p0.iter().map(|x| x.1).max().unwrap();
            assert_eq!(max.timestamp, best, "v{v} max timestamp");
        }
    }
}

#[test]
fn offset_for_leader_epoch_every_version() {
    let s = serve(&[]);
    let mut c = Client::connect(s.addr);
    let latest = c
        .call(12, &MetadataRequest::default().with_topics(None))
        .topics
        .iter()
        .find(|t| t.name.as_ref().unwrap().0.as_str() == "plain")
        .unwrap()
        .partitions[0]
        .leader_epoch;
    let end = list_offsets(&mut c, 5, "plain", 0, -1, -1, 0).offset;
    for v in 2..=4 {
        let req = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            OffsetForLeaderTopic::default().with_topic(topic("plain")).with_partitions(vec![
                OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_leader_epoch(latest)
                    .with_current_leader_epoch(latest),
            ]),
        ]);
        let r = c.call(v, &req);
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.leader_epoch, p.end_offset), (0, latest, end), "v{v}");
    }
}

#[test]
fn fetch_every_version_returns_the_file_bytes() {
    // From offset 0 every version returns the segment's bytes exactly as stored.
    let s = serve(&[]);
    let mut c = Client::connect(s.addr);
    let id = topic_id_of(&mut c, "plain");
    let seg = std::fs::read(s.logdir().join("plain-0/00000000000000000000.log")).unwrap();
    for v in 4..=18 {
        let r = c.call(v, &fetch_req("plain", id, 0, 0, 0));
        assert_eq!(r.session_id, 0);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{v}");
        let records = p.records.as_ref().expect("records");
        assert!(!records.is_empty());
        assert!(seg.starts_with(records), "v{v}: records are the file's first bytes");
        assert!(p.aborted_transactions.is_none(), "read_uncommitted gets a null list");
        let out = c.call(v, &fetch_req("plain", id, 0, 1_000_000, 0));
        assert_eq!(out.responses[0].partitions[0].error_code, 1, "v{v} OFFSET_OUT_OF_RANGE");
        let unknown = c.call(v, &fetch_req("nope", uuid::Uuid::from_bytes([5; 16]), 0, 0, 0));
        assert_eq!(unknown.responses[0].partitions[0].error_code, if v >= 13 { 100 } else { 3 }, "v{v}");
        if v >= 9 {
            let mut req = fetch_req("plain", id, 0, 0, 0);
            req.topics[0].partitions[0].current_leader_epoch = 1_000_000;
            assert_eq!(c.call(v, &req).responses[0].partitions[0].error_code, 75, "v{v}");
        }
    }
}

#[test]
fn fetch_read_committed_lists_aborted_transactions() {
    let s = serve(&[]);
    let mut c = Client::connect(s.addr);
    let id = topic_id_of(&mut c, "txn");
    let mut saw_aborted = false;
    for p in 0..3 {
        let r = c.call(12, &fetch_req("txn", id, p, 0, 1));
        let part = &r.responses[0].partitions[0];
        let list = part.aborted_transactions.as_ref().expect("read_committed gets a list");
        saw_aborted |= !list.is_empty();
        assert_eq!(part.last_stable_offset, part.high_watermark, "no open transaction in the fixture");
    }
    assert!(saw_aborted);
}

#[test]
fn produce_is_refused_non_retriably() {
    let s = serve(&[]);
    let mut c = Client::connect(s.addr);
    for v in [3, 8, 12] {
        let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![
            TopicProduceData::default().with_name(topic("plain")).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(Bytes::new())),
            ]),
        ]);
        let r = c.call(v, &req);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 29, "v{v}");
        if v >= 8 {
            assert!(p.error_message.as_ref().unwrap().as_str().contains("read-only"));
        }
    }
    // acks=0 expects no response: the connection is closed instead.
    let req = ProduceRequest::default().with_acks(0).with_topic_data(vec![]);
    let f = c.frame(9, &req);
    c.s.write_all(&f).unwrap();
    assert!(c.closed());
}

#[test]
fn long_poll_waits_then_wakes_on_new_data() {
    // The periodic rescan is set to a minute: the wake-up must come from inotify.
    let s = serve(&["--visibility", "log-end", "--rescan-ms", "60000"]);
    let mut c = Client::connect(s.addr);
    let id = topic_id_of(&mut c, "plain");
    let end = list_offsets(&mut c, 5, "plain", 0, -1, -1, 0).offset;
    // Nothing to read: the fetch waits max_wait_ms, then answers empty.
    let mut req = fetch_req("plain", id, 0, end, 0);
    req.max_wait_ms = 400;
    let t = Instant::now();
    let r = c.call(12, &req);
    assert!(t.elapsed() >= Duration::from_millis(380), "answered after {:?}", t.elapsed());
    assert_eq!(r.responses[0].partitions[0].records.as_ref().map_or(0, |b| b.len()), 0);
    // A parked fetch is answered as soon as a batch is appended, long before its wait ends.
    req.max_wait_ms = 20_000;
    let f = c.frame(12, &req);
    c.s.write_all(&f).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let seg = active_segment(&s, "plain-0");
    let batch = crate::util::batch(end, 3, 1_800_000_000_000, 50, 7);
    let t = Instant::now();
    std::fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(&batch).unwrap();
    let mut body = c.read_frame().unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "woke after {:?}", t.elapsed());
    let _ = ResponseHeader::decode(&mut body, 1).unwrap();
    let r = FetchResponse::decode(&mut body, 12).unwrap();
    assert_eq!(r.responses[0].partitions[0].records.as_deref(), Some(&batch[..]));
    assert_eq!(r.responses[0].partitions[0].high_watermark, end + 3);
}

#[test]
fn bad_input_costs_one_connection() {
    // Garbage, a 2 GiB size, a truncated header, an unknown API key, an unsupported version,
    // a write API: each closes its own connection; a request sent one byte at a time and a
    // healthy client keep being served; the process stays up.
    let s = serve(&[]);
    let mut healthy = Client::connect(s.addr);
    let cases: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0x7f, 0xff, 0xff, 0xff, 0, 1, 2, 3],
        vec![0, 0, 0, 5, 0, 18, 0],
        vec![0xff, 0xff, 0xff, 0xfe],
        {
            let mut f = vec![0, 0, 0, 12];
            f.extend_from_slice(&500i16.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0]);
            f
        },
        {
            let mut c = Client::connect(s.addr);
            let mut f = c.frame(4, &FetchRequest::default());
            f[6..8].copy_from_slice(&3i16.to_be_bytes());
            f
        },
        {
            let mut c = Client::connect(s.addr);
            c.frame(4, &InitProducerIdRequest::default())
        },
        {
            let mut c = Client::connect(s.addr);
            let mut f = c.frame(12, &fetch_req("plain", uuid::Uuid::nil(), 0, 0, 0));
            let n = f.len();
            f.truncate(n - 6);
            let size = (f.len() - 4) as i32;
            f[..4].copy_from_slice(&size.to_be_bytes());
            f
        },
    ];
    let mut cases = cases;
    // The fuzzer's finds: array counts claiming billions of elements (see fuzz/README.md).
    for e in std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/request")).unwrap() {
        let body = std::fs::read(e.unwrap().path()).unwrap();
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend(body);
        cases.push(f);
    }
    for (i, bytes) in cases.iter().enumerate() {
        let mut c = Client::connect(s.addr);
        c.s.write_all(bytes).unwrap();
        if i == 2 {
            // Truncated: the server waits for the rest of the frame; closing our side ends it.
            c.s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        assert!(c.closed(), "case {i} should close the connection");
        let r = healthy.call(3, &ApiVersionsRequest::default());
        assert_eq!(r.error_code, 0, "healthy client after case {i}");
    }
    let mut slow = Client::connect(s.addr);
    let f = slow.frame(4, &ApiVersionsRequest::default());
    for b in &f {
        slow.s.write_all(&[*b]).unwrap();
        slow.s.flush().unwrap();
    }
    let mut body = slow.read_frame().unwrap();
    let _ = ResponseHeader::decode(&mut body, 0).unwrap();
    assert_eq!(ApiVersionsResponse::decode(&mut body, 4).unwrap().error_code, 0);
}

#[test]
fn a_client_that_never_reads_does_not_block_others() {
    let s = serve(&[]);
    let mut lazy = Client::connect(s.addr);
    let id = topic_id_of(&mut lazy, "plain");
    let mut req = fetch_req("plain", id, 0, 0, 0);
    req.topics[0].partitions[0].partition_max_bytes = 50 << 20;
    // Many large fetches pipelined and never read: the server's writes block on this socket.
    for _ in 0..200 {
        let f = lazy.frame(12, &req);
        lazy.s.write_all(&f).unwrap();
    }
    let mut other = Client::connect(s.addr);
    for _ in 0..20 {
        let r = other.call(12, &req);
        assert_eq!(r.responses[0].partitions[0].error_code, 0);
    }
}

#[test]
fn a_thousand_connections_at_once() {
    let s = serve(&[]);
    let mut conns: Vec<Client> = (0..1000).map(|_| Client::connect(s.addr)).collect();
    for c in conns.iter_mut() {
        let f = c.frame(3, &ApiVersionsRequest::default());
        c.s.write_all(&f).unwrap();
    }
    for c in conns.iter_mut() {
        let mut body = c.read_frame().unwrap();
        let _ = ResponseHeader::decode(&mut body, 0).unwrap();
        assert_eq!(ApiVersionsResponse::decode(&mut body, 3).unwrap().error_code, 0);
    }
}

#[test]
fn connections_max_holds_extra_clients_in_the_backlog() {
    let s = serve(&["--connections-max", "2"]);
    let mut a = Client::connect(s.addr);
    let mut b = Client::connect(s.addr);
    assert_eq!(a.call(3, &ApiVersionsRequest::default()).error_code, 0);
    assert_eq!(b.call(3, &ApiVersionsRequest::default()).error_code, 0);
    let mut c = Client::connect(s.addr);
    let f = c.frame(3, &ApiVersionsRequest::default());
    c.s.write_all(&f).unwrap();
    c.s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    assert!(c.read_frame().is_err(), "third connection must wait");
    drop(a);
    c.s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut body = c.read_frame().expect("served once a slot freed");
    let _ = ResponseHeader::decode(&mut body, 0).unwrap();
    assert_eq!(ApiVersionsResponse::decode(&mut body, 3).unwrap().error_code, 0);
    assert_eq!(b.call(3, &ApiVersionsRequest::default()).error_code, 0);
}

#[test]
fn bad_flags_and_directories_exit_non_zero_with_a_message() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_logferry")).args(args).output().unwrap();
    let o = run(&["serve", "--log-dir", "/nonexistent/dir", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/dir"));
    let o = run(&["serve", "--log-dir", "/tmp", "--listen", "nonsense"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--listen"));
    let o = run(&["serve", "--log-dir", "/tmp", "--visibility", "sometimes"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--visibility"));
    let o = run(&["serve", "--log-dir", "/tmp", "--buffered-request-bytes-max", "1000000"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--request-bytes-max 8388608 does not fit --buffered-request-bytes-max 1000000"), "{err}");
    let o = run(&["serve"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_file_that_shrinks_mid_send_closes_only_that_connection() {
    // A 24 MiB batch is appended; a client asks for it and does not read; the segment is
    // truncated under the in-flight response; that connection is closed before the frame is
    // complete (never padded to length), and the server keeps serving.
    let s = serve(&["--visibility", "log-end", "--rescan-ms", "60000"]);
    let mut c = Client::connect(s.addr);
    let id = topic_id_of(&mut c, "plain");
    let end = list_offsets(&mut c, 5, "plain", 1, -1, -1, 0).offset;
    let big = crate::util::batch(end, 1, 1_800_000_000_000, 24 << 20, 9);
    let (seg, before) = append_visible(&s, &mut c, 1, &big);
    let mut slow = Client::connect(s.addr);
    let mut req = fetch_req("plain", id, 1, end, 0);
    req.topics[0].partitions[0].partition_max_bytes = 64 << 20;
    // First pass: let the server validate the batch (it reads it once); answer fully read.
    let r = slow.call(12, &req);
    assert_eq!(r.responses[0].partitions[0].records.as_ref().map(|b| b.len()), Some(big.len()));
    // Second pass: do not read; truncate while the response is in flight.
    let f = slow.frame(12, &req);
    slow.s.write_all(&f).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(before).unwrap();
    let mut got = Vec::new();
    let _ = slow.s.read_to_end(&mut got);
    let frame_len = got.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize + 4);
    assert!(frame_len.is_some_and(|n| got.len() < n), "the response must be cut short, got {} bytes", got.len());
    // The frame is incomplete, so no client parses any of it. (Its content cannot be trusted
    // either: bytes already handed to sendfile reference page-cache pages, and truncation zeroes
    // the partial page at the cut in place; see the module doc of `send`.)
    let mut other = Client::connect(s.addr);
    assert_eq!(other.call(3, &ApiVersionsRequest::default()).error_code, 0);
}

#[test]
fn fenced_epoch_corrupt_batch_and_unknown_session() {
    // FENCED_LEADER_EPOCH needs a current epoch above 0: the copy's plain-0 gets epoch 5.
    // CORRUPT_MESSAGE: one flipped byte in gzip-0's first batch. Session ids: sessions are never
    // handed out, so an incremental fetch names an unknown one (FETCH_SESSION_ID_NOT_FOUND).
    let dir_setup = |logdir: &Path| {
        std::fs::write(logdir.join("plain-0/leader-epoch-checkpoint"), "0\n2\n0 0\n5 10\n").unwrap();
        let seg = logdir.join("gzip-0/00000000000000000000.log");
        let mut b = std::fs::read(&seg).unwrap();
        b[100] ^= 0xff;
        std::fs::write(&seg, b).unwrap();
    };
    let s2 = serve_with(&[], &[], dir_setup);
    let mut c = Client::connect(s2.addr);
    let id = topic_id_of(&mut c, "plain");
    let mut req = fetch_req("plain", id, 0, 0, 0);
    req.topics[0].partitions[0].current_leader_epoch = 4;
    assert_eq!(c.call(12, &req).responses[0].partitions[0].error_code, 74);
    req.topics[0].partitions[0].current_leader_epoch = 5;
    assert_eq!(c.call(12, &req).responses[0].partitions[0].error_code, 0);
    assert_eq!(list_offsets(&mut c, 5, "plain", 0, -1, 3, 0).error_code, 74);
    let gid = topic_id_of(&mut c, "gzip");
    assert_eq!(c.call(12, &fetch_req("gzip", gid, 0, 0, 0)).responses[0].partitions[0].error_code, 2);
    let mut inc = fetch_req("plain", id, 1, 0, 0);
    inc.session_id = 1234;
    inc.session_epoch = 3;
    let r = c.call(12, &inc);
    assert_eq!(r.error_code, 70);
    assert!(r.responses.is_empty());
}

#[test]
fn a_stuck_or_garbage_upstream_never_blocks_serving() {
    use std::net::TcpListener;
    // One upstream accepts and never answers (a stuck broker), another answers garbage.
    for garbage in [false, true] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in l.incoming() {
                let Ok(mut s) = s else { break };
                if garbage {
                    let _ = s.write_all(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
                }
                held.push(s);
            }
        });
        let s = serve(&["--upstream", &upstream]);
        let mut c = Client::connect(s.addr);
        let id = topic_id_of(&mut c, "plain");
        for _ in 0..3 {
            let t = Instant::now();
            let r = c.call(12, &fetch_req("plain", id, 0, 0, 0));
            assert_eq!(r.responses[0].partitions[0].error_code, 0);
            assert!(r.responses[0].partitions[0].records.as_ref().is_some_and(|b| !b.is_empty()));
            assert!(t.elapsed() < Duration::from_secs(2), "served at once (garbage {garbage})");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn a_gappy_partition_set_lists_every_index_up_to_the_highest() {
    // The log dir holds plain-0 and plain-2 only (plain-1 lives on another broker).
    let s = serve_with(&[], &[], |logdir| std::fs::remove_dir_all(logdir.join("plain-1")).unwrap());
    let mut c = Client::connect(s.addr);
    for v in [1, 9, 12, 13] {
        let r = c.call(v, &MetadataRequest::default().with_topics(None));
        let plain = r.topics.iter().find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("plain")).unwrap();
        let got: Vec<(i32, i16, i32)> =
            plain.partitions.iter().map(|p| (p.partition_index, p.error_code, p.leader_id.0)).collect();
        assert_eq!(got, vec![(0, 0, 1), (1, 5, -1), (2, 0, 1)], "v{v}");
    }
    // librdkafka reads the highest partition (with a count of 2 it would ignore partition 2).
    let out = Command::new("kcat")
        .args(["-b", &s.addr.to_string(), "-C", "-t", "plain", "-p", "2", "-o", "beginning", "-e", "-q", "-f", "%o\n"])
        .output()
        .expect("kcat is installed by tests/harness/install.sh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fixture =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/expected/plain.txt"))
            .unwrap();
    let want = fixture.lines().filter(|l| l.contains(" plain 2 ")).count();
    assert!(want > 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), want);
}

#[test]
fn a_fleet_instance_presents_the_cluster_of_its_metadata_log() {
    // The metadata log of a real 3-node cluster (tests/it/cluster.rs has its final state:
    // broker 2 live, 1 and 3 fenced; `spread` 0..4 and `late` 0..2). This instance is node 2
    // and holds one replica, spread-1 (the fixture's plain-0 under that name); node 1's
    // logferry is in the peer map, node 3's is not.
    let meta = tempfile::tempdir().unwrap();
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster-metadata/__cluster_metadata-0"),
        &meta.path().join("__cluster_metadata-0"),
    );
    // A snapshot plus the log after it, as a broker's directory has them.
    assert!(meta.path().join("__cluster_metadata-0/00000000000000000146-0000000001.checkpoint").exists());
    let s = serve_with(
        &[
            "--metadata-log-dir",
            meta.path().to_str().unwrap(),
            "--node-id",
            "2",
            "--peer",
            "1=127.0.0.1:1111",
            "--visibility",
            "log-end",
        ],
        &[],
        |logdir| std::fs::rename(logdir.join("plain-0"), logdir.join("spread-1")).unwrap(),
    );
    let mut c = Client::connect(s.addr);
    let m = c.call(12, &MetadataRequest::default().with_topics(None));
    let nodes: Vec<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
    assert_eq!(nodes, [2], "fenced brokers are not shown, whatever the peer map says");
    let mut names: Vec<String> = m.topics.iter().map(|t| t.name.as_ref().unwrap().0.to_string()).collect();
    names.sort();
    assert_eq!(names, ["late", "spread"], "the cluster's topics, not the log dir's");
    let spread = m.topics.iter().find(|t| t.name.as_ref().unwrap().0.as_str() == "spread").unwrap();
    let got: Vec<(i32, i16, i32, i32)> =
        spread.partitions.iter().map(|p| (p.partition_index, p.error_code, p.leader_id.0, p.leader_epoch)).collect();
    assert_eq!(got, [(0, 0, 2, 1), (1, 0, 2, 0), (2, 5, -1, 1), (3, 5, -1, 2), (4, 0, 2, 0)]);
    let p0 = &spread.partitions[0];
    assert_eq!((p0.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(), p0.offline_replicas.len()), (vec![1, 2], 1));
    // Fetch: served where a replica is here, NOT_LEADER_OR_FOLLOWER where the cluster has the
    // partition but this instance does not, UNKNOWN_TOPIC_OR_PARTITION where nobody has it.
    let ok = c.call(12, &fetch_req("spread", uuid::Uuid::nil(), 1, 0, 0));
    assert_eq!(ok.responses[0].partitions[0].error_code, 0);
    assert!(ok.responses[0].partitions[0].records.as_ref().is_some_and(|r| !r.is_empty()));
    assert_eq!(c.call(12, &fetch_req("spread", uuid::Uuid::nil(), 0, 0, 0)).responses[0].partitions[0].error_code, 6);
    assert_eq!(c.call(12, &fetch_req("nope", uuid::Uuid::nil(), 0, 0, 0)).responses[0].partitions[0].error_code, 3);
    // Fetch v13+ names topics by the ids Metadata gave: the cluster's, even where the local
    // partition.metadata says otherwise (here it is the fixture's plain id).
    let by_id = c.call(13, &fetch_req("", spread.topic_id, 1, 0, 0));
    assert_eq!(by_id.responses[0].partitions[0].error_code, 0);
    assert!(by_id.responses[0].partitions[0].records.as_ref().is_some_and(|r| !r.is_empty()));
    // Leader epochs are the cluster's: spread-1 is at epoch 0; 1 is unknown here, -1 skips.
    let mut req = fetch_req("spread", uuid::Uuid::nil(), 1, 0, 0);
    req.topics[0].partitions[0].current_leader_epoch = 1;
    assert_eq!(c.call(12, &req).responses[0].partitions[0].error_code, 75);
    assert_eq!(list_offsets(&mut c, 5, "spread", 0, -1, -1, 0).error_code, 6);
    assert_eq!(list_offsets(&mut c, 5, "spread", 1, -1, 0, 0).error_code, 0);
    // Groups: no __consumer_offsets in this cluster yet: the lowest shown node coordinates.
    let fc = c.call(3, &FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")));
    assert_eq!((fc.error_code, fc.node_id.0), (0, 2));
}

#[test]
fn describe_configs_without_a_broker_answers_kafkas_defaults_and_its_errors() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let s = serve(&[]);
    let mut c = Client::connect(s.addr);
    let resource = |kind: i8, name: &str| {
        DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(kafka_protocol::protocol::StrBytes::from_string(name.into()))
    };
    for v in 1..=4 {
        let req = DescribeConfigsRequest::default().with_include_synonyms(true).with_resources(vec![
            resource(2, "plain"),
            resource(2, "no-such-topic"),
            resource(2, "bad name"),
            resource(4, "77"),
            resource(4, "1"),
            resource(99, "x"),
        ]);
        let r: DescribeConfigsResponse = c.call(v, &req);
        let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
        assert_eq!(codes, vec![0, 3, 17, 42, 0, 42], "v{v}");
        let topic = &r.results[0].configs;
        assert_eq!(topic.len(), 37, "v{v}");
        let retention = topic.iter().find(|e| e.name.as_str() == "retention.ms").unwrap();
        assert_eq!(retention.value.as_ref().map(|v| v.as_str()), Some("604800000"));
        assert_eq!(retention.config_source, 5, "no broker config: Kafka's default");
        assert!(topic.iter().all(|e| !e.read_only && !e.is_sensitive));
        // Only the keys asked for.
        let one = DescribeConfigsRequest::default().with_resources(vec![resource(2, "plain").with_configuration_keys(
            Some(vec![kafka_protocol::protocol::StrBytes::from_static_str("segment.bytes")]),
        )]);
        let r: DescribeConfigsResponse = c.call(v, &one);
        assert_eq!(r.results[0].configs.len(), 1);
        assert!(r.results[0].configs[0].synonyms.is_empty(), "synonyms only when asked");
    }
}

#[test]
fn describe_cluster_topic_partitions_and_log_dirs_without_a_broker() {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let s = serve(&[]);
    let mut c = Client::connect(s.addr);
    let topic = |n: &str| TopicName(StrBytes::from_string(n.into()));
    let md: MetadataResponse = c.call(12, &MetadataRequest::default().with_topics(None));
    // DescribeCluster: the same node and cluster id as Metadata, and the broker's refusals.
    for v in 0..=2 {
        let r: DescribeClusterResponse = c.call(v, &DescribeClusterRequest::default().with_endpoint_type(1));
        assert_eq!((r.error_code, &r.cluster_id), (0, md.cluster_id.as_ref().unwrap()), "v{v}");
        let nodes: Vec<(i32, String, i32)> =
            r.brokers.iter().map(|b| (b.broker_id.0, b.host.to_string(), b.port)).collect();
        let want: Vec<(i32, String, i32)> =
            md.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect();
        assert_eq!(nodes, want, "v{v}");
        assert_eq!(r.controller_id, md.controller_id);
        assert_eq!(r.cluster_authorized_operations, i32::MIN, "not asked");
        let asked =
            DescribeClusterRequest::default().with_endpoint_type(1).with_include_cluster_authorized_operations(true);
        let r: DescribeClusterResponse = c.call(v, &asked);
        // CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
        assert_eq!(r.cluster_authorized_operations, 8096, "no authorizer: every cluster operation");
    }
    let r: DescribeClusterResponse = c.call(1, &DescribeClusterRequest::default().with_endpoint_type(2));
    assert_eq!(r.error_code, 114, "controllers asked of a broker: MISMATCHED_ENDPOINT_TYPE");
    let r: DescribeClusterResponse = c.call(1, &DescribeClusterRequest::default().with_endpoint_type(9));
    assert_eq!(r.error_code, 115, "UNSUPPORTED_ENDPOINT_TYPE");

    // DescribeTopicPartitions: paged one partition at a time by its cursor, it walks exactly
    // Metadata's partitions in name order.
    let mut want: Vec<(String, i32, i32, i32)> = md
        .topics
        .iter()
        .flat_map(|t| {
            let name = t.name.as_ref().unwrap().to_string();
            t.partitions.iter().map(move |p| (name.clone(), p.partition_index, p.leader_id.0, p.leader_epoch))
        })
        .collect();
    want.sort();
    let mut got = Vec::new();
    let mut cursor = None;
    for _ in 0..=want.len() {
        let req = DescribeTopicPartitionsRequest::default().with_response_partition_limit(2).with_cursor(cursor.take());
        let r: DescribeTopicPartitionsResponse = c.call(0, &req);
        for t in &r.topics {
            assert_eq!(t.error_code, 0);
            assert_eq!(t.topic_authorized_operations, 3576, "no authorizer: every topic operation");
            let name = t.name.as_ref().unwrap().to_string();
            assert!(t.partitions.iter().all(|p| p.eligible_leader_replicas == Some(Vec::new())));
            got.extend(t.partitions.iter().map(|p| (name.clone(), p.partition_index, p.leader_id.0, p.leader_epoch)));
        }
        assert!(r.topics.iter().map(|t| t.partitions.len()).sum::<usize>() <= 2, "the limit holds");
        match r.next_cursor {
            Some(n) => {
                cursor = Some(Cursor::default().with_topic_name(n.topic_name).with_partition_index(n.partition_index))
            }
            None => break,
        }
    }
    assert_eq!(got, want, "paging by cursor visits every partition once, in order");
    let named = |names: &[&str]| {
        DescribeTopicPartitionsRequest::default()
            .with_response_partition_limit(2000)
            .with_topics(names.iter().map(|n| TopicRequest::default().with_name(topic(n))).collect())
    };
    let r: DescribeTopicPartitionsResponse = c.call(0, &named(&["zstd", "nope", "bad name", "gzip"]));
    let answers: Vec<(String, i16, usize)> =
        r.topics.iter().map(|t| (t.name.as_ref().unwrap().to_string(), t.error_code, t.partitions.len())).collect();
    let expect = [("bad name", 17, 0), ("gzip", 0, 3), ("nope", 3, 0), ("zstd", 0, 3)];
    assert_eq!(answers, expect.map(|(n, e, p)| (n.to_string(), e, p)), "name order, the broker's errors");
    let bad = named(&["gzip"]).with_cursor(Some(Cursor::default().with_topic_name(topic("zstd"))));
    let r: DescribeTopicPartitionsResponse = c.call(0, &bad);
    assert_eq!(r.topics.iter().map(|t| t.error_code).collect::<Vec<_>>(), vec![42], "cursor topic not named");
    let bad =
        named(&["gzip"]).with_cursor(Some(Cursor::default().with_topic_name(topic("gzip")).with_partition_index(-1)));
    let r: DescribeTopicPartitionsResponse = c.call(0, &bad);
    assert_eq!(r.topics[0].error_code, 42, "negative cursor partition");

    // DescribeLogDirs: the one log dir, absolute, each partition's size its segment files'.
    let logdir = s.dir.path().join("logdir");
    for v in 1..=4 {
        let r: DescribeLogDirsResponse = c.call(v, &DescribeLogDirsRequest::default().with_topics(None));
        assert_eq!((r.error_code, r.results.len()), (0, 1), "v{v}");
        let d = &r.results[0];
        assert_eq!(d.log_dir.as_str(), logdir.to_str().unwrap());
        if v >= 4 {
            assert!(d.total_bytes > 0 && d.usable_bytes > 0 && d.usable_bytes <= d.total_bytes, "v4 volume sizes");
        }
        let mut listed = 0;
        for t in &d.topics {
            for p in &t.partitions {
                let dir = logdir.join(format!("{}-{}", t.name.as_str(), p.partition_index));
                let size: u64 = std::fs::read_dir(&dir)
                    .unwrap()
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .map(|e| e.metadata().unwrap().len())
                    .sum();
                assert_eq!((p.partition_size as u64, p.offset_lag, p.is_future_key), (size, 0, false), "{dir:?}");
                listed += 1;
            }
        }
        let dirs = std::fs::read_dir(&logdir).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
        assert_eq!(listed, dirs, "every partition folder");
    }
    let one = DescribeLogDirsRequest::default().with_topics(Some(vec![DescribableLogDirTopic::default()
        .with_topic(topic("gzip"))
        .with_partitions(vec![1, 7])]));
    let r: DescribeLogDirsResponse = c.call(4, &one);
    let only: Vec<(String, i32)> = r.results[0]
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.to_string(), p.partition_index)))
        .collect();
    assert_eq!(only, vec![("gzip".to_string(), 1)], "only what was asked, and only what is here");
}

#[test]
fn fetch_sessions_open_answer_only_news_and_refuse_stale_epochs() {
    let s = serve(&[]);
    let mut c = Client::connect(s.addr);
    let id = topic_id_of(&mut c, "plain");
    // A full fetch of all three partitions from their ends (epoch 0): a session is opened.
    let ends: Vec<i64> = (0..3)
        .map(|p| {
            let r: FetchResponse = c.call(12, &fetch_req("plain", id, p, 0, 0));
            r.responses[0].partitions[0].high_watermark
        })
        .collect();
    let mut full = fetch_req("plain", id, 0, ends[0], 0).with_session_epoch(0).with_max_wait_ms(200);
    full.topics[0].partitions = (0..3)
        .map(|p| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(ends[p as usize])
                .with_partition_max_bytes(1 << 20)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
        })
        .collect();
    for v in [12i16, 13, 17] {
        let t = Instant::now();
        let r: FetchResponse = c.call(v, &full);
        assert_eq!(r.error_code, 0, "v{v}");
        assert!(r.session_id > 0, "v{v}: a session id");
        assert_eq!(r.responses[0].partitions.len(), 3, "a full answer lists every partition");
        let session = r.session_id;
        // Epoch 1 with nothing new: a long poll that ends with no partitions at all.
        let inc = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(300)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_session_id(session)
            .with_session_epoch(1);
        let t1 = Instant::now();
        let r: FetchResponse = c.call(v, &inc);
        assert!(t1.elapsed() >= Duration::from_millis(250), "v{v}: the idle incremental fetch waited");
        assert_eq!(
            (r.error_code, r.session_id, r.responses.len()),
            (0, session, 0),
            "v{v}: nothing new, nothing listed"
        );
        // Epoch 2 moves partition 1 back to offset 0: only it is answered, with records.
        let mut back = inc.clone().with_session_epoch(2);
        let topic_entry = if v >= 13 {
            FetchTopic::default().with_topic_id(id)
        } else {
            FetchTopic::default().with_topic(topic("plain"))
        };
        back.topics = vec![topic_entry.with_partitions(vec![FetchPartition::default()
            .with_partition(1)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 20)
            .with_current_leader_epoch(-1)
            .with_log_start_offset(-1)])];
        let r: FetchResponse = c.call(v, &back);
        assert_eq!(r.responses.len(), 1, "v{v}");
        let listed: Vec<i32> = r.responses[0].partitions.iter().map(|p| p.partition_index).collect();
        assert_eq!(listed, vec![1], "v{v}: only the partition with records");
        assert!(r.responses[0].partitions[0].records.as_ref().is_some_and(|b| !b.is_empty()));
        // A replayed epoch, an unknown session, and a version switch are the broker's errors.
        let r: FetchResponse = c.call(v, &inc.clone().with_session_epoch(2));
        assert_eq!(r.error_code, 71, "v{v}: INVALID_FETCH_SESSION_EPOCH");
        let r: FetchResponse = c.call(v, &inc.clone().with_session_id(session ^ 0x55).with_session_epoch(3));
        assert_eq!(r.error_code, 70, "v{v}: FETCH_SESSION_ID_NOT_FOUND");
        let other = if v >= 13 { 12 } else { 13 };
        let r: FetchResponse = c.call(other, &inc.clone().with_session_epoch(3));
        assert_eq!(r.error_code, 106, "v{v}: FETCH_SESSION_TOPIC_ID_ERROR");
        // FINAL closes the session: its id is then unknown.
        let r: FetchResponse = c.call(v, &full.clone().with_session_id(session).with_session_epoch(-1));
        assert_eq!((r.error_code, r.session_id), (0, 0), "v{v}: a sessionless full answer");
        let r: FetchResponse = c.call(v, &inc.clone().with_session_epoch(3));
        assert_eq!(r.error_code, 70, "v{v}: closed");
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn an_evicted_fetch_session_is_unknown_and_huge_describe_configs_close() {
    let s = serve(&["--fetch-sessions-max", "1", "--partitions-per-request-max", "50"]);
    let mut c = Client::connect(s.addr);
    let id = topic_id_of(&mut c, "plain");
    let open = |parts: &[i32]| {
        let mut r = fetch_req("plain", id, 0, 0, 0).with_session_epoch(0);
        r.topics[0].partitions = parts
            .iter()
            .map(|&p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1024)
                    .with_current_leader_epoch(-1)
                    .with_log_start_offset(-1)
            })
            .collect();
        r
    };
    let a: FetchResponse = c.call(12, &open(&[0]));
    assert!(a.session_id > 0);
    // One slot: a session no larger than the cached one gets none; a larger one evicts it.
    let same: FetchResponse = c.call(12, &open(&[1]));
    assert_eq!(same.session_id, 0, "no room for an equal session");
    let b: FetchResponse = c.call(12, &open(&[0, 1, 2]));
    assert!(b.session_id > 0 && b.session_id != a.session_id);
    let inc = |session: i32| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_id(session)
            .with_session_epoch(1)
    };
    let r: FetchResponse = c.call(12, &inc(a.session_id));
    assert_eq!(r.error_code, 70, "the evicted session is unknown");
    let r: FetchResponse = c.call(12, &inc(b.session_id));
    assert_eq!((r.error_code, r.session_id), (0, b.session_id));
    // DescribeConfigs naming more resources than the request bound closes the connection.
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let many: Vec<DescribeConfigsResource> = (0..51)
        .map(|i| {
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(format!("t{i}")))
        })
        .collect();
    let f = c.frame(4, &DescribeConfigsRequest::default().with_resources(many));
    c.s.write_all(&f).unwrap();
    assert!(c.read_frame().is_err(), "closed");
}

#[test]
fn describe_log_dirs_lists_future_folders_as_the_broker_does() {
    // A move between log dirs in progress: the broker's `-future` folder of a partition beside
    // the live one. logferry does not serve it, but lists it with IsFutureKey and its size.
    let s = serve_with(&[], &[], |dir| {
        let future = dir.join("plain-0.0123456789abcdef0123456789abcdef-future");
        std::fs::create_dir(&future).unwrap();
        std::fs::write(future.join("00000000000000000000.log"), vec![0u8; 1234]).unwrap();
        std::fs::write(future.join("00000000000000000000.index"), vec![0u8; 99]).unwrap();
    });
    let mut c = Client::connect(s.addr);
    let r: DescribeLogDirsResponse = c.call(4, &DescribeLogDirsRequest::default().with_topics(None));
    let plain = r.results[0].topics.iter().find(|t| t.name.as_str() == "plain").expect("plain listed");
    let p0: Vec<(bool, i64)> = plain
        .partitions
        .iter()
        .filter(|p| p.partition_index == 0)
        .map(|p| (p.is_future_key, p.partition_size))
        .collect();
    assert_eq!(p0.len(), 2, "the live replica and the future one: {p0:?}");
    assert!(p0.contains(&(true, 1234)), "{p0:?}");
    assert!(p0.iter().any(|(f, size)| !f && *size > 0));
}
