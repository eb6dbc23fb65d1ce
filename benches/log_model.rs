//! Benchmark (not a test): the cost of the log model on a large directory.
//!
//! 1. Opening a log dir with 1,000 partitions of 10 segments each (first open, cold model; the
//!    files are in the page cache after they were written).
//! 2. The tailer's cost per appended batch: append one batch to one partition's active segment,
//!    refresh that partition (what an inotify event triggers), repeated.
//! 3. For scale, the raw cost of the syscalls a refresh needs at minimum (listing the partition
//!    directory and a stat of the active segment).
//!
//! Run: `cargo bench --bench log_model` (prints one line per measurement).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use logferry::log::{LogView, TopicPartition};

#[path = "common.rs"]
mod common;

const PARTITIONS: usize = 1000;
const SEGMENTS: i64 = 10;
const BATCHES_PER_SEGMENT: i64 = 20;

fn build(root: &Path) {
    for p in 0..PARTITIONS {
        let dir = root.join(format!("bench-{p}"));
        fs::create_dir_all(&dir).unwrap();
        for s in 0..SEGMENTS {
            let base = s * BATCHES_PER_SEGMENT;
            let mut f = File::create(dir.join(format!("{base:020}.log"))).unwrap();
            let mut idx = Vec::new();
            let mut pos = 0u32;
            for i in 0..BATCHES_PER_SEGMENT {
                let b = common::batch(base + i, 1, 200, b'x');
                if pos > 0 {
                    idx.extend_from_slice(&(i as u32).to_be_bytes());
                    idx.extend_from_slice(&pos.to_be_bytes());
                }
                pos += b.len() as u32;
                f.write_all(&b).unwrap();
            }
            fs::write(dir.join(format!("{base:020}.index")), &idx).unwrap();
        }
    }
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let t = Instant::now();
    build(tmp.path());
    eprintln!("built {PARTITIONS} partitions x {SEGMENTS} segments in {:?}", t.elapsed());

    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let view = LogView::open(&[tmp.path().to_path_buf()], 4096).unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(view.partitions.len(), PARTITIONS);
        best = best.min(ms);
    }
    println!("open: {PARTITIONS} partitions x {SEGMENTS} segments: best of 3 = {best:.1} ms");

    let mut view = LogView::open(&[tmp.path().to_path_buf()], 4096).unwrap();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let events = view.rescan().unwrap();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
        assert!(events.is_empty());
    }
    println!("periodic rescan with nothing changed: {PARTITIONS} partitions: best of 3 = {best:.1} ms");
    let tp = TopicPartition { topic: "bench".into(), partition: 7 };
    let active = tmp.path().join("bench-7").join(format!("{:020}.log", (SEGMENTS - 1) * BATCHES_PER_SEGMENT));
    let mut f = OpenOptions::new().append(true).open(&active).unwrap();
    let first = SEGMENTS * BATCHES_PER_SEGMENT;
    let rounds = 20_000;
    let t = Instant::now();
    for next in first..first + i64::from(rounds) {
        f.write_all(&common::batch(next, 1, 200, b'x')).unwrap();
        let events = view.refresh(&tp).unwrap();
        assert_eq!(events.len(), 1);
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("tailer, full refresh: append + refresh per batch (261-byte batch, CRC checked) = {per:.1} us");
    let name = active.file_name().unwrap().to_str().unwrap().to_string();
    let first = first + i64::from(rounds);
    let t = Instant::now();
    for next in first..first + i64::from(rounds) {
        f.write_all(&common::batch(next, 1, 200, b'x')).unwrap();
        let events = view.refresh_active(&tp, &name).unwrap();
        assert_eq!(events.len(), 1);
    }
    let fast = t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("tailer, inotify fast path (write to the active .log): append + refresh per batch = {fast:.1} us");

    let dir = tmp.path().join("bench-7");
    let t = Instant::now();
    for _ in 0..rounds {
        let n = fs::read_dir(&dir).unwrap().count();
        assert!(n > 0);
        fs::metadata(&active).unwrap();
    }
    let floor = t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!(
        "baseline: read_dir + stat of the same partition = {floor:.1} us (full refresh {:.2}x, fast path {:.2}x)",
        per / floor,
        fast / floor
    );
}
