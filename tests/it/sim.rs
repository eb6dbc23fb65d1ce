//! A seeded, deterministic simulation of a broker-like writer and the tailer following it.
//!
//! The writer appends batches (sometimes in two pieces), preallocates zero tails, rolls segments
//! (trimming indexes like the broker), deletes old segments by retention (rename to `.deleted`,
//! then unlink), truncates (leaving stale index entries behind, as the broker does) and swaps
//! segments by compaction (`.cleaned` → `.swap`, old to `.deleted`, `.swap` → live). After every
//! step the model is refreshed and must equal the writer's committed state: same segments, same
//! log start and end, every committed batch found at its offsets with its exact bytes, nothing
//! found at the end offset, and no partial batch ever exposed. A failure prints the seed and step;
//! `LOGFERRY_SIM_SEED=N` replays one seed, `LOGFERRY_SIM_SEEDS=N` sweeps more.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use logferry::log::scan::ReadAt;
use logferry::log::{FileCache, LogEvent, LogView, TopicPartition};

use crate::util::batch;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone)]
struct SimBatch {
    base: i64,
    last: i64,
    position: u64,
    bytes: Vec<u8>,
}

struct SimSegment {
    base: i64,
    batches: Vec<SimBatch>,
    /// Bytes of complete batches (the broker's in-memory size).
    logical_len: u64,
    index_entries: u64,
}

const INDEX_SLOTS: u64 = 64;

struct Writer {
    dir: PathBuf,
    segments: Vec<SimSegment>,
    next_offset: i64,
    timestamp: i64,
}

fn name(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

impl Writer {
    fn new(dir: PathBuf) -> Self {
        fs::create_dir_all(&dir).unwrap();
        let mut w = Writer { dir, segments: Vec::new(), next_offset: 0, timestamp: 1_700_000_000_000 };
        w.new_segment(0);
        w
    }

    fn new_segment(&mut self, base: i64) {
        File::create(name(&self.dir, base, "log")).unwrap();
        // Preallocated, zero-filled index, like an active segment's.
        let idx = File::create(name(&self.dir, base, "index")).unwrap();
        idx.set_len(INDEX_SLOTS * 8).unwrap();
        self.segments.push(SimSegment { base, batches: Vec::new(), logical_len: 0, index_entries: 0 });
    }

    /// The end offset the files show: one past the last batch of the active segment, or its base
    /// offset when it holds none. (After a truncation to the first batch of a compacted segment,
    /// the broker's in-memory end can be higher than the base; nothing on disk says so.)
    fn end(&self) -> i64 {
        let s = self.segments.last().unwrap();
        s.batches.last().map_or(s.base, |b| b.last + 1)
    }

    fn active(&mut self) -> &mut SimSegment {
        self.segments.last_mut().unwrap()
    }

    fn make_batch(&mut self, rng: &mut Rng) -> Vec<u8> {
        let count = 1 + rng.below(5) as i32;
        // Non-empty, non-zero payloads: a missing byte of a half-written batch must differ from
        // the zero fill it is read as (a batch whose missing bytes are all zero *is* complete).
        let payload = 1 + rng.below(300) as usize;
        self.timestamp += 1 + rng.below(10) as i64;
        batch(self.next_offset, count, self.timestamp, payload, 1 + rng.below(255) as u8)
    }

    fn log_file(&self, base: i64) -> File {
        OpenOptions::new().write(true).open(name(&self.dir, base, "log")).unwrap()
    }

    /// Writes `bytes` of a batch at the logical end; `commit` = the write is complete.
    fn write_at_end(&mut self, bytes: &[u8], from: usize, to: usize) {
        let seg = self.segments.last().unwrap();
        let f = self.log_file(seg.base);
        f.write_all_at(&bytes[from..to], seg.logical_len + from as u64).unwrap();
    }

    fn commit(&mut self, bytes: Vec<u8>) {
        let base = i64::from_be_bytes(bytes[0..8].try_into().unwrap());
        let delta = i32::from_be_bytes(bytes[23..27].try_into().unwrap());
        let dir = self.dir.clone();
        let seg = self.active();
        let position = seg.logical_len;
        if position > 0 && seg.index_entries < INDEX_SLOTS {
            let idx = OpenOptions::new().write(true).open(name(&dir, seg.base, "index")).unwrap();
            let mut e = [0u8; 8];
            e[..4].copy_from_slice(&(((base + i64::from(delta)) - seg.base) as u32).to_be_bytes());
            e[4..].copy_from_slice(&(position as u32).to_be_bytes());
            idx.write_all_at(&e, seg.index_entries * 8).unwrap();
            seg.index_entries += 1;
        }
        seg.logical_len += bytes.len() as u64;
        seg.batches.push(SimBatch { base, last: base + i64::from(delta), position, bytes });
        self.next_offset = base + i64::from(delta) + 1;
    }

    fn roll(&mut self) {
        let (base, logical, entries) = {
            let s = self.segments.last().unwrap();
            (s.base, s.logical_len, s.index_entries)
        };
        if logical == 0 {
            return;
        }
        self.log_file(base).set_len(logical).unwrap();
        OpenOptions::new().write(true).open(name(&self.dir, base, "index")).unwrap().set_len(entries * 8).unwrap();
        let next = self.next_offset;
        self.new_segment(next);
    }

    fn delete_files(&self, base: i64) {
        for suffix in ["log", "index"] {
            let p = name(&self.dir, base, suffix);
            let mut d = p.clone().into_os_string();
            d.push(".deleted");
            if p.exists() {
                fs::rename(&p, &d).unwrap();
                fs::remove_file(&d).unwrap();
            }
        }
    }

    fn retention(&mut self) {
        if self.segments.len() > 1 {
            let s = self.segments.remove(0);
            self.delete_files(s.base);
        }
    }

    /// Truncates to the start of a random committed batch (Kafka's `truncateTo`).
    fn truncate(&mut self, rng: &mut Rng) {
        let all: Vec<(usize, usize)> =
            self.segments.iter().enumerate().flat_map(|(i, s)| (0..s.batches.len()).map(move |j| (i, j))).collect();
        if all.is_empty() {
            return;
        }
        let (si, bi) = all[all.len() - 1 - rng.below(all.len().min(12) as u64) as usize];
        while self.segments.len() > si + 1 {
            let s = self.segments.pop().unwrap();
            self.delete_files(s.base);
        }
        let dir = self.dir.clone();
        let seg = self.segments.last_mut().unwrap();
        let cut = seg.batches[bi].clone();
        seg.batches.truncate(bi);
        seg.logical_len = cut.position;
        File::options().write(true).open(name(&dir, seg.base, "log")).unwrap().set_len(cut.position).unwrap();
        // Index entries at or after the cut stay in the file (stale); the count goes back.
        seg.index_entries = seg.batches.iter().filter(|b| b.position > 0).count() as u64;
        let idx = OpenOptions::new().write(true).open(name(&dir, seg.base, "index")).unwrap();
        idx.set_len(INDEX_SLOTS * 8).unwrap();
        self.next_offset = cut.base;
    }

    /// Compacts a rolled segment: drops some batches (never the last), swaps the files.
    /// Calls `mid_swap` while `X.log` is missing.
    fn compact(&mut self, rng: &mut Rng, mid_swap: &mut dyn FnMut(&Writer)) -> bool {
        if self.segments.len() < 2 {
            return false;
        }
        let si = rng.below(self.segments.len() as u64 - 1) as usize;
        let old = &self.segments[si];
        if old.batches.len() < 2 {
            return false;
        }
        let keep_last = old.batches.len() - 1;
        let kept: Vec<SimBatch> = old
            .batches
            .iter()
            .enumerate()
            .filter(|(j, _)| *j == keep_last || rng.below(3) != 0)
            .map(|(_, b)| b.clone())
            .collect();
        let base = old.base;
        let mut content = Vec::new();
        let mut new_batches = Vec::new();
        let mut index = Vec::new();
        for b in kept {
            let position = content.len() as u64;
            if position > 0 {
                index.extend_from_slice(&((b.last - base) as u32).to_be_bytes());
                index.extend_from_slice(&(position as u32).to_be_bytes());
            }
            content.extend_from_slice(&b.bytes);
            new_batches.push(SimBatch { position, ..b });
        }
        let cleaned = |s: &str| {
            let mut p = name(&self.dir, base, s).into_os_string();
            p.push(".cleaned");
            PathBuf::from(p)
        };
        let with = |s: &str, ext: &str| {
            let mut p = name(&self.dir, base, s).into_os_string();
            p.push(ext);
            PathBuf::from(p)
        };
        fs::write(cleaned("log"), &content).unwrap();
        fs::write(cleaned("index"), &index).unwrap();
        fs::rename(cleaned("index"), with("index", ".swap")).unwrap();
        fs::rename(cleaned("log"), with("log", ".swap")).unwrap();
        fs::rename(name(&self.dir, base, "log"), with("log", ".deleted")).unwrap();
        fs::rename(name(&self.dir, base, "index"), with("index", ".deleted")).unwrap();
        mid_swap(self);
        fs::rename(with("log", ".swap"), name(&self.dir, base, "log")).unwrap();
        fs::rename(with("index", ".swap"), name(&self.dir, base, "index")).unwrap();
        fs::remove_file(with("log", ".deleted")).unwrap();
        fs::remove_file(with("index", ".deleted")).unwrap();
        let seg = &mut self.segments[si];
        seg.logical_len = content.len() as u64;
        seg.index_entries = (index.len() / 8) as u64;
        seg.batches = new_batches;
        true
    }
}

fn tp() -> TopicPartition {
    TopicPartition { topic: "sim".into(), partition: 0 }
}

/// The model must equal the writer's committed state.
fn check(view: &mut LogView, w: &Writer, ctx: &str) {
    let p = view.partitions.get_mut(&tp()).unwrap_or_else(|| panic!("{ctx}: partition missing"));
    let bases: Vec<i64> = p.segments.keys().copied().collect();
    let want: Vec<i64> = w.segments.iter().map(|s| s.base).collect();
    assert_eq!(bases, want, "{ctx}: segments");
    assert_eq!(p.log_end_offset(), w.end(), "{ctx}: log end offset");
    assert_eq!(p.log_start_offset(), w.segments[0].base, "{ctx}: log start offset");
    let mut cache = FileCache::new(4);
    for s in &w.segments {
        for b in &s.batches {
            for offset in [b.base, b.last] {
                let loc =
                    p.find(offset, &mut cache).unwrap().unwrap_or_else(|| panic!("{ctx}: offset {offset} not found"));
                assert_eq!((loc.segment_base, loc.position), (s.base, b.position), "{ctx}: offset {offset} located");
                let mut buf = vec![0u8; b.bytes.len()];
                assert_eq!(ReadAt::read_at(&*loc.file, &mut buf, loc.position).unwrap(), buf.len());
                assert!(buf == b.bytes, "{ctx}: bytes of batch {}", b.base);
                assert!(loc.position + loc.header.size() <= loc.segment_end, "{ctx}: batch beyond exposed end");
            }
        }
    }
    assert!(p.find(w.end(), &mut cache).unwrap().is_none(), "{ctx}: something found at the end offset");
}

fn run_seed(seed: u64, steps: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut w = Writer::new(tmp.path().join("sim-0"));
    let mut view = LogView::open(&[tmp.path().to_path_buf()], 4).unwrap();
    for step in 0..steps {
        let ctx = format!("seed {seed} step {step}");
        let op = rng.below(100);
        let before_end = w.end();
        let mut fast_events = Vec::new();
        match op {
            0..=44 => {
                let b = w.make_batch(&mut rng);
                w.write_at_end(&b, 0, b.len());
                w.commit(b);
                // The inotify fast path (a write to the active .log, no listing) must already
                // see the batch.
                let name = format!("{:020}.log", w.segments.last().unwrap().base);
                fast_events = view.refresh_active(&tp(), &name).unwrap();
                assert!(
                    fast_events
                        .iter()
                        .any(|e| matches!(e, LogEvent::Advanced { end_offset, .. } if *end_offset == w.end())),
                    "{ctx}: fast path {fast_events:?}"
                );
                check(&mut view, &w, &format!("{ctx} (fast path)"));
            }
            45..=54 => {
                // A batch written in two pieces: after the first, nothing new may be exposed.
                let b = w.make_batch(&mut rng);
                // Leave at least the last payload byte unwritten (the final byte, the header
                // count, is zero like the fill).
                let cut = 1 + rng.below(b.len() as u64 - 2) as usize;
                w.write_at_end(&b, 0, cut);
                let events = view.rescan().unwrap();
                assert!(!events.iter().any(|e| matches!(e, LogEvent::Advanced { .. })), "{ctx}: partial batch exposed");
                check(&mut view, &w, &format!("{ctx} (half-written batch)"));
                w.write_at_end(&b, cut, b.len());
                w.commit(b);
            }
            55..=63 => w.roll(),
            64..=69 => w.retention(),
            70..=76 => w.truncate(&mut rng),
            77..=84 => {
                let mut mid = |w: &Writer| {
                    view.rescan().unwrap();
                    check(&mut view, w, &format!("{ctx} (mid-swap)"));
                };
                // The mid-swap check sees the pre-swap state, which is still the writer's state.
                w.compact(&mut rng, &mut mid);
            }
            85..=89 => {
                // Preallocation: a zero region past the logical end.
                let s = w.segments.last().unwrap();
                w.log_file(s.base).set_len(s.logical_len + 1 + rng.below(4096)).unwrap();
            }
            _ => {}
        }
        let mut events = fast_events;
        events.extend(view.rescan().unwrap());
        if w.end() < before_end {
            assert!(
                events.iter().any(|e| matches!(e, LogEvent::Truncated { end_offset, .. } if *end_offset == w.end())),
                "{ctx}: truncation to {} not reported: {events:?}",
                w.end()
            );
        }
        if w.end() > before_end {
            assert!(
                events.iter().any(|e| matches!(e, LogEvent::Advanced { .. })),
                "{ctx}: advance not reported (op {op}): {events:?}"
            );
        }
        check(&mut view, &w, &ctx);
        // Now and then, a fresh model of the same directory must agree too (start-up path:
        // index hints, stale entries, zero tails).
        if step % 25 == 24 {
            let mut fresh = LogView::open(&[tmp.path().to_path_buf()], 4).unwrap();
            check(&mut fresh, &w, &format!("{ctx} (fresh open)"));
        }
    }
}

#[test]
fn tailer_follows_a_simulated_writer() {
    let seeds: Vec<u64> = match std::env::var("LOGFERRY_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("LOGFERRY_SIM_SEED is a number")],
        Err(_) => {
            let n: u64 = std::env::var("LOGFERRY_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
            (1..=n).collect()
        }
    };
    for seed in seeds {
        let result = std::panic::catch_unwind(|| run_seed(seed, 300));
        if let Err(e) = result {
            eprintln!("simulation failed: replay with LOGFERRY_SIM_SEED={seed}");
            std::panic::resume_unwind(e);
        }
    }
}

#[test]
fn zero_tail_and_partial_batch_are_not_exposed() {
    // The two edge cases of the active segment named by the issue, pinned without randomness.
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Writer::new(tmp.path().join("sim-0"));
    let mut rng = Rng(7);
    for _ in 0..3 {
        let b = w.make_batch(&mut rng);
        w.write_at_end(&b, 0, b.len());
        w.commit(b);
    }
    let s = w.segments.last().unwrap();
    w.log_file(s.base).set_len(s.logical_len + 8192).unwrap();
    let mut view = LogView::open(&[tmp.path().to_path_buf()], 4).unwrap();
    check(&mut view, &w, "zero tail");
    let b = w.make_batch(&mut rng);
    // Everything but the last payload byte, over the zero fill: the CRC fails, nothing exposed.
    w.write_at_end(&b, 0, b.len() - 2);
    w.write_at_end(&b, b.len() - 1, b.len());
    view.rescan().unwrap();
    check(&mut view, &w, "one byte missing");
    w.write_at_end(&b, b.len() - 2, b.len() - 1);
    w.commit(b);
    let events = view.rescan().unwrap();
    assert!(events.contains(&LogEvent::Advanced { tp: tp(), end_offset: w.end() }));
    check(&mut view, &w, "completed");
}
