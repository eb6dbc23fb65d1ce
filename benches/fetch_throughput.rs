//! Benchmark (not a test): one consumer reading a multi-GiB partition from the page cache through
//! `logferry serve`, against the physical limits measured in the same run on the same files:
//! a plain `sendfile` loop and a plain `read` + `write` loop to a loopback reader.
//!
//! The consumer speaks Fetch v12 like a real one (sequential offsets, `partition_max_bytes` as
//! given) and discards the record bytes, so the server is what is measured. Server CPU seconds
//! come from `/proc/<pid>/stat` (user + system) around the read.
//!
//! Run: `cargo bench --bench fetch_throughput` (env `LOGFERRY_BENCH_GIB`, default 2).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[path = "common.rs"]
mod common;

const BATCH_PAYLOAD: usize = 64 << 10;
const SEGMENT_BYTES: u64 = 1 << 30;

/// Writes `gib` GiB of batches into `dir/bench-0`, rolling at 1 GiB. Returns the segment paths.
fn build(dir: &Path, gib: u64) -> (Vec<PathBuf>, i64) {
    let pdir = dir.join("bench-0");
    std::fs::create_dir_all(&pdir).unwrap();
    let mut segments = Vec::new();
    let mut offset = 0i64;
    let total = gib << 30;
    let mut written = 0u64;
    while written < total {
        let path = pdir.join(format!("{offset:020}.log"));
        let mut f = std::io::BufWriter::with_capacity(8 << 20, File::create(&path).unwrap());
        let mut seg = 0u64;
        while seg + (BATCH_PAYLOAD as u64) < SEGMENT_BYTES && written < total {
            let b = common::batch(offset, 16, BATCH_PAYLOAD / 16, (offset % 251) as u8);
            f.write_all(&b).unwrap();
            seg += b.len() as u64;
            written += b.len() as u64;
            offset += 16;
        }
        f.flush().unwrap();
        segments.push(path);
    }
    (segments, offset)
}

fn reader(listener: TcpListener) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => return n,
                Ok(k) => n += k as u64,
                Err(e) => panic!("{e}"),
            }
        }
    })
}

/// The limit: sendfile each segment whole to a loopback socket.
fn sendfile_loop(segments: &[PathBuf]) -> (f64, u64) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let r = reader(l);
    let s = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    let mut total = 0;
    for p in segments {
        let f = File::open(p).unwrap();
        let len = f.metadata().unwrap().len();
        let mut off: i64 = 0;
        while (off as u64) < len {
            let count = (len - off as u64).min(1 << 20) as usize;
            let n = nix::sys::sendfile::sendfile64(s.as_fd(), f.as_fd(), Some(&mut off), count).unwrap();
            total += n as u64;
        }
    }
    drop(s);
    let got = r.join().unwrap();
    assert_eq!(got, total);
    (t.elapsed().as_secs_f64(), total)
}

/// read + write through a 1 MiB user-space buffer.
fn copy_loop(segments: &[PathBuf]) -> (f64, u64) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let r = reader(l);
    let mut s = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 20];
    for p in segments {
        let mut f = File::open(p).unwrap();
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
            total += n as u64;
        }
    }
    drop(s);
    assert_eq!(r.join().unwrap(), total);
    (t.elapsed().as_secs_f64(), total)
}

/// (user, system) CPU seconds of a process, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() / 100.0, f[12].parse::<f64>().unwrap() / 100.0)
}

fn main() {
    let gib: u64 = std::env::var("LOGFERRY_BENCH_GIB").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let tmp = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let (segments, end) = build(tmp.path(), gib);
    eprintln!("built {gib} GiB ({end} records) in {:.1} s", t.elapsed().as_secs_f64());
    // Warm the page cache and measure the limits.
    let _ = sendfile_loop(&segments);
    let (sf_s, sf_b) = sendfile_loop(&segments);
    let (cp_s, cp_b) = copy_loop(&segments);
    let gbs = |b: u64, s: f64| b as f64 / s / 1e9;
    println!("sendfile loop:     {:.2} GB/s", gbs(sf_b, sf_s));
    println!("read+write loop:   {:.2} GB/s", gbs(cp_b, cp_s));

    let (mut child, addr) =
        common::spawn_logferry(&["--log-dir", tmp.path().to_str().unwrap(), "--visibility", "log-end"]);
    for pmb in [1 << 20, 8 << 20] {
        // First pass validates CRCs (once per process); measure the second.
        let _ = common::consume(&addr, "bench", 0, end, pmb);
        let (u0, s0) = cpu_seconds(child.id());
        let (s, b) = common::consume(&addr, "bench", 0, end, pmb);
        let (u1, s1) = cpu_seconds(child.id());
        let gib = b as f64 / f64::from(1u32 << 30);
        let rate = gbs(b, s);
        println!(
            "logferry, partition_max_bytes {} MiB: {:.2} GB/s = {:.0}% of sendfile loop, {:.0}% of read+write; server CPU {:.3} s per GiB ({:.3} user, {:.3} system)",
            pmb >> 20,
            rate,
            100.0 * rate / gbs(sf_b, sf_s),
            100.0 * rate / gbs(cp_b, cp_s),
            (u1 - u0 + s1 - s0) / gib,
            (u1 - u0) / gib,
            (s1 - s0) / gib
        );
    }
    let _ = child.kill();
    let _ = child.wait();

    // The same consumer on a SASL_PLAINTEXT listener (PLAIN, authenticated once per connection):
    // after the exchange the records still go out with sendfile.
    let users = tmp.path().join("users");
    std::fs::write(&users, format!("{}\n", common::SASL_USER_LINE)).unwrap();
    let (mut child, addr) = common::spawn_logferry(&[
        "--listen",
        "SASL_PLAINTEXT://127.0.0.1:0",
        "--sasl-plain-users",
        users.to_str().unwrap(),
        "--log-dir",
        tmp.path().to_str().unwrap(),
        "--visibility",
        "log-end",
    ]);
    assert!(addr.starts_with("SASL_PLAINTEXT://"), "{addr}");
    let pmb = 8 << 20;
    let _ = common::consume(&addr, "bench", 0, end, pmb);
    let (u0, s0) = cpu_seconds(child.id());
    let (s, b) = common::consume(&addr, "bench", 0, end, pmb);
    let (u1, s1) = cpu_seconds(child.id());
    let rate = gbs(b, s);
    println!(
        "logferry over SASL_PLAINTEXT (PLAIN), partition_max_bytes 8 MiB: {:.2} GB/s = {:.0}% of sendfile loop; server CPU {:.3} s per GiB",
        rate,
        100.0 * rate / gbs(sf_b, sf_s),
        (u1 - u0 + s1 - s0) / (b as f64 / f64::from(1u32 << 30))
    );
    let _ = child.kill();
    let _ = child.wait();
}
