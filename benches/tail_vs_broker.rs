//! Benchmark (not a test): tail latency through a real broker, compared with logferry tailing
//! the same broker's log directory, in the same run and for the same records.
//!
//! A producer thread sends one single-record batch every INTERVAL_US with Produce v9 (acks=1) to
//! the broker; each record's value is its sequence number, and the producer stamps the time
//! just before sending. Two consumers long-poll the end of the partition (Fetch v12, min_bytes
//! 1, max_wait 500 ms): one on the broker itself, one on logferry. Each records, per sequence
//! number, when the record arrived. Reported: p50/p99/p99.9/max of send-to-receipt for each,
//! and logferry's ratio to the broker. logferry should run with `--visibility log-end` here
//! (with `checkpoint` its latency is bounded below by the broker's high-watermark checkpoint
//! interval instead).
//!
//! Run: `cargo bench --bench tail_vs_broker -- BROKER FERRY TOPIC START_OFFSET [COUNT] [INTERVAL_US]`
//! (the topic has one partition; START_OFFSET is its current end). `benches/vs_broker.py` runs it.

#[path = "common.rs"]
mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

/// Where a single-record batch built by [`record_batch`] keeps its 8-byte value.
const VALUE_AT: usize = 61 + 6;

/// One record whose value is `seq` (8 bytes), in a magic 2 batch with a valid CRC.
fn record_batch(seq: u64) -> Vec<u8> {
    let mut b = common::batch(0, 1, 8, 0);
    b[VALUE_AT..VALUE_AT + 8].copy_from_slice(&seq.to_be_bytes());
    // Current timestamps (first and max), so retention by time never applies to the topic.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    b[27..35].copy_from_slice(&now_ms.to_be_bytes());
    b[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Long-polls `topic`/0 from `offset` until `count` records arrived; (seq, arrival) pairs.
fn tail(addr: String, topic: String, mut offset: i64, count: usize) -> Vec<(u64, Instant)> {
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut got = Vec::with_capacity(count);
    let mut buf = Vec::new();
    let mut corr = 0;
    while got.len() < count {
        corr += 1;
        s.write_all(&common::fetch_frame(&topic, 0, offset, 1 << 20, 500, corr)).unwrap();
        let n = common::read_response(&mut s, &mut buf);
        let now = Instant::now();
        let recs = common::records_of_v12(&buf[..n], corr);
        common::each_batch(recs, |pos, base| {
            if base >= offset {
                let seq = u64::from_be_bytes(recs[pos + VALUE_AT..pos + VALUE_AT + 8].try_into().unwrap());
                got.push((seq, now));
                offset = base + 1;
            }
        });
    }
    got
}

fn percentiles(mut v: Vec<Duration>) -> [Duration; 4] {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    [at(0.5), at(0.99), at(0.999), *v.last().unwrap()]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.len() < 4 {
        eprintln!("usage: tail_vs_broker BROKER FERRY TOPIC START_OFFSET [COUNT] [INTERVAL_US]");
        std::process::exit(2);
    }
    let (broker, ferry, topic) = (args[0].clone(), args[1].clone(), args[2].clone());
    let start: i64 = args[3].parse().expect("start offset");
    let count: usize = args.get(4).map_or(3000, |s| s.parse().expect("count"));
    let interval = Duration::from_micros(args.get(5).map_or(1000, |s| s.parse().expect("interval")));
    let consumers: Vec<_> = [broker.clone(), ferry]
        .into_iter()
        .map(|addr| {
            let topic = topic.clone();
            std::thread::spawn(move || tail(addr, topic, start, count))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let mut s = TcpStream::connect(&broker).unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let t0 = Instant::now();
    for seq in 0..count as u64 {
        let due = t0 + interval * (seq as u32);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let req = ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.clone()))).with_partition_data(
                vec![PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(record_batch(seq))))],
            ),
        ]);
        let frame = common::request_frame(0, 9, 2, seq as i32 + 1, &req);
        sent.lock().unwrap().insert(seq, Instant::now());
        s.write_all(&frame).unwrap();
        let n = common::read_response(&mut s, &mut buf);
        let mut body = Bytes::copy_from_slice(&buf[..n]);
        let _ = ResponseHeader::decode(&mut body, 1).unwrap();
        let r = ProduceResponse::decode(&mut body, 9).unwrap();
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "produce failed");
    }
    let sent = sent.lock().unwrap().clone();
    let names = ["broker", "logferry"];
    let mut p50s = Vec::new();
    for (name, h) in names.iter().zip(consumers) {
        let got = h.join().unwrap();
        let lat: Vec<Duration> =
            got.iter().filter_map(|(seq, at)| sent.get(seq).map(|t| at.duration_since(*t))).collect();
        let [p50, p99, p999, max] = percentiles(lat);
        println!(
            "{name}: {} records, one every {interval:?}: p50 {p50:?} p99 {p99:?} p99.9 {p999:?} max {max:?}",
            got.len()
        );
        p50s.push((p50, p99));
    }
    println!(
        "logferry/broker: p50 {:.2}x p99 {:.2}x",
        p50s[1].0.as_secs_f64() / p50s[0].0.as_secs_f64(),
        p50s[1].1.as_secs_f64() / p50s[0].1.as_secs_f64()
    );
}
