//! Benchmark (not a test): tail latency, from a batch's append to a long-polling consumer
//! receiving it through `logferry serve` (visibility log-end, inotify wake-up).
//!
//! A writer thread appends one small batch every `LOGFERRY_BENCH_INTERVAL_US` (default 1000 µs)
//! to the active segment of a fresh log dir, stamping each just before its `write`; a consumer
//! thread in the same process long-polls (Fetch v12, min_bytes 1, max_wait 500 ms) and records
//! when each batch arrived. Both use the same monotonic clock. Reports p50/p99/p99.9/max over
//! `LOGFERRY_BENCH_BATCHES` batches (default 5000).
//!
//! With `LOGFERRY_BENCH_COLD_GIB=G` (the cold catch-up scenario), the log dir also holds a
//! G GiB partition `cold-0` of 1 MiB batches that is dropped from the page cache
//! (`fdatasync` + `posix_fadvise(DONTNEED)`) after logferry has opened it; a second consumer
//! reads it from offset 0 while the writer and the tailing consumer run, and the percentiles
//! are reported over the batches appended while that catch-up read was in progress (the worst
//! one is the longest stall a tailing consumer saw), with the catch-up's own throughput.
//!
//! Run: `cargo bench --bench tail_latency`.

#[path = "common.rs"]
mod common;

use std::collections::HashMap;
use std::io::Write;
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
    let cold_gib: f64 = std::env::var("LOGFERRY_BENCH_COLD_GIB").ok().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let cold = (cold_gib > 0.0).then(|| write_cold(tmp.path(), cold_gib));
    let (mut child, addr) =
        common::spawn_logferry(&["--log-dir", tmp.path().to_str().unwrap(), "--visibility", "log-end"]);
    if let Some((path, _)) = &cold {
        drop_from_page_cache(path);
    }

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
                let n = common::read_response(&mut s, &mut buf);
                let now = Instant::now();
                let recs = common::records_of_v12(&buf[..n], corr);
                common::each_batch(recs, |_, base| {
                    if base >= next {
                        if let Some(t) = written.lock().unwrap().get(&base) {
                            lat.push((*t, now.duration_since(*t)));
                        }
                        next = base + 1;
                    }
                });
            }
            lat
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let catchup = cold.map(|(_, end)| {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let (secs, bytes) = common::consume(&addr, "cold", 0, end, 1 << 20);
            (t0, t0 + Duration::from_secs_f64(secs), bytes)
        })
    });
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    let mut write_times = Vec::with_capacity(count as usize);
    let start = Instant::now();
    for offset in 1..=count {
        let due = start + interval * (offset as u32);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let b = common::batch(offset, 1, 16, b'x');
        // Stamped just before the write, so the consumer can never see the batch unstamped.
        let stamp = Instant::now();
        written.lock().unwrap().insert(offset, stamp);
        f.write_all(&b).unwrap();
        write_times.push((stamp, stamp.elapsed()));
    }
    let lat = consumer.join().unwrap();
    let window = catchup.map(|h| h.join().unwrap());
    let _ = child.kill();
    let _ = child.wait();
    let mut lat: Vec<Duration> = match window {
        None => lat.into_iter().map(|(_, d)| d).collect(),
        Some((from, to, bytes)) => {
            let secs = to.duration_since(from).as_secs_f64();
            println!(
                "cold catch-up: {:.2} GiB from disk in {secs:.2} s = {:.2} GB/s, while the tail below was measured",
                bytes as f64 / (1u64 << 30) as f64,
                bytes as f64 / secs / 1e9
            );
            let mut w: Vec<Duration> =
                write_times.iter().filter(|(t, _)| *t >= from && *t <= to).map(|(_, d)| *d).collect();
            w.sort();
            if !w.is_empty() {
                println!(
                    "the writer's own write(2) calls meanwhile (part of the latency below): p50 {:?} p99 {:?} max {:?}",
                    percentile(&w, 0.5),
                    percentile(&w, 0.99),
                    w.last().copied().unwrap_or_default()
                );
            }
            lat.into_iter().filter(|(w, _)| *w >= from && *w <= to).map(|(_, d)| d).collect()
        }
    };
    assert!(!lat.is_empty(), "no batch was appended during the measurement window");
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

/// Writes `gib` GiB of 1 MiB batches as partition `cold-0`; returns the segment and its end offset.
fn write_cold(dir: &std::path::Path, gib: f64) -> (std::path::PathBuf, i64) {
    let pdir = dir.join("cold-0");
    std::fs::create_dir_all(&pdir).unwrap();
    let path = pdir.join("00000000000000000000.log");
    let mut f = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(&path).unwrap());
    let batches = (gib * 1024.0) as i64;
    let per_batch = 1024;
    for i in 0..batches {
        f.write_all(&common::batch(i * per_batch, per_batch as i32, 1000, b'c')).unwrap();
    }
    f.flush().unwrap();
    (path, batches * per_batch)
}

/// Makes the file's pages clean, then asks the kernel to drop them.
fn drop_from_page_cache(path: &std::path::Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    nix::unistd::fdatasync(f.as_raw_fd()).unwrap();
    nix::fcntl::posix_fadvise(f.as_raw_fd(), 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED).unwrap();
}
