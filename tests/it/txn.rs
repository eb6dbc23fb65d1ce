//! Transactions read from the log itself: the last stable offset and the aborted-transaction
//! list of read_committed fetches must be exact whether or not `.txnindex` files exist, are late
//! or are ahead of the log (issue 11 §1).
//!
//! Three kinds of evidence: the real fixture written by Kafka 4.1 with its `.txnindex` files
//! deleted (the derived list must equal what the broker indexed), golden-bytes cases built by
//! hand, and a seeded simulation of a transactional writer whose `.txnindex` entries appear late
//! or never while the model follows it (`LOGFERRY_TXN_SIM_SEEDS=N` sweeps more seeds).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use logferry::log::index::AbortedTxn;
use logferry::log::{LogView, TopicPartition};

use crate::util::{batch, marker, producer_snapshot, txn_batch, txn_index_entry};

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition { topic: topic.into(), partition }
}

fn key(list: &[AbortedTxn]) -> BTreeSet<(i64, i64, i64)> {
    list.iter().map(|t| (t.producer_id, t.first_offset, t.last_offset)).collect()
}

fn seg(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

/// The LSO walk run to its end (small logs take one call) and the aborted list from `from`.
fn lso_and_aborted(view: &mut LogView, tp: &TopicPartition, from: i64) -> (i64, BTreeSet<(i64, i64, i64)>, i64) {
    let part = view.partitions.get_mut(tp).expect("partition");
    let end = part.log_end_offset();
    let lso = part.first_open_txn_offset(&mut view.cache).unwrap().unwrap_or(end).min(end);
    let (list, exact_to) = part.aborted_transactions(from, lso, &mut view.cache).unwrap();
    (lso, key(&list), exact_to)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn fixture_without_txnindex_derives_what_the_broker_indexed() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logdir");
    for p in 0..3 {
        let name = format!("txn-{p}");
        // What the broker wrote to its .txnindex files.
        let mut indexed = BTreeSet::new();
        for e in fs::read_dir(fixture.join(&name)).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "txnindex") {
                let bytes = fs::read(&path).unwrap();
                indexed.extend(key(&logferry::log::index::read_txn_index(&bytes)));
            }
        }
        assert!(!indexed.is_empty(), "{name}: the fixture has aborted transactions");
        for drop_snapshots in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join(&name);
            copy_dir(&fixture.join(&name), &dir);
            for e in fs::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
                if ext == "txnindex" || (drop_snapshots && ext == "snapshot") {
                    fs::remove_file(&path).unwrap();
                }
            }
            let mut view = LogView::open(&[tmp.path().to_path_buf()], 16).unwrap();
            let t = tp("txn", p);
            let bases: Vec<i64> = view.partitions[&t].segments.keys().copied().collect();
            assert!(bases.len() > 1, "{name}: several segments, so transactions may span them");
            // From every batch start: exactly the indexed transactions that end at or after it.
            let part = view.partitions.get_mut(&t).unwrap();
            let end = part.log_end_offset();
            for from in 0..end {
                let (lso, got, exact_to) = lso_and_aborted(&mut view, &t, from);
                assert_eq!(lso, end, "{name}: every transaction of the fixture is closed");
                assert_eq!(exact_to, lso, "{name} from {from}: a small log is resolved in one call");
                let want: BTreeSet<_> = indexed.iter().filter(|x| x.2 >= from).copied().collect();
                assert_eq!(got, want, "{name} from {from} (snapshots dropped: {drop_snapshots})");
            }
        }
    }
}

/// One-segment partition `t-0` with the given batches.
fn one_segment(batches: &[Vec<u8>]) -> (tempfile::TempDir, LogView) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    fs::create_dir_all(&dir).unwrap();
    fs::write(seg(&dir, 0, "log"), batches.concat()).unwrap();
    let view = LogView::open(&[tmp.path().to_path_buf()], 16).unwrap();
    (tmp, view)
}

#[test]
fn abort_marker_without_index_entry() {
    // pid 7: data 0..=2, ABORT at 3; pid 8: data 4, plain batch 5, COMMIT at 6.
    let (_tmp, mut view) = one_segment(&[
        txn_batch(0, 3, 7),
        marker(3, 7, false),
        txn_batch(4, 1, 8),
        batch(5, 1, 1_700_000_000_005, 4, b'p'),
        marker(6, 8, true),
    ]);
    let (lso, got, exact_to) = lso_and_aborted(&mut view, &tp("t", 0), 0);
    assert_eq!(lso, 7);
    assert_eq!(exact_to, 7);
    assert_eq!(got, BTreeSet::from([(7, 0, 3)]));
    // A fetch past the abort marker does not list it.
    let (_, got, _) = lso_and_aborted(&mut view, &tp("t", 0), 4);
    assert!(got.is_empty());
}

#[test]
fn index_entry_without_marker_yet() {
    // The .txnindex already names an abort whose marker is not (yet) in the exposed log: the
    // transaction is still open, so the LSO stops at its first offset and nothing is listed.
    let (tmp, mut view) = one_segment(&[batch(0, 2, 1_700_000_000_000, 4, b'p'), txn_batch(2, 2, 7)]);
    fs::write(seg(&tmp.path().join("t-0"), 0, "txnindex"), txn_index_entry(7, 2, 4)).unwrap();
    let (lso, got, _) = lso_and_aborted(&mut view, &tp("t", 0), 0);
    assert_eq!(lso, 2);
    assert!(got.is_empty(), "{got:?}");
    // The marker arrives: now it is listed, from the log.
    let dir = tmp.path().join("t-0");
    let mut log = fs::read(seg(&dir, 0, "log")).unwrap();
    log.extend(marker(4, 7, false));
    fs::write(seg(&dir, 0, "log"), log).unwrap();
    view.refresh(&tp("t", 0)).unwrap();
    let (lso, got, _) = lso_and_aborted(&mut view, &tp("t", 0), 0);
    assert_eq!(lso, 5);
    assert_eq!(got, BTreeSet::from([(7, 2, 4)]));
}

#[test]
fn transaction_spanning_segments() {
    // Segment 0: pid 7 data at 0, pid 8 data at 1. Segment 2 (a snapshot at 2 lists both open):
    // pid 7 ABORT at 2, pid 8 COMMIT at 3. No .txnindex anywhere.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    fs::create_dir_all(&dir).unwrap();
    fs::write(seg(&dir, 0, "log"), [txn_batch(0, 1, 7), txn_batch(1, 1, 8)].concat()).unwrap();
    fs::write(seg(&dir, 0, "index"), []).unwrap();
    fs::write(seg(&dir, 2, "log"), [marker(2, 7, false), marker(3, 8, true)].concat()).unwrap();
    for with_snapshot in [true, false] {
        if with_snapshot {
            fs::write(seg(&dir, 2, "snapshot"), producer_snapshot(&[(7, 0), (8, 1)])).unwrap();
        } else {
            fs::remove_file(seg(&dir, 2, "snapshot")).unwrap();
        }
        let mut view = LogView::open(&[tmp.path().to_path_buf()], 16).unwrap();
        for from in 0..4 {
            let (lso, got, exact_to) = lso_and_aborted(&mut view, &tp("t", 0), from);
            assert_eq!((lso, exact_to), (4, 4));
            let want = if from <= 2 { BTreeSet::from([(7, 0, 2)]) } else { BTreeSet::new() };
            assert_eq!(got, want, "from {from}, snapshot {with_snapshot}");
        }
    }
}

#[test]
fn history_walk_is_bounded_and_lowers_the_bound_until_done() {
    // Many batches below a snapshot, no .txnindex: a fetch from the start walks them a bounded
    // slice per call and says how far its list is exact.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    fs::create_dir_all(&dir).unwrap();
    let n = logferry::log::TXN_WALK_BATCHES_PER_CALL as i64 * 2 + 10;
    let mut log = vec![txn_batch(0, 1, 9)];
    for i in 1..n {
        log.push(batch(i, 1, 1_700_000_000_000 + i, 4, b'p'));
    }
    log.push(marker(n, 9, false));
    fs::write(seg(&dir, 0, "log"), log.concat()).unwrap();
    fs::write(seg(&dir, n + 1, "log"), batch(n + 1, 1, 1_700_000_000_000, 4, b'q')).unwrap();
    fs::write(seg(&dir, n + 1, "snapshot"), producer_snapshot(&[])).unwrap();
    let mut view = LogView::open(&[tmp.path().to_path_buf()], 16).unwrap();
    let t = tp("t", 0);
    let mut calls = 0;
    loop {
        calls += 1;
        let (lso, got, exact_to) = lso_and_aborted(&mut view, &t, 0);
        assert_eq!(lso, n + 2, "the LSO walk starts at the snapshot: no wait for the history");
        if exact_to == lso {
            assert_eq!(got, BTreeSet::from([(9, 0, n)]));
            break;
        }
        // Transaction 9 is open where the walk stands: nothing at or past its start is sendable.
        assert_eq!(exact_to, 0);
        assert!(got.is_empty());
        assert!(calls < 10, "the history walk makes progress");
    }
    assert_eq!(calls, 3, "two bounded slices, then the rest");
}

/// xorshift64*, as in the tailer simulation.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// A transactional writer: producers 1..=4 open, write and end transactions between plain
/// batches; segments roll (with a producer snapshot at the new base, or not); an abort's
/// `.txnindex` entry is written at once, some steps later, or never, by the seed's policy.
fn run_seed(seed: u64, steps: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s-0");
    fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let index_policy = rng.below(3); // 0: at once, 1: late, 2: never
    let snapshots = rng.below(2) == 0;
    let mut next = 0i64;
    let mut active = 0i64;
    let mut open: std::collections::BTreeMap<i64, i64> = Default::default();
    let mut aborted: Vec<(i64, i64, i64, i64)> = Vec::new(); // (pid, first, marker, segment)
    let mut pending_index: Vec<(usize, i64, Vec<u8>)> = Vec::new(); // (due step, segment, entry)
    fs::write(seg(&dir, 0, "log"), []).unwrap();
    let mut view = LogView::open(&[tmp.path().to_path_buf()], 16).unwrap();
    let t = tp("s", 0);
    for step in 0..steps {
        let append = |bytes: Vec<u8>, active: i64| {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(seg(&dir, active, "log")).unwrap();
            f.write_all(&bytes).unwrap();
        };
        let pid = 1 + rng.below(4) as i64;
        match rng.below(10) {
            0..=3 => {
                let count = 1 + rng.below(3) as i32;
                append(txn_batch(next, count, pid), active);
                open.entry(pid).or_insert(next);
                next += i64::from(count);
            }
            4..=5 => {
                append(batch(next, 1, 1_700_000_000_000 + next, 4, b'p'), active);
                next += 1;
            }
            6..=7 => {
                if let Some(first) = open.remove(&pid) {
                    let commit = rng.below(2) == 0;
                    append(marker(next, pid, commit), active);
                    if !commit {
                        aborted.push((pid, first, next, active));
                        let entry = txn_index_entry(pid, first, next);
                        match index_policy {
                            0 => pending_index.push((step, active, entry)),
                            1 => pending_index.push((step + 1 + rng.below(6) as usize, active, entry)),
                            _ => {}
                        }
                    }
                    next += 1;
                }
            }
            _ => {
                if next > active {
                    active = next;
                    fs::write(seg(&dir, active, "log"), []).unwrap();
                    if snapshots {
                        let list: Vec<(i64, i64)> = open.iter().map(|(&p, &f)| (p, f)).collect();
                        fs::write(seg(&dir, active, "snapshot"), producer_snapshot(&list)).unwrap();
                    }
                }
            }
        }
        // Index entries that are due now, appended to their segment's .txnindex.
        let (due, later): (Vec<_>, Vec<_>) = pending_index.drain(..).partition(|(at, _, _)| *at <= step);
        pending_index = later;
        for (_, segment, entry) in due {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().create(true).append(true).open(seg(&dir, segment, "txnindex")).unwrap();
            f.write_all(&entry).unwrap();
        }
        view.refresh(&t).unwrap();
        let lso_want = open.values().min().copied().unwrap_or(next);
        let from = rng.below(next as u64 + 1) as i64;
        let (lso, got, exact_to) = lso_and_aborted(&mut view, &t, from);
        let ctx = format!("seed {seed} step {step} from {from} (index policy {index_policy}, snapshots {snapshots})");
        assert_eq!(lso, lso_want, "{ctx}: last stable offset");
        assert_eq!(exact_to, lso, "{ctx}: small logs resolve in one call");
        let want: BTreeSet<_> = aborted.iter().filter(|a| a.2 >= from && a.1 < lso).map(|a| (a.0, a.1, a.2)).collect();
        assert_eq!(got, want, "{ctx}: aborted transactions");
    }
}

#[test]
fn transactional_writer_with_late_or_missing_txnindex() {
    let seeds: u64 = std::env::var("LOGFERRY_TXN_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(24);
    for seed in 1..=seeds {
        run_seed(seed, 200);
    }
}
