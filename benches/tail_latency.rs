//! Benchmark (not a test): tail latency, from a batch's append to a long-polling consumer
//! receiving it through `logferry serve` (visibility log-end, inotify wake-up).
//!
//! A writer thread appends one small batch every `LOGFERRY_BENCH_INTERVAL_US` (default 1000 µs)
//! to the active segment of a fresh log dir, stamping each just before its `write`; a consumer
//! thread in the same process long-polls (Fetch v12, min_bytes 1, max_wait 500 ms) and records
//! when each batch arrived. Both use the same monotonic clock. Reports p50/p99/p99.9/max over
//! `LOGFERRY_BENCH_BATCHES` batches (default 5000).
//!
//! Run: `cargo bench --bench tail_latency`.

#[path = "common.rs"]
mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let count: i64 = std::env::var("LOGFERRY_BENCH_BATCHES").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let interval = Duration::from_micros(
        std::env::var("LOGFERRY_BENCH_INTERVAL_US").ok().and_then(|s| s.parse().ok()).unwrap_or(1000),
    );
    let tmp = tempfile::tempdir().unwrap();
    let pdir = tmp.path().join("tail-0");
    std::fs::create_dir_all(&pdir).unwrap();
    let seg = pdir.join("00000000000000000000.log");
    std::fs::write(&seg, common::batch(0, 1, 16, b'x')).unwrap();
    let (mut child, addr) =
        common::spawn_logferry(&["--log-dir", tmp.path().to_str().unwrap(), "--visibility", "log-end"]);

    let written: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let consumer = {
        let addr = addr.clone();
        let written = Arc::clone(&written);
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_nodelay(true).unwrap();
            let mut next = 1i64;
            let mut corr = 0;
            let mut lat = Vec::with_capacity(count as usize);
            let mut buf = Vec::new();
            while next <= count {
                corr += 1;
                s.write_all(&common::fetch_frame("tail", 0, next, 1 << 20, 500, corr)).unwrap();
                let mut size = [0u8; 4];
                s.read_exact(&mut size).unwrap();
                let n = i32::from_be_bytes(size) as usize;
                buf.resize(n, 0);
                s.read_exact(&mut buf[..n]).unwrap();
                let now = Instant::now();
                let recs = common::records_of_v12(&buf[..n], corr);
                let mut pos = 0;
                while pos + 12 <= recs.len() {
                    let base = i64::from_be_bytes(recs[pos..pos + 8].try_into().unwrap());
                    let len = i32::from_be_bytes(recs[pos + 8..pos + 12].try_into().unwrap()) as usize;
                    if pos + 12 + len > recs.len() {
                        break;
                    }
                    if base >= next {
                        if let Some(t) = written.lock().unwrap().get(&base) {
                            lat.push(now.duration_since(*t));
                        }
                        next = base + 1;
                    }
                    pos += 12 + len;
                }
            }
            lat
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    let start = Instant::now();
    for offset in 1..=count {
        let due = start + interval * (offset as u32);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let b = common::batch(offset, 1, 16, b'x');
        // Stamped just before the write, so the consumer can never see the batch unstamped.
        written.lock().unwrap().insert(offset, Instant::now());
        f.write_all(&b).unwrap();
    }
    let mut lat = consumer.join().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    lat.sort();
    println!(
        "tail latency over {} batches, one every {:?}: p50 {:?} p99 {:?} p99.9 {:?} max {:?}",
        lat.len(),
        interval,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        lat.last().copied().unwrap_or_default()
    );
}
