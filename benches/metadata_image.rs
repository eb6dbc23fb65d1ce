//! Benchmark (not a test): the fleet's metadata image at 10,000 partitions (issue 13).
//!
//! A KRaft metadata log is synthesized in the broker's record format: 3 brokers, 1,000 topics of
//! 10 partitions (replication factor 2), 100 records a batch. Measured:
//! - *start-up*: `MetadataLog::open` of that log (the image built from nothing), best of 5;
//! - *follow*: 1,000 single-record batches (a PartitionChangeRecord moving a leader) appended
//!   one at a time, each followed by `refresh()`: the cost per change, median and p99;
//! - *Metadata*: the `logferry` binary on that metadata log answering Metadata v12 for every
//!   topic: time per request (median of 20, loopback, client-side) and response bytes.
//!
//! Targets from the issue: start-up <= 1 s, each change <= 100 us. Run:
//! `cargo bench --bench metadata_image` (`LOGFERRY_BENCH_PARTITIONS` to change the size).

#[path = "common.rs"]
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Instant;

use kafka_protocol::messages::MetadataRequest;
use logferry::cluster::MetadataLog;

fn uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    uvarint(out, s.len() as u64 + 1);
    out.extend_from_slice(s.as_bytes());
}

fn i32s(out: &mut Vec<u8>, v: &[i32]) {
    uvarint(out, v.len() as u64 + 1);
    for x in v {
        out.extend_from_slice(&x.to_be_bytes());
    }
}

fn envelope(api_key: u64, body: &[u8]) -> Vec<u8> {
    let mut v = vec![1];
    uvarint(&mut v, api_key);
    v.push(0); // version 0
    v.extend_from_slice(body);
    v
}

fn register_broker(id: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[id as u8; 16]);
    b.extend_from_slice(&i64::from(id).to_be_bytes());
    uvarint(&mut b, 2); // one endpoint
    cstr(&mut b, "PLAINTEXT");
    cstr(&mut b, "127.0.0.1");
    b.extend_from_slice(&(9000 + id as u16).to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.push(0);
    uvarint(&mut b, 1); // no features
    b.push(0); // rack null
    b.push(0); // not fenced
    b.push(0);
    envelope(0, &b)
}

fn topic_id(t: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(t as u64 + 1).to_be_bytes());
    id[15] = 7;
    id
}

fn topic(t: usize) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, &format!("topic-{t:05}"));
    b.extend_from_slice(&topic_id(t));
    b.push(0);
    envelope(2, &b)
}

fn partition(t: usize, p: i32) -> Vec<u8> {
    let (a, c) = (1 + p % 3, 1 + (p + 1) % 3);
    let mut b = Vec::new();
    b.extend_from_slice(&p.to_be_bytes());
    b.extend_from_slice(&topic_id(t));
    i32s(&mut b, &[a, c]);
    i32s(&mut b, &[a, c]);
    i32s(&mut b, &[]);
    i32s(&mut b, &[]);
    b.extend_from_slice(&a.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(0);
    envelope(3, &b)
}

fn leader_change(t: usize, p: i32, leader: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&p.to_be_bytes());
    b.extend_from_slice(&topic_id(t));
    b.push(1); // one tagged field
    b.push(1); // tag 1: Leader
    b.push(4);
    b.extend_from_slice(&leader.to_be_bytes());
    envelope(5, &b)
}

/// A magic 2 batch of `values` (null keys) at `base_offset`, CRC-32C set.
fn batch(base_offset: i64, values: &[Vec<u8>]) -> Vec<u8> {
    let mut records = Vec::new();
    for (i, v) in values.iter().enumerate() {
        common::put_record(i as i64, v, &mut records);
    }
    common::frame_batch(base_offset, values.len() as i32, &records)
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn main() {
    let partitions: usize =
        std::env::var("LOGFERRY_BENCH_PARTITIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let per_topic = 10usize;
    let topics = partitions.div_ceil(per_topic);
    let tmp = std::env::temp_dir().join(format!("logferry-bench-metadata-{}", std::process::id()));
    let dir = tmp.join("__cluster_metadata-0");
    std::fs::create_dir_all(&dir).unwrap();
    let mut values: Vec<Vec<u8>> = (1..=3).map(register_broker).collect();
    for t in 0..topics {
        values.push(topic(t));
        for p in 0..per_topic as i32 {
            values.push(partition(t, p));
        }
    }
    let mut log = Vec::new();
    let mut offset = 0i64;
    for chunk in values.chunks(100) {
        log.extend(batch(offset, chunk));
        offset += chunk.len() as i64;
    }
    let path = dir.join("00000000000000000000.log");
    std::fs::write(&path, &log).unwrap();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        let m = MetadataLog::open(&dir).unwrap();
        best = best.min(t0.elapsed().as_secs_f64());
        assert_eq!(m.image.partition_count(), topics * per_topic);
    }
    println!(
        "metadata_image start-up: {} partitions, {} records, {:.1} MiB log: {:.1} ms (best of 5; target <= 1000 ms)",
        topics * per_topic,
        values.len(),
        log.len() as f64 / (1 << 20) as f64,
        best * 1e3
    );

    let mut m = MetadataLog::open(&dir).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    let mut per_change = Vec::new();
    for i in 0..1000usize {
        let b = batch(offset, &[leader_change(i % topics, (i % per_topic) as i32, 1 + (i % 3) as i32)]);
        offset += 1;
        f.write_all(&b).unwrap();
        let t0 = Instant::now();
        assert!(m.refresh().unwrap());
        per_change.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    per_change.sort_by(f64::total_cmp);
    println!(
        "metadata_image follow: 1000 changes, one batch each: median {:.1} us, p99 {:.1} us per refresh (target <= 100 us)",
        pct(&per_change, 0.5),
        pct(&per_change, 0.99)
    );

    let logdir = tmp.join("logdir");
    std::fs::create_dir_all(&logdir).unwrap();
    let (mut child, addr) = common::spawn_logferry(&[
        "--log-dir",
        logdir.to_str().unwrap(),
        "--metadata-log-dir",
        tmp.to_str().unwrap(),
        "--node-id",
        "1",
        "--peer-port",
        "9192",
    ]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let mut times = Vec::new();
    let mut bytes = 0;
    for corr in 0..21 {
        let frame = common::request_frame(3, 12, 2, corr, &MetadataRequest::default().with_topics(None));
        let t0 = Instant::now();
        s.write_all(&frame).unwrap();
        bytes = common::read_response(&mut s, &mut buf);
        if corr > 0 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "metadata_image Metadata v12, all {} topics / {} partitions: median {:.2} ms, p99 {:.2} ms per request, {} response bytes",
        topics,
        topics * per_topic,
        pct(&times, 0.5),
        pct(&times, 0.99),
        bytes
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&tmp);
}
