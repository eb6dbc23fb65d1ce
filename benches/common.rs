#![allow(dead_code)] // shared by several bench binaries; each uses part of it
//! Shared by the benchmarks: a consumer that speaks Fetch v12 like a real one (sequential
//! offsets, whole batches, a request only after the previous answer) and discards the record
//! bytes, so what is measured is the server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

/// An unsigned varint (Kafka's compact lengths) at `at`, advancing it.
pub fn uvarint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let x = b[*at];
        *at += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// The record bytes of a one-topic, one-partition Fetch v12 response, without copying them
/// (a consumer's decoder would look at them in place too).
pub fn records_of_v12(b: &[u8], corr: i32) -> &[u8] {
    assert_eq!(i32::from_be_bytes(b[0..4].try_into().unwrap()), corr);
    let mut at = 4 + 1 + 4; // correlation id, header tags, throttle
    assert_eq!(i16::from_be_bytes(b[at..at + 2].try_into().unwrap()), 0, "top-level error");
    at += 2 + 4; // error code, session id
    assert_eq!(uvarint(b, &mut at), 2, "one topic");
    let name = uvarint(b, &mut at) as usize - 1;
    at += name;
    assert_eq!(uvarint(b, &mut at), 2, "one partition");
    at += 4;
    assert_eq!(i16::from_be_bytes(b[at..at + 2].try_into().unwrap()), 0, "partition error");
    at += 2 + 8 + 8 + 8; // error, high watermark, last stable, log start
    let aborted = uvarint(b, &mut at);
    assert_eq!(aborted, 0, "read_uncommitted: null aborted list");
    at += 4; // preferred read replica
    let len = uvarint(b, &mut at) as usize - 1;
    &b[at..at + len]
}

fn put_varint(v: i64, out: &mut Vec<u8>) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// A magic 2, uncompressed batch of `count` records, each a null key and `value_len` bytes of
/// `fill`, timestamps one millisecond apart, with a correct CRC-32C.
pub fn batch(base_offset: i64, count: i32, value_len: usize, fill: u8) -> Vec<u8> {
    let mut records = Vec::with_capacity(count as usize * (value_len + 16));
    let value = vec![fill; value_len];
    for i in 0..i64::from(count) {
        put_record(i, &value, &mut records);
    }
    frame_batch(base_offset, count, &records)
}

/// Appends one record: null key, `value`, no headers, timestamp and offset delta `i`.
pub fn put_record(i: i64, value: &[u8], records: &mut Vec<u8>) {
    let mut body = vec![0u8];
    put_varint(i, &mut body); // timestamp delta
    put_varint(i, &mut body); // offset delta
    put_varint(-1, &mut body); // null key
    put_varint(value.len() as i64, &mut body);
    body.extend_from_slice(value);
    put_varint(0, &mut body); // no headers
    put_varint(body.len() as i64, records);
    records.extend(body);
}

/// The 61-byte magic 2 header (no producer, attributes 0) around `count` encoded `records`,
/// with its CRC-32C.
pub fn frame_batch(base_offset: i64, count: i32, records: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(records.len() + 61);
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&(1_700_000_000_000i64 + i64::from(count) - 1).to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// One whole request frame (size prefix included) as a client encodes it.
pub fn request_frame<R: Encodable>(key: i16, version: i16, header_version: i16, corr: i32, req: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut b = BytesMut::new();
    header.encode(&mut b, header_version).unwrap();
    req.encode(&mut b, version).unwrap();
    let mut frame = (b.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&b);
    frame
}

/// Reads one response frame into `buf` (grown as needed, reused); its length.
pub fn read_response<S: Read + ?Sized>(s: &mut S, buf: &mut Vec<u8>) -> usize {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let n = i32::from_be_bytes(size) as usize;
    if buf.len() < n {
        buf.resize(n, 0);
    }
    s.read_exact(&mut buf[..n]).unwrap();
    n
}

/// Calls `each(position, base_offset)` for every whole batch in `recs`.
pub fn each_batch(recs: &[u8], mut each: impl FnMut(usize, i64)) {
    let mut pos = 0usize;
    while pos + 12 <= recs.len() {
        let base = i64::from_be_bytes(recs[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(recs[pos + 8..pos + 12].try_into().unwrap()) as usize;
        if pos + 12 + len > recs.len() {
            break;
        }
        each(pos, base);
        pos += 12 + len;
    }
}

/// One whole Fetch v12 request frame (size prefix included) for one partition.
pub fn fetch_frame(
    topic: &str,
    partition: i32,
    offset: i64,
    partition_max_bytes: i32,
    max_wait_ms: i32,
    corr: i32,
) -> Vec<u8> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)])]);
    request_frame(1, 12, 2, corr, &req)
}

/// Starts the `logferry` binary of this build with `args` (plus `--listen 127.0.0.1:0`) and
/// returns it with the address from its start-up line; its stderr is drained in the background.
pub fn spawn_logferry(args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    // The offsets store's state dir: a fresh one per run (the process holds a lock on it).
    let state = std::env::temp_dir().join(format!("logferry-bench-state-{}", std::process::id()));
    // LOGFERRY_BENCH_BIN measures another build the same way (a before/after figure).
    let bin = std::env::var("LOGFERRY_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_logferry").to_string());
    let mut child = std::process::Command::new(bin)
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .args(["--state-dir".as_ref(), state.as_os_str()])
        .env("RUST_LOG", "warn,logferry::cli=info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("logferry exited").unwrap();
        if let Some(rest) = line.split("serving on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// The SASL/PLAIN user of the benchmarks' SASL listeners (`NAME=PASSWORD`).
pub const SASL_USER_LINE: &str = "bench=bench-secret";

/// A client connection: TCP, or TLS over it.
pub trait Stream: Read + Write + Send {}
impl<S: Read + Write + Send> Stream for S {}

/// A rustls client trusting the PEM CA file in `LOGFERRY_BENCH_TLS_CA`.
fn tls_client(tcp: TcpStream) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use std::sync::Arc;
    let ca = std::env::var("LOGFERRY_BENCH_TLS_CA").expect("a TLS address needs LOGFERRY_BENCH_TLS_CA (a PEM CA file)");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_file_iter(&ca).expect("CA file") {
        roots.add(cert.expect("CA certificate")).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Connects to `addr`: `HOST:PORT` (PLAINTEXT), or `SSL://`, `SASL_PLAINTEXT://` or
/// `SASL_SSL://HOST:PORT` as the start-up line names listeners. TLS trusts
/// `LOGFERRY_BENCH_TLS_CA` (server name localhost); SASL authenticates with SaslHandshake v1
/// and SaslAuthenticate v2 (PLAIN as [`SASL_USER_LINE`]), as a Java client does.
pub fn connect(addr: &str) -> Box<dyn Stream> {
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    let mut s = connect_raw(addr);
    if addr.starts_with("SASL_") {
        let mut buf = Vec::new();
        let hs = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        s.write_all(&request_frame(17, 1, 1, 1, &hs)).unwrap();
        let n = read_response(&mut s, &mut buf);
        assert_eq!(&buf[4..6.min(n)], &[0, 0], "SaslHandshake refused");
        let (user, password) = SASL_USER_LINE.split_once('=').unwrap();
        let token = format!("\0{user}\0{password}");
        let auth = SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(token.into_bytes()));
        s.write_all(&request_frame(36, 2, 2, 2, &auth)).unwrap();
        let n = read_response(&mut s, &mut buf);
        // correlation id, empty tagged fields, then the error code.
        assert_eq!(&buf[5..7.min(n)], &[0, 0], "SaslAuthenticate refused");
    }
    s
}

/// The connection of [`connect`] before any SASL exchange: TCP, with TLS on `SSL://` and
/// `SASL_SSL://`.
pub fn connect_raw(addr: &str) -> Box<dyn Stream> {
    let (protocol, hostport) = addr.split_once("://").unwrap_or(("PLAINTEXT", addr));
    let tcp = TcpStream::connect(hostport).unwrap();
    tcp.set_nodelay(true).unwrap();
    match protocol {
        "SSL" | "SASL_SSL" => Box::new(tls_client(tcp)),
        _ => Box::new(tcp),
    }
}

/// A consumer: sequential Fetch v12 from offset 0 to `end`, record bytes discarded.
pub fn consume(addr: &str, topic: &str, partition: i32, end: i64, partition_max_bytes: i32) -> (f64, u64) {
    let mut s = connect(addr);
    let mut offset = 0i64;
    let mut bytes = 0u64;
    let mut corr = 0;
    let mut buf: Vec<u8> = Vec::new();
    let t = Instant::now();
    while offset < end {
        corr += 1;
        let frame = fetch_frame(topic, partition, offset, partition_max_bytes, 500, corr);
        s.write_all(&frame).unwrap();
        let n = read_response(&mut s, &mut buf);
        let recs = records_of_v12(&buf[..n], corr);
        bytes += recs.len() as u64;
        // Whole batches only (a partial trailing batch is refetched), as consumers do.
        offset = next_offset(recs).unwrap_or_else(|| panic!("no complete batch at offset {offset}"));
    }
    (t.elapsed().as_secs_f64(), bytes)
}

/// Offset after the last whole batch in `recs` (`None` when it holds no whole batch).
pub fn next_offset(recs: &[u8]) -> Option<i64> {
    let mut next = None;
    each_batch(recs, |pos, base| {
        let delta = i32::from_be_bytes(recs[pos + 23..pos + 27].try_into().unwrap());
        next = Some(base + i64::from(delta) + 1);
    });
    next
}

fn skip_tags(b: &[u8], at: &mut usize) {
    for _ in 0..uvarint(b, at) {
        let _tag = uvarint(b, at);
        let size = uvarint(b, at) as usize;
        *at += size;
    }
}

/// Walks a Fetch v12 response of any number of topics and partitions in place (no decoding
/// into structures, no copies) and calls `each(partition, high_watermark, records)`.
pub fn each_partition_v12(b: &[u8], corr: i32, mut each: impl FnMut(i32, i64, &[u8])) {
    assert_eq!(i32::from_be_bytes(b[0..4].try_into().unwrap()), corr);
    let mut at = 4 + 1 + 4; // correlation id, header tags, throttle
    assert_eq!(i16::from_be_bytes(b[at..at + 2].try_into().unwrap()), 0, "top-level error");
    at += 2 + 4; // error code, session id
    for _ in 0..uvarint(b, &mut at).saturating_sub(1) {
        let name = uvarint(b, &mut at) as usize - 1;
        at += name;
        for _ in 0..uvarint(b, &mut at).saturating_sub(1) {
            let partition = i32::from_be_bytes(b[at..at + 4].try_into().unwrap());
            at += 4;
            assert_eq!(i16::from_be_bytes(b[at..at + 2].try_into().unwrap()), 0, "partition {partition} error");
            at += 2;
            let hw = i64::from_be_bytes(b[at..at + 8].try_into().unwrap());
            at += 8 + 8 + 8; // high watermark, last stable, log start
            for _ in 0..uvarint(b, &mut at).saturating_sub(1) {
                at += 16; // aborted transaction: producer id, first offset
                skip_tags(b, &mut at);
            }
            at += 4; // preferred read replica
            let len = (uvarint(b, &mut at) as usize).saturating_sub(1);
            each(partition, hw, &b[at..at + len]);
            at += len;
            skip_tags(b, &mut at);
        }
        skip_tags(b, &mut at);
    }
}

/// A consumer assigned partitions 0..`partitions` of `topic`: every Fetch v12 names all of them
/// (like a consumer whose assignment spans them, no fetch sessions), `partition_max_bytes` each
/// and 50 MiB per response, until every partition is read up to the high watermark the server
/// reports. The response is walked in place in one reused buffer. Returns (seconds, record bytes).
pub fn consume_all(addr: &str, topic: &str, partitions: i32, partition_max_bytes: i32) -> (f64, u64) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut offsets = vec![0i64; partitions as usize];
    let mut hw = vec![i64::MAX; partitions as usize];
    let mut bytes = 0u64;
    let mut corr = 0;
    let mut buf: Vec<u8> = Vec::new();
    let t = Instant::now();
    while offsets.iter().zip(&hw).any(|(o, h)| o < h) {
        corr += 1;
        let parts = (0..partitions)
            .filter(|&p| offsets[p as usize] < hw[p as usize])
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offsets[p as usize])
                    .with_partition_max_bytes(partition_max_bytes)
                    .with_current_leader_epoch(-1)
                    .with_log_start_offset(-1)
            })
            .collect();
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(parts)]);
        s.write_all(&request_frame(1, 12, 2, corr, &req)).unwrap();
        let n = read_response(&mut s, &mut buf);
        each_partition_v12(&buf[..n], corr, |p, high_watermark, recs| {
            let i = p as usize;
            hw[i] = high_watermark;
            bytes += recs.len() as u64;
            if let Some(next) = next_offset(recs) {
                offsets[i] = next;
            }
        });
    }
    (t.elapsed().as_secs_f64(), bytes)
}
