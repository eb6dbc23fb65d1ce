//! Benchmark (not a test): the cost of finding a fetch position as the active segment grows
//! (issue 11 §3).
//!
//! One partition's active segment is grown with small batches (one record of 16 bytes, 85 bytes
//! a batch) up to `LOGFERRY_BENCH_SEGMENT_MIB` (default 1024), with a broker-like `.index`
//! (an entry every 4 KiB) or none (`LOGFERRY_BENCH_INDEX=0|1`, default: both runs). At each
//! size step the server's CPU time per Fetch (from `/proc/<pid>/schedstat`, nanoseconds) is
//! measured for two consumers:
//! - *tail*: at the end; one batch is appended, the consumer's long poll returns it (the
//!   pattern of a consumer following a producer of small batches);
//! - *seek*: Fetches at offsets spread over the whole segment (a lagging consumer, a restart
//!   from a committed offset), each a cold lookup for the position.
//!
//! The claim is flatness: the per-Fetch CPU at 1 GiB over that at the first step. Run:
//! `cargo bench --bench position_lookup`; `LOGFERRY_BENCH_BIN=path` measures another build.

#[path = "common.rs"]
mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const VALUE_BYTES: usize = 16;

fn cpu_ns(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

/// Appends batches for offsets `from..to` to the segment (and index entries every 4 KiB).
fn grow(
    log: &mut std::fs::File,
    index: Option<&mut std::fs::File>,
    pos: &mut u64,
    last_indexed: &mut u64,
    from: i64,
    to: i64,
) {
    let template = common::batch(0, 1, VALUE_BYTES, b'v');
    let mut buf = Vec::with_capacity(8 << 20);
    let mut idx = Vec::new();
    for o in from..to {
        let mut b = template.clone();
        b[0..8].copy_from_slice(&o.to_be_bytes());
        // The CRC covers [21, end), which holds no offset: the template's stays valid.
        if *pos >= *last_indexed + 4096 {
            idx.extend_from_slice(&(o as u32).to_be_bytes());
            idx.extend_from_slice(&(*pos as u32).to_be_bytes());
            *last_indexed = *pos;
        }
        *pos += b.len() as u64;
        buf.extend_from_slice(&b);
        if buf.len() >= 8 << 20 {
            log.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    log.write_all(&buf).unwrap();
    if let Some(index) = index {
        index.write_all(&idx).unwrap();
    }
}

/// One Fetch; the offset after the returned batches and the partition's last stable offset.
fn fetch_lso(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    corr: &mut i32,
    offset: i64,
    max_wait_ms: i32,
) -> Option<(i64, i64)> {
    *corr += 1;
    s.write_all(&common::fetch_frame("grow", 0, offset, 4096, max_wait_ms, *corr)).unwrap();
    let n = common::read_response(s, buf);
    // One topic, one partition: its error code sits right after the partition index
    // (corr 4, tags 1, throttle 4, error 2, session 4, topics 1, name 1+4, partitions 1, index 4).
    let at = 4 + 1 + 4 + 2 + 4 + 1 + 1 + "grow".len() + 1 + 4;
    if i16::from_be_bytes([buf[at], buf[at + 1]]) != 0 {
        return None; // not walked that far yet (OFFSET_OUT_OF_RANGE)
    }
    let lso = i64::from_be_bytes(buf[at + 10..at + 18].try_into().unwrap());
    Some((common::next_offset(common::records_of_v12(&buf[..n], *corr))?, lso))
}

fn fetch_one(s: &mut TcpStream, buf: &mut Vec<u8>, corr: &mut i32, offset: i64, max_wait_ms: i32) -> Option<i64> {
    fetch_lso(s, buf, corr, offset, max_wait_ms).map(|(next, _)| next)
}

fn run(with_index: bool, segment_mib: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let pdir = tmp.path().join("grow-0");
    std::fs::create_dir_all(&pdir).unwrap();
    let log_path = pdir.join("00000000000000000000.log");
    let mut log = OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
    let mut index = with_index
        .then(|| OpenOptions::new().create(true).append(true).open(pdir.join("00000000000000000000.index")).unwrap());
    let mut pos = 0u64;
    let mut last_indexed = 0u64;
    let mut end = 0i64;
    let batch_bytes = common::batch(0, 1, VALUE_BYTES, b'v').len() as u64;
    grow(&mut log, index.as_mut(), &mut pos, &mut last_indexed, 0, 1000);
    end += 1000;
    let (mut child, addr) =
        common::spawn_logferry(&["--log-dir", tmp.path().to_str().unwrap(), "--visibility", "log-end"]);
    let pid = child.id();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let mut corr = 0;
    println!("index={} segment_mib tail_cpu_us_per_fetch seek_cpu_us_per_fetch", if with_index { "yes" } else { "no" });
    let mut first: Option<(f64, f64)> = None;
    let mut step_mib = 16u64;
    while step_mib <= segment_mib {
        let target = (step_mib << 20) / batch_bytes;
        grow(&mut log, index.as_mut(), &mut pos, &mut last_indexed, end, target as i64);
        end = target as i64;
        // Wait until logferry has walked it all (a fetch at the last offset returns it) and its
        // transaction walk, bounded per request, has caught up with the bulk append (the last
        // stable offset reaches the end): what is measured is the steady state of a tail.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut catch_up = 0;
        while fetch_lso(&mut s, &mut buf, &mut corr, end - 1, 100) != Some((end, end)) {
            catch_up += 1;
            assert!(Instant::now() < deadline, "logferry did not reach offset {end}");
        }
        // Tail: append one batch, long-poll for it, 500 times.
        let rounds = 500;
        let cpu0 = cpu_ns(pid);
        for _ in 0..rounds {
            grow(&mut log, index.as_mut(), &mut pos, &mut last_indexed, end, end + 1);
            let got = fetch_one(&mut s, &mut buf, &mut corr, end, 500);
            assert_eq!(got, Some(end + 1));
            end += 1;
        }
        let tail = (cpu_ns(pid) - cpu0) as f64 / 1e3 / f64::from(rounds);
        // Seek: 500 fetches at offsets spread over the segment.
        let cpu0 = cpu_ns(pid);
        for i in 0..rounds {
            let o = (end - 1) * i64::from(i) / i64::from(rounds);
            assert_eq!(fetch_one(&mut s, &mut buf, &mut corr, o, 0).map(|n| n > o), Some(true));
        }
        let seek = (cpu_ns(pid) - cpu0) as f64 / 1e3 / f64::from(rounds);
        let (t0, s0) = *first.get_or_insert((tail, seek));
        println!(
            "index={} {step_mib} {tail:.1} {seek:.1}   (x{:.2} x{:.2} of the first step; {catch_up} requests to catch up)",
            if with_index { "yes" } else { "no" },
            tail / t0,
            seek / s0
        );
        step_mib *= 4;
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let segment_mib: u64 =
        std::env::var("LOGFERRY_BENCH_SEGMENT_MIB").ok().and_then(|s| s.parse().ok()).unwrap_or(1024);
    match std::env::var("LOGFERRY_BENCH_INDEX").ok().as_deref() {
        Some("0") => run(false, segment_mib),
        Some("1") => run(true, segment_mib),
        _ => {
            run(false, segment_mib);
            run(true, segment_mib);
        }
    }
}
