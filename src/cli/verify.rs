//! `logferry verify`: a read-only consistency check of whole log directories.
//!
//! Owns the checks and the one-line problem format `path: where: what`. Every `.log` is walked
//! batch by batch with CRCs checked; offsets must increase across batches and segments and stay at
//! or above each segment's base offset; offset-index entries must point at batch starts and name
//! an offset of that batch; time-index entries must name a batch's last offset; transaction-index
//! entries must end at a control batch; checkpoint and metadata files must parse. The walk is the
//! same [`Scanner`] the server uses, so `verify` passing means the server will expose every batch.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::log::batch::BatchError;
use crate::log::index::{self, IndexSource, OffsetIndex, TimeIndex};
use crate::log::meta;
use crate::log::scan::{ReadAt, ScanEnd, Scanner, Step};
use crate::log::{LogView, TopicPartition};

use super::VerifyArgs;

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub place: String,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.path.display(), self.place, self.what)
    }
}

/// Totals for the closing line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub partitions: usize,
    pub segments: usize,
    pub batches: u64,
    pub bytes: u64,
}

pub fn run(args: &VerifyArgs) -> ExitCode {
    if args.dirs.is_empty() {
        eprintln!("logferry verify: no directories given; see 'logferry verify --help'");
        return ExitCode::from(2);
    }
    match verify_dirs(&args.dirs) {
        Ok((problems, totals)) => {
            for p in &problems {
                println!("{p}");
            }
            let verdict =
                if problems.is_empty() { "clean".to_string() } else { format!("{} problems", problems.len()) };
            eprintln!(
                "logferry verify: {} partitions, {} segments, {} batches, {} bytes: {verdict}",
                totals.partitions, totals.segments, totals.batches, totals.bytes
            );
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("logferry verify: {e}");
            ExitCode::from(2)
        }
    }
}

/// Checks every partition of every directory. `Err` only when a directory cannot be read at all.
pub fn verify_dirs(dirs: &[PathBuf]) -> Result<(Vec<Problem>, Totals), crate::log::LogError> {
    let view = LogView::open(dirs, 64)?;
    let mut problems = Vec::new();
    let mut totals = Totals::default();
    for d in &view.dirs {
        for file in [
            "replication-offset-checkpoint",
            "log-start-offset-checkpoint",
            "recovery-point-offset-checkpoint",
            "cleaner-offset-checkpoint",
        ] {
            let path = d.path.join(file);
            if let Ok(bytes) = std::fs::read(&path) {
                if let Err(e) = meta::parse_offset_checkpoint(&String::from_utf8_lossy(&bytes)) {
                    problems.push(Problem { path, place: "checkpoint".into(), what: e.to_string() });
                }
            }
        }
    }
    for (tp, p) in &view.partitions {
        totals.partitions += 1;
        let meta_path = p.dir.join("partition.metadata");
        if let Ok(bytes) = std::fs::read(&meta_path) {
            if let Err(e) = meta::parse_partition_metadata(&String::from_utf8_lossy(&bytes)) {
                problems.push(Problem { path: meta_path, place: "metadata".into(), what: e.to_string() });
            }
        }
        let epoch_path = p.dir.join("leader-epoch-checkpoint");
        if let Ok(bytes) = std::fs::read(&epoch_path) {
            if let Err(e) = meta::parse_leader_epoch_checkpoint(&String::from_utf8_lossy(&bytes)) {
                problems.push(Problem { path: epoch_path, place: "checkpoint".into(), what: e.to_string() });
            }
        }
        let mut prev_next_offset: Option<(i64, PathBuf)> = None;
        let last_base = p.segments.keys().next_back().copied();
        for seg in p.segments.values() {
            totals.segments += 1;
            let active = Some(seg.base_offset) == last_base;
            verify_segment(
                tp,
                &seg.log_path,
                seg.base_offset,
                active,
                &mut prev_next_offset,
                &mut problems,
                &mut totals,
            );
        }
        if let (Some(hw), Some((leo, path))) = (p.high_watermark_checkpoint, prev_next_offset.as_ref()) {
            if hw > *leo {
                problems.push(Problem {
                    path: path.clone(),
                    place: format!("offset {leo}"),
                    what: format!("high watermark checkpoint {hw} is beyond the log end {leo}"),
                });
            }
        }
    }
    Ok((problems, totals))
}

/// What one walk of a `.log` learned, for checking its indexes.
struct Walk {
    /// position → (base offset, last offset, max timestamp, is control)
    batches: BTreeMap<u64, (i64, i64, i64, bool)>,
}

fn verify_segment(
    tp: &TopicPartition,
    log_path: &Path,
    base: i64,
    active: bool,
    prev: &mut Option<(i64, PathBuf)>,
    problems: &mut Vec<Problem>,
    totals: &mut Totals,
) {
    let mut problem =
        |path: &Path, place: String, what: String| problems.push(Problem { path: path.to_path_buf(), place, what });
    let file = match File::open(log_path) {
        Ok(f) => f,
        Err(e) => {
            problem(log_path, "open".into(), e.to_string());
            return;
        }
    };
    let len = ReadAt::len(&file).unwrap_or(0);
    totals.bytes += len;
    let mut walk = Walk { batches: BTreeMap::new() };
    let mut scanner = Scanner::new(&file, 0, len, true);
    let mut last_offset: Option<i64> = None;
    loop {
        match scanner.step() {
            Step::Batch { position, header } => {
                totals.batches += 1;
                let place = format!("offset {} position {position}", header.base_offset);
                if header.base_offset < base {
                    problem(
                        log_path,
                        place.clone(),
                        format!("batch base offset is below the segment base offset {base}"),
                    );
                }
                if let Some(l) = last_offset {
                    if header.base_offset <= l && header.magic >= 2 {
                        problem(
                            log_path,
                            place.clone(),
                            format!("offsets do not increase: previous batch ended at {l}"),
                        );
                    }
                } else if let Some((next, prev_path)) = prev.as_ref() {
                    if header.base_offset < *next {
                        problem(
                            log_path,
                            place.clone(),
                            format!(
                                "first batch overlaps the previous segment {} which ends at offset {}",
                                prev_path.display(),
                                next - 1
                            ),
                        );
                    }
                }
                last_offset = Some(header.last_offset());
                walk.batches.insert(
                    position,
                    (header.base_offset, header.last_offset(), header.max_timestamp, header.is_control()),
                );
            }
            Step::End(ScanEnd::Clean) => break,
            Step::End(ScanEnd::Incomplete { position, batch_size }) => {
                let what = if active {
                    format!("incomplete batch of {batch_size} bytes at the end of the active segment (torn tail, or a write in progress)")
                } else {
                    format!("torn tail: a batch of {batch_size} bytes runs past the end of the file ({len} bytes)")
                };
                problem(log_path, format!("position {position}"), what);
                break;
            }
            Step::End(ScanEnd::Invalid { position, error }) => {
                let what = match error {
                    BatchError::LengthTooSmall { length: 0, .. } if zero_from(&file, position, len) => {
                        format!("{} zero bytes after the last batch (preallocated or torn tail)", len - position)
                    }
                    BatchError::CrcMismatch { .. } => format!("corrupt batch: {error}"),
                    _ => format!("not a valid batch: {error}"),
                };
                problem(log_path, format!("position {position}"), what);
                break;
            }
            Step::End(ScanEnd::Io { position, error }) => {
                problem(log_path, format!("position {position}"), format!("read failed: {error}"));
                break;
            }
        }
    }
    if let Some(l) = last_offset {
        *prev = Some((l + 1, log_path.to_path_buf()));
    } else if prev.as_ref().is_none_or(|(n, _)| *n < base) {
        *prev = Some((base, log_path.to_path_buf()));
    }
    let _ = tp;
    check_offset_index(log_path, base, active, &walk, problems);
    check_time_index(log_path, base, &walk, problems);
    check_txn_index(log_path, base, &walk, problems);
}

fn zero_from(file: &File, position: u64, len: u64) -> bool {
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = position;
    while pos < len {
        let n = match file.read_at(&mut buf, pos) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if buf[..n].iter().any(|&b| b != 0) {
            return false;
        }
        pos += n as u64;
    }
    true
}

fn check_offset_index(log_path: &Path, base: i64, active: bool, walk: &Walk, problems: &mut Vec<Problem>) {
    let path = log_path.with_file_name(meta::segment_file_name(base, "index"));
    let Ok(source) = IndexSource::open(&path, false) else { return };
    let idx = OffsetIndex { base_offset: base, source };
    let entries = match idx.plausible_entries() {
        Ok(e) => e,
        Err(e) => {
            problems.push(Problem { path, place: "read".into(), what: e.to_string() });
            return;
        }
    };
    if !active && (entries.len() as u64) < idx.slots() {
        problems.push(Problem {
            path: path.clone(),
            place: format!("entry {}", entries.len()),
            what: format!("rolled segment index has {} slots but only {} valid entries", idx.slots(), entries.len()),
        });
    }
    for e in entries {
        let place = format!("offset {} position {}", e.offset, e.position);
        match walk.batches.get(&u64::from(e.position)) {
            None => {
                // Past the last complete batch of an active segment, entries are stale leftovers
                // of a truncation, which the broker itself tolerates (it keeps its count in memory).
                let beyond = walk.batches.keys().next_back().is_none_or(|&p| u64::from(e.position) > p);
                if !(active && beyond) {
                    problems.push(Problem {
                        path: path.clone(),
                        place,
                        what: "does not point at a batch start".into(),
                    });
                }
            }
            Some(&(b, _, _, _)) if e.offset < b => {
                problems.push(Problem {
                    path: path.clone(),
                    place,
                    what: format!("names an offset below the batch there (base offset {b})"),
                });
            }
            Some(_) => {}
        }
    }
}

fn check_time_index(log_path: &Path, base: i64, walk: &Walk, problems: &mut Vec<Problem>) {
    let path = log_path.with_file_name(meta::segment_file_name(base, "timeindex"));
    let Ok(source) = IndexSource::open(&path, false) else { return };
    let idx = TimeIndex { base_offset: base, source };
    let Ok(entries) = idx.plausible_entries() else { return };
    let max_ts = walk.batches.values().map(|b| b.2).max().unwrap_or(-1);
    let last = walk.batches.values().map(|b| b.1).max().unwrap_or(base - 1);
    for e in entries {
        let place = format!("offset {} timestamp {}", e.offset, e.timestamp);
        if e.offset > last {
            // Stale entries of a truncated active segment lie beyond the last batch; not an error.
            continue;
        }
        if !walk.batches.values().any(|b| b.1 == e.offset) {
            problems.push(Problem { path: path.clone(), place, what: "is not the last offset of a batch".into() });
        } else if e.timestamp > max_ts {
            problems.push(Problem {
                path: path.clone(),
                place,
                what: format!("timestamp is above the segment's max timestamp {max_ts}"),
            });
        }
    }
}

fn check_txn_index(log_path: &Path, base: i64, walk: &Walk, problems: &mut Vec<Problem>) {
    let path = log_path.with_file_name(meta::segment_file_name(base, "txnindex"));
    let Ok(bytes) = std::fs::read(&path) else { return };
    if bytes.len() % index::TXN_ENTRY_BYTES != 0 {
        problems.push(Problem {
            path: path.clone(),
            place: format!("position {}", bytes.len() - bytes.len() % index::TXN_ENTRY_BYTES),
            what: "partial entry at the end".into(),
        });
    }
    for t in index::read_txn_index(&bytes) {
        let place = format!("offset {}", t.last_offset);
        if t.first_offset > t.last_offset {
            problems.push(Problem {
                path: path.clone(),
                place,
                what: format!("first offset {} is after the last offset", t.first_offset),
            });
            continue;
        }
        if !walk.batches.values().any(|b| b.3 && b.0 == t.last_offset) {
            problems.push(Problem {
                path: path.clone(),
                place,
                what: "last offset is not an abort marker in this segment".into(),
            });
        }
    }
}
