//! Idle long polls with and without incremental fetch sessions (KIP-227), same run (not a
//! test). logferry serves one topic of LOGFERRY_BENCH_PARTITIONS partitions (default 1000), one
//! batch each; one consumer sits at every partition's end and long-polls (Fetch v12, max_wait_ms
//! LOGFERRY_BENCH_WAIT_MS, default 20) LOGFERRY_BENCH_POLLS times (default 300) per mode:
//!
//! - sessionless: every request names all partitions (SessionEpoch −1), every answer lists them;
//! - sessions: one full fetch opens a session (epoch 0), then each poll is an incremental fetch
//!   naming no partition (epoch 1, 2, ...), answered with none, as the Java consumer does.
//!
//! Reported per idle poll: request bytes, response bytes, server CPU (user + system from /proc,
//! over all polls of the mode) and the same net of the server's idle CPU (its periodic rescan of
//! the log dir, measured over an equally long pause after each mode), and the ratios. Modes alternate over LOGFERRY_BENCH_ROUNDS rounds
//! (default 3); medians. Run: `cargo bench --bench fetch_sessions`.

#[path = "common.rs"]
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Instant;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn request(partitions: i32, wait_ms: i32, session: (i32, i32), all: bool) -> FetchRequest {
    let parts = if all {
        (0..partitions)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(1)
                    .with_partition_max_bytes(1 << 20)
                    .with_current_leader_epoch(-1)
                    .with_log_start_offset(-1)
            })
            .collect()
    } else {
        Vec::new()
    };
    let topics = if all {
        vec![FetchTopic::default().with_topic(TopicName(StrBytes::from_static_str("many"))).with_partitions(parts)]
    } else {
        Vec::new()
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_id(session.0)
        .with_session_epoch(session.1)
        .with_topics(topics)
}

/// (request bytes, response bytes, server CPU µs, the same net of idle CPU) per poll.
fn run(addr: &str, pid: u32, partitions: i32, polls: u64, wait_ms: i32, sessions: bool) -> (f64, f64, f64, f64) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let mut corr = 1;
    let mut session = (0, -1);
    if sessions {
        s.write_all(&common::request_frame(1, 12, 2, corr, &request(partitions, 0, (0, 0), true))).unwrap();
        let n = common::read_response(&mut s, &mut buf);
        assert!(n >= 15, "a Fetch answer");
        // correlation id, header tags, throttle, error code, then the session id.
        let id = i32::from_be_bytes(buf[11..15].try_into().unwrap());
        assert!(id > 0, "logferry opened a session");
        session = (id, 1);
        corr += 1;
    }
    let (mut req_bytes, mut resp_bytes) = (0u64, 0u64);
    let c0 = cpu_seconds(pid);
    let t = Instant::now();
    for _ in 0..polls {
        let frame = common::request_frame(1, 12, 2, corr, &request(partitions, wait_ms, session, !sessions));
        s.write_all(&frame).unwrap();
        req_bytes += frame.len() as u64;
        let n = common::read_response(&mut s, &mut buf);
        assert_eq!(i16::from_be_bytes([buf[9], buf[10]]), 0, "no top-level error");
        resp_bytes += n as u64 + 4;
        corr += 1;
        if sessions {
            session.1 += 1;
        }
    }
    let cpu_us = (cpu_seconds(pid) - c0) * 1e6;
    // The idle baseline over as long a pause.
    let pause = t.elapsed();
    let i0 = cpu_seconds(pid);
    std::thread::sleep(pause);
    let idle_us = (cpu_seconds(pid) - i0) * 1e6;
    let p = polls as f64;
    (req_bytes as f64 / p, resp_bytes as f64 / p, cpu_us / p, (cpu_us - idle_us).max(0.0) / p)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let partitions = env("LOGFERRY_BENCH_PARTITIONS", 1000) as i32;
    let polls = env("LOGFERRY_BENCH_POLLS", 300);
    let wait_ms = env("LOGFERRY_BENCH_WAIT_MS", 20) as i32;
    let rounds = env("LOGFERRY_BENCH_ROUNDS", 3);
    let tmp = tempfile::tempdir().unwrap();
    for p in 0..partitions {
        let dir = tmp.path().join(format!("many-{p}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), common::batch(0, 1, 16, b'x')).unwrap();
    }
    let (mut child, addr) =
        common::spawn_logferry(&["--log-dir", tmp.path().to_str().unwrap(), "--visibility", "log-end"]);
    let pid = child.id();
    run(&addr, pid, partitions, 20, 0, false); // warm-up: every partition scanned once
    let mut results: [Vec<(f64, f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
    // LOGFERRY_BENCH_ONLY=sessions (or sessionless) runs one mode alone, for a profiler.
    let only = std::env::var("LOGFERRY_BENCH_ONLY").ok();
    for _ in 0..rounds {
        for (i, sessions) in [false, true].into_iter().enumerate() {
            let name = if sessions { "sessions" } else { "sessionless" };
            if only.as_deref().is_some_and(|o| o != name) {
                results[i].push((1.0, 1.0, 1.0, 1.0));
                continue;
            }
            results[i].push(run(&addr, pid, partitions, polls, wait_ms, sessions));
        }
    }
    let _ = child.kill();
    let med = |i: usize, k: usize| median(results[i].iter().map(|r| [r.0, r.1, r.2, r.3][k]).collect());
    println!("{partitions} partitions, {polls} idle polls per mode and round, max_wait_ms {wait_ms}, median of {rounds} rounds");
    println!("| mode | request bytes/poll | response bytes/poll | server CPU µs/poll | net of idle µs/poll |");
    println!("|---|---:|---:|---:|---:|");
    for (i, name) in ["sessionless", "incremental session"].into_iter().enumerate() {
        println!("| {name} | {:.0} | {:.0} | {:.1} | {:.1} |", med(i, 0), med(i, 1), med(i, 2), med(i, 3));
    }
    println!(
        "| ratio | {:.1}x fewer | {:.1}x fewer | {:.1}x less | {:.1}x less |",
        med(0, 0) / med(1, 0),
        med(0, 1) / med(1, 1),
        med(0, 2) / med(1, 2).max(1e-9),
        med(0, 3) / med(1, 3).max(1e-9)
    );
    for (i, name) in ["sessionless", "incremental session"].into_iter().enumerate() {
        let each: Vec<String> = results[i].iter().map(|r| format!("{:.1} ({:.1} net)", r.2, r.3)).collect();
        println!("{name} CPU µs/poll by round: {}", each.join(", "));
    }
}
