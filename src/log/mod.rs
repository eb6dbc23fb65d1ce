//! The log model: log directories → partitions → segments, as the files on disk say they are.
//!
//! Owns the in-memory view of one or more Kafka log directories and every lookup the server
//! needs from it: offset → (segment, batch position), timestamp → batch, aborted transactions in
//! an offset range, log start offset, and the *exposed end* of each partition (the end of the last
//! complete, CRC-valid batch). Files are opened read-only and never locked, renamed or written
//! (product rule 4). Refreshing a partition re-lists its directory and compares it with the model;
//! what changed comes back as [`LogEvent`]s, which the tailer ([`tailer`]) forwards to the server.
//!
//! Segments are keyed by base offset and identified by inode, so a segment replaced by compaction
//! (same name, new file) is noticed, and a file that was renamed or unlinked while being read stays
//! readable through the descriptor already open ([`FileCache`]).
//!
//! Rules taken from the broker (`docs/kafka-format.md` §1, §3, §4, pitfalls 1, 3, 5, 9):
//! the last live segment is the active one; a segment's base offset is a lower bound of its first
//! batch's offset; index entries are hints confirmed against the `.log`; bytes past the last
//! complete batch are never exposed; `.deleted`/`.cleaned`/`.swap` files are never served, and a
//! `X.log` missing while a swap is in progress keeps the old segment in the model until the swap
//! completes.

pub mod batch;
pub mod index;
pub mod meta;
pub mod records;
pub mod scan;
pub mod tailer;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use batch::{BatchHeader, ControlType};
use index::{AbortedTxn, IndexSource, OffsetIndex, TimeIndex};
use meta::{EpochEntry, MetaProperties, SegmentFileKind, SegmentFileState, Uuid};
use scan::{ReadAt, ScanEnd, Scanner, Step};

/// A topic and partition number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// An error reading the log, with the path it concerns.
#[derive(Debug)]
pub struct LogError {
    pub path: PathBuf,
    pub kind: LogErrorKind,
}

#[derive(Debug)]
#[non_exhaustive]
pub enum LogErrorKind {
    Io(io::Error),
    Format(meta::FormatError),
    /// The path exists but is not a directory.
    NotADirectory,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.kind {
            LogErrorKind::Io(e) => write!(f, "{p}: {e}"),
            LogErrorKind::Format(e) => write!(f, "{p}: {e}"),
            LogErrorKind::NotADirectory => write!(f, "{p}: not a directory"),
        }
    }
}

impl std::error::Error for LogError {}

impl LogError {
    /// True when the error is the process (or system) being out of file descriptors.
    pub fn is_exhaustion(&self) -> bool {
        matches!(&self.kind, LogErrorKind::Io(e) if crate::descriptors::is_exhaustion(e))
    }

    pub fn io(path: &Path, e: io::Error) -> Self {
        Self { path: path.to_path_buf(), kind: LogErrorKind::Io(e) }
    }

    fn format(path: &Path, e: meta::FormatError) -> Self {
        Self { path: path.to_path_buf(), kind: LogErrorKind::Format(e) }
    }
}

/// Identity of an open file: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &fs::Metadata) -> Self {
        Self { dev: meta.dev(), ino: meta.ino() }
    }
}

/// Default bound on `.log` descriptors the model keeps open (`segments_open_max`).
pub const SEGMENTS_OPEN_MAX_DEFAULT: usize = 4096;

/// Least time between two out-of-descriptors warnings of the [`FileCache`].
const EXHAUSTION_WARN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Open `.log` files, keyed by inode, at most `segments_open_max` of them held by the cache.
///
/// Handing out `Rc<File>` means an evicted, renamed or unlinked file stays readable for whoever
/// still holds it (a response being sent); the bound is on the cache's own references.
pub struct FileCache {
    segments_open_max: usize,
    files: HashMap<FileId, (Rc<File>, u64)>,
    clock: u64,
    /// Opens that failed for want of a descriptor (EMFILE, ENFILE), after shedding.
    pub exhaustions: u64,
    /// When the last out-of-descriptors warning was logged, and `exhaustions` then (warned at
    /// most every [`EXHAUSTION_WARN_INTERVAL`], not once per partition).
    warned: Option<(std::time::Instant, u64)>,
}

impl FileCache {
    pub fn new(segments_open_max: usize) -> Self {
        Self {
            segments_open_max: segments_open_max.max(1),
            files: HashMap::new(),
            clock: 0,
            exhaustions: 0,
            warned: None,
        }
    }

    /// The open file for `path`, which must still be the file `id` (else `Ok(None)`: it was
    /// replaced or removed since the model last looked). When the process is out of
    /// descriptors, the files no response holds are closed and the open is tried once more.
    pub fn open(&mut self, path: &Path, id: FileId) -> io::Result<Option<Rc<File>>> {
        self.clock += 1;
        if let Some((f, used)) = self.files.get_mut(&id) {
            *used = self.clock;
            return Ok(Some(Rc::clone(f)));
        }
        let found = match open_same(path, id) {
            Err(e) if crate::descriptors::is_exhaustion(&e) => {
                self.files.retain(|_, (f, _)| Rc::strong_count(f) > 1);
                open_same(path, id)
            }
            other => other,
        };
        let found = match found {
            Err(e) if crate::descriptors::is_exhaustion(&e) => {
                self.exhaustions += 1;
                let now = std::time::Instant::now();
                let since = self.warned.map_or(0, |(_, n)| n);
                if self.warned.is_none_or(|(at, _)| now.duration_since(at) >= EXHAUSTION_WARN_INTERVAL) {
                    self.warned = Some((now, self.exhaustions));
                    log::warn!(
                        "out of file descriptors opening {} ({e}); partitions are answered without records until descriptors free up ({} such opens since the last warning; logferry_descriptor_exhaustions_total counts them)",
                        path.display(),
                        self.exhaustions - since
                    );
                }
                return Err(e);
            }
            other => other?,
        };
        let Some(file) = found else { return Ok(None) };
        if self.files.len() >= self.segments_open_max {
            if let Some(oldest) = self.files.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k) {
                self.files.remove(&oldest);
            }
        }
        let file = Rc::new(file);
        self.files.insert(id, (Rc::clone(&file), self.clock));
        Ok(Some(file))
    }

    /// Drops the cache's reference to a file that left the model.
    pub fn forget(&mut self, id: FileId) {
        self.files.remove(&id);
    }

    pub fn open_count(&self) -> usize {
        self.files.len()
    }
}

/// Drops the cache's references to the files of a partition that left the model (responses
/// being sent keep theirs until they are done).
fn forget_segments(cache: &mut FileCache, p: &Partition) {
    for s in p.segments.values() {
        cache.forget(s.id);
    }
}

/// Opens `path` if it is still the file `id`; the broker renames a segment to `X.log.deleted`
/// before unlinking it (retention, compaction swap), and the same inode under that name is the
/// same bytes.
fn open_same(path: &Path, id: FileId) -> io::Result<Option<File>> {
    let mut deleted = path.as_os_str().to_owned();
    deleted.push(".deleted");
    for candidate in [path, Path::new(&deleted)] {
        match File::open(candidate) {
            Ok(f) if FileId::of(&f.metadata()?) == id => return Ok(Some(f)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// How far a segment's `.log` has been walked and found sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scanned {
    /// End of the last complete, CRC-valid batch.
    pub end_position: u64,
    /// Offset after the last such batch (the segment's base offset when it has none).
    pub next_offset: i64,
    /// Base offset of the first batch, if any.
    pub first_offset: Option<i64>,
    /// Largest batch max timestamp seen.
    pub max_timestamp: i64,
    /// Why the walk stopped before the file end, if it did.
    pub stopped: Option<ScanStop>,
}

/// A summary of why a walk stopped short of the file's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStop {
    Incomplete,
    Invalid(batch::BatchError),
    Io,
}

/// One segment: a live `X.log` and its index files.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    pub log_path: PathBuf,
    pub id: FileId,
    /// File length when last looked at.
    pub len: u64,
    /// `None` until a lookup or refresh needed to walk it.
    pub scanned: Option<Scanned>,
    /// The memory-mapped `.index` of a rolled segment, kept between lookups. Dropped when the
    /// segment becomes the active one again (after a truncation the broker rewrites it).
    mapped_index: Option<Rc<OffsetIndex>>,
    /// True while this is the last (active) segment of its partition.
    active: bool,
    /// Byte ranges known to hold only complete, CRC-valid batches (start → end).
    validated: BTreeMap<u64, u64>,
    /// (base offset − segment base, position) of batches met by our own walks, about one per
    /// [`SPARSE_STEP_BYTES`]: exact batch starts, so a lookup walks at most one step of headers
    /// (one read window) with no index file (a segment the broker has not indexed yet, or a
    /// directory written without indexes), however large the segment grows.
    sparse: Vec<(u32, u32)>,
    /// (base offset, position) of the first batch the last walk of the tail found: where a
    /// consumer that was at the end before that append fetches next.
    tail_hint: Option<(i64, u64)>,
}

/// Distance between entries of a segment's in-memory sparse index: one scanner read window,
/// 16,384 entries (128 KiB) per GiB walked. The broker's `.index` takes one entry per 4 KiB
/// (`index.interval.bytes`), 2 MiB per GiB.
pub const SPARSE_STEP_BYTES: u64 = 64 << 10;

impl Segment {
    fn sibling(&self, suffix: &str) -> PathBuf {
        self.log_path.with_file_name(meta::segment_file_name(self.base_offset, suffix))
    }

    pub fn index_path(&self) -> PathBuf {
        self.sibling("index")
    }

    pub fn time_index_path(&self) -> PathBuf {
        self.sibling("timeindex")
    }

    pub fn txn_index_path(&self) -> PathBuf {
        self.sibling("txnindex")
    }

    /// The offset index: mapped and cached for a rolled segment, read with `pread` for the
    /// active one. `None` when there is no index file (it is created lazily by the broker).
    pub fn offset_index(&self) -> Option<Rc<OffsetIndex>> {
        if let Some(idx) = &self.mapped_index {
            return Some(Rc::clone(idx));
        }
        let source = IndexSource::open(&self.index_path(), !self.active).ok()?;
        Some(Rc::new(OffsetIndex { base_offset: self.base_offset, source }))
    }

    fn cache_index(&mut self) {
        if self.active {
            self.mapped_index = None;
        } else if self.mapped_index.is_none() {
            self.mapped_index = IndexSource::open(&self.index_path(), true)
                .ok()
                .map(|source| Rc::new(OffsetIndex { base_offset: self.base_offset, source }));
        }
    }
}

/// Where a lookup landed.
#[derive(Clone, Debug)]
pub struct Located {
    pub segment_base: i64,
    pub position: u64,
    pub header: BatchHeader,
    /// End of exposed bytes in that segment (a fetch may send up to here).
    pub segment_end: u64,
    pub file: Rc<File>,
}

/// What changed in the log, for whoever waits on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEvent {
    PartitionAdded(TopicPartition),
    PartitionRemoved(TopicPartition),
    /// The exposed end moved forward to `end_offset`.
    Advanced {
        tp: TopicPartition,
        end_offset: i64,
    },
    /// The exposed end moved back (truncation, or a tail that turned out to be invalid).
    Truncated {
        tp: TopicPartition,
        end_offset: i64,
    },
    SegmentAdded {
        tp: TopicPartition,
        base_offset: i64,
    },
    SegmentRemoved {
        tp: TopicPartition,
        base_offset: i64,
    },
}

/// One partition directory.
#[derive(Debug)]
pub struct Partition {
    pub tp: TopicPartition,
    pub dir: PathBuf,
    pub topic_id: Uuid,
    /// False when the id was derived from the name (no usable `partition.metadata`).
    pub topic_id_from_file: bool,
    pub segments: BTreeMap<i64, Segment>,
    pub leader_epochs: Vec<EpochEntry>,
    /// From the log dir's `log-start-offset-checkpoint`, when listed.
    pub log_start_checkpoint: Option<i64>,
    /// From the log dir's `replication-offset-checkpoint`, when listed.
    pub high_watermark_checkpoint: Option<i64>,
    /// The co-located broker's high watermark, as last learned over the upstream connection.
    pub upstream_high_watermark: Option<i64>,
    /// Open and aborted transactions from the newest snapshot on, derived from batch headers
    /// and markers (see [`Partition::first_open_txn_offset`]).
    txn: Option<TxnWalk>,
    /// The walk over older batches, for read_committed fetches below where `txn` starts and
    /// no `.txnindex` covers them (see [`Partition::aborted_transactions`]).
    txn_history: Option<TxnWalk>,
}

/// Producers with an open transaction, as of `next_offset`.
/// Batch headers [`Partition::first_open_txn_offset`] reads per call, and the bytes of log they
/// may span: on cold data every header of a large batch is a disk read (about 100 µs on an
/// SSD), while small batches share the scanner's read window, so the span bounds the first case
/// (16 MiB of 1 MiB batches: 16 reads) and the count the second.
pub const TXN_WALK_BATCHES_PER_CALL: usize = 4096;
pub const TXN_WALK_BYTES_PER_CALL: u64 = 16 << 20;

/// A forward walk over a partition's batch headers that follows its transactions.
#[derive(Clone, Debug, Default)]
struct TxnWalk {
    /// Where the walk started: the open transactions there came from a producer snapshot (or
    /// there were none, at log start).
    start: i64,
    /// Every batch below this has been walked.
    next_offset: i64,
    /// Producer id → first offset of its open transaction.
    open: HashMap<i64, i64>,
    /// Aborted transactions whose ABORT markers lie in `[start, next_offset)`, in log order.
    aborted: Vec<AbortedTxn>,
}

impl TxnWalk {
    /// Offsets below this are resolved: no transaction is open there whose fate is unknown.
    fn stable_bound(&self) -> i64 {
        self.open.values().min().map_or(self.next_offset, |&f| f.min(self.next_offset))
    }
}

/// Files found in one listing of a partition directory.
#[derive(Default)]
struct Listing {
    logs: BTreeMap<i64, (PathBuf, FileId, u64)>,
    swap_in_progress: bool,
}

fn list_partition_dir(dir: &Path) -> Result<Listing, LogError> {
    let mut out = Listing::default();
    let rd = fs::read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((base, kind, state)) = meta::parse_segment_file(name) else { continue };
        match (kind, state) {
            (SegmentFileKind::Log, SegmentFileState::Live) => {
                let path = entry.path();
                // The file may vanish between listing and stat (retention, swap): skip it then.
                match fs::metadata(&path) {
                    Ok(m) if m.is_file() => {
                        out.logs.insert(base, (path, FileId::of(&m), m.len()));
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(LogError::io(&path, e)),
                }
            }
            (_, SegmentFileState::Swap) | (_, SegmentFileState::Cleaned) => out.swap_in_progress = true,
            _ => {}
        }
    }
    Ok(out)
}

fn read_optional(path: &Path) -> Result<Option<String>, LogError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(path, e)),
    }
}

impl Partition {
    /// Opens a partition directory: reads its metadata and lists its segments. Only the active
    /// segment is walked now; rolled ones are walked when first used.
    pub fn open(tp: TopicPartition, dir: PathBuf, cache: &mut FileCache) -> Result<(Self, Vec<LogEvent>), LogError> {
        let meta_path = dir.join("partition.metadata");
        let (topic_id, from_file) = match read_optional(&meta_path)? {
            Some(text) => match meta::parse_partition_metadata(&text) {
                Ok(id) => (id, true),
                Err(e) => {
                    log::warn!("{}: {e}; using an id derived from the topic name", meta_path.display());
                    (meta::derived_topic_id(&tp.topic), false)
                }
            },
            None => (meta::derived_topic_id(&tp.topic), false),
        };
        let mut p = Partition {
            tp,
            dir,
            topic_id,
            topic_id_from_file: from_file,
            segments: BTreeMap::new(),
            leader_epochs: Vec::new(),
            log_start_checkpoint: None,
            high_watermark_checkpoint: None,
            upstream_high_watermark: None,
            txn: None,
            txn_history: None,
        };
        p.reload_leader_epochs();
        let events = p.refresh(cache)?;
        Ok((p, events))
    }

    /// Re-reads `leader-epoch-checkpoint`; a bad file is logged and leaves the old entries.
    pub fn reload_leader_epochs(&mut self) {
        let path = self.dir.join("leader-epoch-checkpoint");
        match read_optional(&path) {
            Ok(Some(text)) => match meta::parse_leader_epoch_checkpoint(&text) {
                Ok(e) => self.leader_epochs = e,
                Err(e) => log::warn!("{}: {e}", path.display()),
            },
            Ok(None) => self.leader_epochs.clear(),
            Err(e) => log::warn!("{e}"),
        }
    }

    /// The first offset a consumer may read: the first segment's base offset, raised by the
    /// `log-start-offset-checkpoint` entry (the rule of the broker's `LogLoader.load`).
    pub fn log_start_offset(&self) -> i64 {
        let first = self.segments.keys().next().copied().unwrap_or(0);
        match self.log_start_checkpoint {
            Some(c) if c > first => c.min(self.log_end_offset()),
            _ => first,
        }
    }

    /// The offset after the last complete, CRC-valid batch of the active segment (LEO).
    pub fn log_end_offset(&self) -> i64 {
        match self.segments.values().next_back() {
            Some(s) => s.scanned.map(|x| x.next_offset).unwrap_or(s.base_offset),
            None => self.log_start_checkpoint.unwrap_or(0),
        }
    }

    /// The latest leader epoch (−1 when the partition has no epoch checkpoint).
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epochs.last().map(|e| e.epoch).unwrap_or(-1)
    }

    /// The cheap refresh for "the active segment's file was written": walk its new bytes, no
    /// directory listing. Falls back to a full [`Partition::refresh`] when `file_name` is not the
    /// active segment's `.log` or the file shrank or was replaced.
    pub fn refresh_active(&mut self, file_name: &str, cache: &mut FileCache) -> Result<Vec<LogEvent>, LogError> {
        let Some((&last, seg)) = self.segments.iter().next_back() else { return self.refresh(cache) };
        if seg.log_path.file_name().and_then(|n| n.to_str()) != Some(file_name) {
            return self.refresh(cache);
        }
        match fs::metadata(&seg.log_path) {
            Ok(md) if FileId::of(&md) == seg.id && md.len() >= seg.len => {}
            _ => return self.refresh(cache),
        }
        let before = self.log_end_offset();
        self.ensure_scanned(last, cache)?;
        let after = self.log_end_offset();
        Ok(if after > before {
            vec![LogEvent::Advanced { tp: self.tp.clone(), end_offset: after }]
        } else if after < before {
            self.txn = None;
            self.txn_history = None;
            vec![LogEvent::Truncated { tp: self.tp.clone(), end_offset: after }]
        } else {
            Vec::new()
        })
    }

    /// Re-lists the directory and brings the model up to date; returns what changed.
    pub fn refresh(&mut self, cache: &mut FileCache) -> Result<Vec<LogEvent>, LogError> {
        let before_end = self.log_end_offset();
        let listing = list_partition_dir(&self.dir)?;
        let mut events = Vec::new();
        let tp = self.tp.clone();

        // Segments that left (retention, truncation, compaction): drop them, unless a swap is in
        // progress, in which case the old file stays readable through its descriptor and keeps
        // its offsets covered until the new `X.log` appears.
        let gone: Vec<i64> = self.segments.keys().filter(|b| !listing.logs.contains_key(b)).copied().collect();
        if !listing.swap_in_progress {
            for base in gone {
                if let Some(s) = self.segments.remove(&base) {
                    cache.forget(s.id);
                    events.push(LogEvent::SegmentRemoved { tp: tp.clone(), base_offset: base });
                }
            }
        }
        for (base, (path, id, len)) in listing.logs {
            match self.segments.get_mut(&base) {
                Some(s) if s.id == id => {
                    if len < s.len || s.scanned.is_some_and(|x| len < x.end_position) {
                        // Shrunk in place: truncation. Walk it again from the start; what was
                        // validated past the new end may be rewritten.
                        s.scanned = None;
                        s.validated.clear();
                        s.sparse.clear();
                        s.tail_hint = None;
                    }
                    s.len = len;
                }
                existing => {
                    if let Some(old) = existing {
                        cache.forget(old.id);
                        events.push(LogEvent::SegmentRemoved { tp: tp.clone(), base_offset: base });
                    }
                    self.segments.insert(
                        base,
                        Segment {
                            base_offset: base,
                            log_path: path,
                            id,
                            len,
                            scanned: None,
                            mapped_index: None,
                            active: false,
                            validated: BTreeMap::new(),
                            sparse: Vec::new(),
                            tail_hint: None,
                        },
                    );
                    events.push(LogEvent::SegmentAdded { tp: tp.clone(), base_offset: base });
                }
            }
        }
        // The active segment is always walked to its end; rolled ones lazily.
        let last = self.segments.keys().next_back().copied();
        for (base, s) in self.segments.iter_mut() {
            s.active = Some(*base) == last;
            if s.active {
                s.mapped_index = None;
            }
        }
        if let Some(last) = last {
            self.ensure_scanned(last, cache)?;
        }
        let after_end = self.log_end_offset();
        if after_end < before_end
            || events
                .iter()
                .any(|e| matches!(e, LogEvent::SegmentRemoved { base_offset, .. } if Some(*base_offset) == last))
        {
            // Truncated or the active segment replaced: transaction state is rebuilt on demand.
            self.txn = None;
            self.txn_history = None;
        }
        if after_end > before_end {
            events.push(LogEvent::Advanced { tp: tp.clone(), end_offset: after_end });
        } else if after_end < before_end {
            events.push(LogEvent::Truncated { tp, end_offset: after_end });
        }
        Ok(events)
    }

    /// Walks segment `base` from where the last walk stopped up to its current length, checking
    /// every new batch's CRC. A segment never walked starts from its last confirmed index entry.
    pub fn ensure_scanned(&mut self, base: i64, cache: &mut FileCache) -> Result<Option<Scanned>, LogError> {
        let Some(seg) = self.segments.get(&base) else { return Ok(None) };
        let Some(file) = cache.open(&seg.log_path, seg.id).map_err(|e| LogError::io(&seg.log_path, e))? else {
            // Replaced or removed since the listing: the next refresh will see it.
            return Ok(seg.scanned);
        };
        let len = file.len().map_err(|e| LogError::io(&seg.log_path, e))?;
        let mut state = match seg.scanned {
            Some(s) if s.end_position <= len => s,
            _ => {
                let start = start_hint(seg, &file, len);
                Scanned {
                    end_position: start.0,
                    next_offset: start.1,
                    first_offset: None,
                    max_timestamp: -1,
                    stopped: None,
                }
            }
        };
        let walk_start = state.end_position;
        let mut last_sparse = seg.sparse.last().map(|&(_, p)| u64::from(p));
        let mut new_sparse = Vec::new();
        let mut first_new = None;
        if state.end_position < len || state.stopped.is_some() {
            let mut scanner = Scanner::new(&*file, state.end_position, len, true);
            state.stopped = None;
            loop {
                match scanner.step() {
                    Step::Batch { position, header } => {
                        first_new.get_or_insert((header.base_offset, position));
                        if last_sparse.is_none_or(|p| position >= p + SPARSE_STEP_BYTES) {
                            // Kafka bounds offsets within a segment to i32 and segments to
                            // 2 GiB; an entry that does not fit is simply not kept.
                            let delta = u32::try_from(header.base_offset - seg.base_offset);
                            if let (Ok(d), Ok(p)) = (delta, u32::try_from(position)) {
                                new_sparse.push((d, p));
                                last_sparse = Some(position);
                            }
                        }
                        if position == 0 {
                            state.first_offset = Some(header.base_offset);
                        }
                        state.end_position = position + header.size();
                        state.next_offset = state.next_offset.max(header.next_offset());
                        state.max_timestamp = state.max_timestamp.max(header.max_timestamp);
                    }
                    Step::End(ScanEnd::Clean) => break,
                    Step::End(ScanEnd::Incomplete { .. }) => {
                        state.stopped = Some(ScanStop::Incomplete);
                        break;
                    }
                    Step::End(ScanEnd::Invalid { error, .. }) => {
                        state.stopped = Some(ScanStop::Invalid(error));
                        break;
                    }
                    Step::End(ScanEnd::Io { error, .. }) => return Err(LogError::io(&seg.log_path, error)),
                }
            }
        }
        if state.first_offset.is_none() && state.end_position > 0 {
            // The walk started from an index hint; read the first batch once for its offset.
            state.first_offset = scan::batch_at(&*file, 0, len, false).map(|h| h.base_offset);
        }
        let Some(seg) = self.segments.get_mut(&base) else { return Ok(None) };
        seg.len = len;
        seg.scanned = Some(state);
        seg.sparse.extend(new_sparse);
        if first_new.is_some() {
            seg.tail_hint = first_new;
        }
        if state.end_position > walk_start {
            insert_range(&mut seg.validated, walk_start, state.end_position);
        }
        Ok(Some(state))
    }

    /// Makes sure the batches of segment `base` from `start` (a batch start) through the batch
    /// holding byte `end - 1` are complete and CRC-valid, reading each batch once per process
    /// lifetime. Returns the position up to which that holds: ≥ `end` when all is well, else the
    /// start of the first bad batch.
    pub fn validate(&mut self, base: i64, start: u64, end: u64, cache: &mut FileCache) -> Result<u64, LogError> {
        let Some(seg) = self.segments.get(&base) else { return Ok(start) };
        if let Some((_, &e)) = seg.validated.range(..=start).next_back() {
            if e >= end {
                return Ok(e);
            }
        }
        let Some(file) = cache.open(&seg.log_path, seg.id).map_err(|e| LogError::io(&seg.log_path, e))? else {
            return Ok(start);
        };
        let len = file.len().map_err(|e| LogError::io(&seg.log_path, e))?;
        let mut scanner = Scanner::new(&*file, start, len, true);
        let mut pos = start;
        while pos < end {
            match scanner.step() {
                Step::Batch { position, header } => pos = position + header.size(),
                Step::End(ScanEnd::Io { error, .. }) => return Err(LogError::io(&seg.log_path, error)),
                Step::End(_) => break,
            }
        }
        if pos > start {
            if let Some(seg) = self.segments.get_mut(&base) {
                insert_range(&mut seg.validated, start, pos);
            }
        }
        Ok(pos)
    }

    /// The segment that may hold `offset`: the last one whose base offset is ≤ `offset`.
    fn segment_for(&self, offset: i64) -> Option<i64> {
        self.segments.range(..=offset).next_back().map(|(b, _)| *b).or_else(|| self.segments.keys().next().copied())
    }

    /// Finds the batch holding `offset`, or the first batch after it (offsets removed by
    /// compaction), searching later segments if needed. Positions come from the offset index,
    /// confirmed against the `.log`, then a header walk. `None` when no exposed batch has
    /// `last_offset >= offset`.
    pub fn find(&mut self, offset: i64, cache: &mut FileCache) -> Result<Option<Located>, LogError> {
        let Some(start) = self.segment_for(offset) else { return Ok(None) };
        let bases: Vec<i64> = self.segments.range(start..).map(|(b, _)| *b).collect();
        for base in bases {
            let Some(scanned) = self.ensure_scanned(base, cache)? else { continue };
            if let Some(s) = self.segments.get_mut(&base) {
                s.cache_index();
            }
            let seg = &self.segments[&base];
            let Some(file) = cache.open(&seg.log_path, seg.id).map_err(|e| LogError::io(&seg.log_path, e))? else {
                continue;
            };
            if offset >= scanned.next_offset {
                // Every batch of this segment ends below `offset`: try the next one.
                continue;
            }
            let limit = scanned.end_position;
            let from = if offset > base {
                // Sparse entries are contiguous from the first walk's start to the walked end,
                // one per step: a floor entry means at most one step of headers to walk, with
                // no index file read.
                let delta = offset - base;
                let sparse = match seg.sparse.partition_point(|&(d, _)| i64::from(d) <= delta) {
                    0 => None,
                    i => Some(u64::from(seg.sparse[i - 1].1)),
                };
                let tail = seg.tail_hint.filter(|&(o, p)| o <= offset && p < limit).map(|(_, p)| p);
                match sparse.max(tail) {
                    Some(p) => p,
                    None => index_floor(seg, &file, offset, limit),
                }
            } else {
                0
            };
            let mut scanner = Scanner::new(&*file, from, limit, false);
            while let Step::Batch { position, header } = scanner.step() {
                if header.last_offset() >= offset {
                    return Ok(Some(Located { segment_base: base, position, header, segment_end: limit, file }));
                }
            }
        }
        Ok(None)
    }

    /// The first batch whose max timestamp is ≥ `timestamp` (Kafka's `fetchOffsetByTimestamp`
    /// at batch granularity; the record inside it is found with [`records`]).
    pub fn find_by_timestamp(&mut self, timestamp: i64, cache: &mut FileCache) -> Result<Option<Located>, LogError> {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for base in bases {
            let Some(scanned) = self.ensure_scanned(base, cache)? else { continue };
            let seg = &self.segments[&base];
            let Some(file) = cache.open(&seg.log_path, seg.id).map_err(|e| LogError::io(&seg.log_path, e))? else {
                continue;
            };
            let limit = scanned.end_position;
            let from = time_index_start(seg, &file, timestamp, limit);
            let mut scanner = Scanner::new(&*file, from, limit, false);
            while let Step::Batch { position, header } = scanner.step() {
                if header.max_timestamp >= timestamp {
                    return Ok(Some(Located { segment_base: base, position, header, segment_end: limit, file }));
                }
            }
        }
        Ok(None)
    }

    /// The first offset of the earliest transaction still open at the exposed end, if any: the
    /// last stable offset is the smaller of this and the high watermark. The broker keeps this
    /// in memory only; here it is derived from the newest producer snapshot (`<offset>.snapshot`,
    /// whose entries carry each producer's open-transaction start) plus the batch headers after
    /// it: a transactional data batch opens its producer's transaction, a control batch (commit
    /// or abort marker) closes it, and an ABORT marker is recorded as an aborted transaction
    /// (see [`Partition::aborted_transactions`]). Updated incrementally as the log grows.
    ///
    /// The walk reads at most [`TXN_WALK_BATCHES_PER_CALL`] batch headers spanning at most
    /// [`TXN_WALK_BYTES_PER_CALL`] per call, so a
    /// partition with no recent snapshot (a copied log dir, say) cannot stall the event loop on
    /// its first request (each header of cold data is a disk read). Until the walk has reached
    /// the end, the offset it has reached is returned: nothing past it is known to be stable,
    /// so read_committed consumers see up to there and more on each later request.
    pub fn first_open_txn_offset(&mut self, cache: &mut FileCache) -> Result<Option<i64>, LogError> {
        let end = self.log_end_offset();
        let mut t = match self.txn.take() {
            Some(t) if t.next_offset <= end => t,
            _ => self.txn_from_snapshot(end),
        };
        let walked = self.advance_txn_walk(&mut t, end, cache);
        let log_start = self.log_start_offset();
        t.aborted.retain(|a| a.last_offset >= log_start);
        let first = t.open.values().min().copied();
        let first =
            if t.next_offset < end { Some(first.map_or(t.next_offset, |f| f.min(t.next_offset))) } else { first };
        self.txn = Some(t);
        walked?;
        Ok(first)
    }

    /// Walks batch headers from `t.next_offset` up to `until` (exclusive; batches starting at or
    /// past it are left), within the per-call bounds, updating the open and aborted
    /// transactions. Reading a control batch's type costs one small read of its first record.
    fn advance_txn_walk(&mut self, t: &mut TxnWalk, until: i64, cache: &mut FileCache) -> Result<(), LogError> {
        let mut batches = TXN_WALK_BATCHES_PER_CALL;
        let mut span = TXN_WALK_BYTES_PER_CALL;
        'walk: while t.next_offset < until {
            let Some(loc) = self.find(t.next_offset, cache)? else { break };
            let seg_base = loc.segment_base;
            let mut scanner = Scanner::new(&*loc.file, loc.position, loc.segment_end, false);
            while let Step::Batch { position, header } = scanner.step() {
                if header.base_offset >= until || batches == 0 || span == 0 {
                    break 'walk;
                }
                batches -= 1;
                span = span.saturating_sub(header.size());
                if header.is_transactional() {
                    if header.is_control() {
                        let first = t.open.remove(&header.producer_id);
                        match control_type_at(&loc.file, position, &header) {
                            Some(ControlType::Abort) => t.aborted.push(AbortedTxn {
                                version: 0,
                                producer_id: header.producer_id,
                                first_offset: first.unwrap_or(header.base_offset),
                                last_offset: header.base_offset,
                                last_stable_offset: -1,
                            }),
                            Some(_) => {}
                            None => log::warn!(
                                "{}: control batch at offset {} has no readable control record; taken as a commit",
                                self.tp,
                                header.base_offset
                            ),
                        }
                    } else {
                        t.open.entry(header.producer_id).or_insert(header.base_offset);
                    }
                }
                t.next_offset = header.next_offset();
            }
            // Continue in the next segment (its base offset may be past a gap).
            match self.segments.range(seg_base + 1..).next() {
                Some((next_base, _)) => t.next_offset = t.next_offset.max(*next_base),
                None => break,
            }
        }
        Ok(())
    }

    /// Transaction state from the newest snapshot at or below `at`, or empty from log start.
    fn txn_from_snapshot(&self, at: i64) -> TxnWalk {
        let log_start = self.log_start_offset();
        let mut best: Option<(i64, PathBuf)> = None;
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for entry in rd.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Some((offset, SegmentFileKind::Snapshot, SegmentFileState::Live)) =
                    meta::parse_segment_file(name)
                {
                    if offset <= at && offset >= log_start && best.as_ref().is_none_or(|(b, _)| offset > *b) {
                        best = Some((offset, entry.path()));
                    }
                }
            }
        }
        if let Some((offset, path)) = best {
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| meta::parse_producer_snapshot(&b).map_err(|e| e.to_string()))
            {
                Ok(entries) => {
                    let open = entries
                        .iter()
                        .filter(|e| e.current_txn_first_offset >= 0)
                        .map(|e| (e.producer_id, e.current_txn_first_offset))
                        .collect();
                    return TxnWalk { start: offset, next_offset: offset, open, aborted: Vec::new() };
                }
                Err(e) => log::warn!("{}: {e}; deriving transactions from the whole log", path.display()),
            }
        }
        TxnWalk { start: log_start, next_offset: log_start, open: HashMap::new(), aborted: Vec::new() }
    }

    /// Aborted transactions overlapping `[fetch_offset, upper_bound_offset)`, and the upper
    /// bound that list is exact for (≤ `upper_bound_offset`; a read_committed Fetch must not
    /// send records at or past it).
    ///
    /// The list comes from the ABORT markers in the log, never from `.txnindex` files: a segment
    /// without one may be a broker segment with no aborts (the broker creates the file with its
    /// first entry) or one whose index was lost (a copied directory, another writer), an active
    /// segment's index is appended after its marker, and an index may name a marker that is not
    /// yet in the exposed log. Only the markers tell. Markers at or after `S` (where the
    /// last-stable-offset walk of [`first_open_txn_offset`](Self::first_open_txn_offset)
    /// started) are already known from that walk. For an older fetch offset a second walk runs
    /// from the newest producer snapshot at or below it (the broker keeps one per segment base)
    /// towards `S`, bounded per call like the first; until it has resolved every transaction
    /// it met, the bound is lowered to the first unresolved one (the caller answers with what
    /// is below and the next request continues the walk).
    pub fn aborted_transactions(
        &mut self,
        fetch_offset: i64,
        upper_bound_offset: i64,
        cache: &mut FileCache,
    ) -> Result<(Vec<AbortedTxn>, i64), LogError> {
        if self.txn.is_none() {
            self.first_open_txn_offset(cache)?;
        }
        let lso_start = self.txn.as_ref().map_or(self.log_start_offset(), |t| t.start);
        let mut upper = upper_bound_offset;
        let mut out = Vec::new();
        if fetch_offset < lso_start {
            let mut h = match self.txn_history.take() {
                Some(h) if h.start <= fetch_offset => h,
                _ => self.txn_from_snapshot(fetch_offset),
            };
            let walked = self.advance_txn_walk(&mut h, lso_start, cache);
            if h.next_offset < lso_start {
                upper = upper.min(h.stable_bound());
            }
            out.extend(
                h.aborted
                    .iter()
                    .filter(|t| t.last_offset >= fetch_offset && t.first_offset < upper && t.last_offset < lso_start),
            );
            self.txn_history = Some(h);
            walked?;
        }
        if let Some(t) = &self.txn {
            out.extend(t.aborted.iter().filter(|t| t.last_offset >= fetch_offset && t.first_offset < upper));
        }
        Ok((out, upper))
    }
}

/// The control type of the control batch at `position`, from its first record's key.
fn control_type_at(file: &File, position: u64, header: &BatchHeader) -> Option<ControlType> {
    let start = position + batch::V2_HEADER_SIZE as u64;
    let end = position + header.size();
    let n = (end.saturating_sub(start) as usize).min(batch::CONTROL_KEY_PROBE_BYTES);
    let mut buf = [0u8; batch::CONTROL_KEY_PROBE_BYTES];
    let got = ReadAt::read_at(file, &mut buf[..n], start).ok()?;
    batch::control_type(&buf[..got])
}

/// Adds `[start, end)` to a set of disjoint ranges, merging overlapping and touching ones.
fn insert_range(set: &mut BTreeMap<u64, u64>, mut start: u64, mut end: u64) {
    let touching: Vec<(u64, u64)> = set.range(..=end).filter(|(_, &e)| e >= start).map(|(&s, &e)| (s, e)).collect();
    for (s, e) in touching {
        set.remove(&s);
        start = start.min(s);
        end = end.max(e);
    }
    set.insert(start, end);
}

/// Where to start walking a segment never walked before: its last offset-index entry that is
/// confirmed by a CRC-valid batch header at that position (so a stale or zero entry is never
/// trusted), else position 0. Returns (position, next offset lower bound).
fn start_hint(seg: &Segment, file: &File, len: u64) -> (u64, i64) {
    let Some(idx) = seg.offset_index() else { return (0, seg.base_offset) };
    let mut bound = idx.slots();
    for _ in 0..8 {
        let Ok(Some((slot, e))) = idx.floor(i64::MAX, bound) else { break };
        if let Some(h) = confirm(seg, file, e, len) {
            return (u64::from(e.position), h.base_offset);
        }
        bound = slot;
    }
    (0, seg.base_offset)
}

/// Confirms an index entry: a CRC-valid batch starts at its position, at or after the segment's
/// base offset, whose base offset is ≤ the entry's offset.
fn confirm(seg: &Segment, file: &File, e: index::OffsetEntry, limit: u64) -> Option<BatchHeader> {
    let h = scan::batch_at(file, u64::from(e.position), limit, true)?;
    (h.base_offset >= seg.base_offset && h.base_offset <= e.offset).then_some(h)
}

/// Position to start a header walk for `offset`: the last confirmed index entry with an offset
/// below `offset`, else 0.
fn index_floor(seg: &Segment, file: &File, offset: i64, limit: u64) -> u64 {
    let Some(idx) = seg.offset_index() else { return 0 };
    let mut bound = idx.slots();
    for _ in 0..8 {
        // Entry (O, P): the batch at P ends at O, so a batch holding `offset` > O is after P;
        // for `offset` == O the batch at P holds it.
        let Ok(Some((slot, e))) = idx.floor(offset, bound) else { return 0 };
        if u64::from(e.position) < limit && confirm(seg, file, e, limit).is_some() {
            return u64::from(e.position);
        }
        bound = slot;
    }
    0
}

/// Position to start a header walk for the first batch with max timestamp ≥ `timestamp`.
fn time_index_start(seg: &Segment, file: &File, timestamp: i64, limit: u64) -> u64 {
    let Ok(source) = IndexSource::open(&seg.time_index_path(), false) else { return 0 };
    let tidx = TimeIndex { base_offset: seg.base_offset, source };
    match tidx.floor(timestamp - 1) {
        // Entry (T, O): up to offset O the max timestamp is T < target, so the answer is after O.
        Ok(Some(e)) => index_floor(seg, file, e.offset, limit),
        _ => 0,
    }
}

/// One log directory (an entry of the broker's `log.dirs`).
#[derive(Debug)]
pub struct LogDir {
    pub path: PathBuf,
    pub meta: Option<MetaProperties>,
}

/// Every partition of every log directory logferry serves.
pub struct LogView {
    pub dirs: Vec<LogDir>,
    pub partitions: BTreeMap<TopicPartition, Partition>,
    pub cache: FileCache,
    /// Partitions a periodic rescan still has to refresh (see [`LogView::rescan_step`]).
    rescan_todo: Option<Vec<(TopicPartition, PathBuf)>>,
    /// The KRaft metadata log, when one is followed (fleet presentation, see [`crate::cluster`]).
    pub cluster: Option<crate::cluster::MetadataLog>,
}

impl LogView {
    /// Opens the given log directories. A path that is missing, unreadable or not a directory is
    /// an error naming it; a directory with no partitions is fine (partitions appear later).
    pub fn open(paths: &[PathBuf], segments_open_max: usize) -> Result<Self, LogError> {
        let mut dirs = Vec::new();
        for path in paths {
            let md = fs::metadata(path).map_err(|e| LogError::io(path, e))?;
            if !md.is_dir() {
                return Err(LogError { path: path.clone(), kind: LogErrorKind::NotADirectory });
            }
            fs::read_dir(path).map_err(|e| LogError::io(path, e))?;
            let meta_path = path.join("meta.properties");
            let meta = match read_optional(&meta_path)? {
                Some(text) => Some(meta::parse_meta_properties(&text).map_err(|e| LogError::format(&meta_path, e))?),
                None => None,
            };
            dirs.push(LogDir { path: path.clone(), meta });
        }
        let mut view = LogView {
            dirs,
            partitions: BTreeMap::new(),
            cache: FileCache::new(segments_open_max),
            rescan_todo: None,
            cluster: None,
        };
        view.rescan()?;
        Ok(view)
    }

    /// The cluster id from the first `meta.properties` that has one.
    pub fn cluster_id(&self) -> Option<&str> {
        self.dirs.iter().find_map(|d| d.meta.as_ref()?.cluster_id.as_deref())
    }

    /// The node id from the first `meta.properties` that has one.
    pub fn node_id(&self) -> Option<i32> {
        self.dirs.iter().find_map(|d| d.meta.as_ref()?.node_id)
    }

    /// Lists every log dir again: partitions added and removed, checkpoints re-read, every
    /// partition refreshed. The safety net behind inotify.
    pub fn rescan(&mut self) -> Result<Vec<LogEvent>, LogError> {
        self.rescan_todo = None;
        let mut events = Vec::new();
        loop {
            let (e, done) = self.rescan_step(usize::MAX)?;
            events.extend(e);
            if done {
                return Ok(events);
            }
        }
    }

    /// True while a rescan started by [`rescan_step`](Self::rescan_step) has partitions left.
    pub fn rescan_in_progress(&self) -> bool {
        self.rescan_todo.is_some()
    }

    /// One slice of a rescan, so a periodic rescan of many partitions never holds the event
    /// loop for long (1,000 partitions take about 40 ms in one go): the first call lists the log
    /// dirs (partitions that are gone are removed at once), then each call refreshes (or opens)
    /// at most `partitions_max` of the listed partitions, with their leader epochs. Returns the
    /// events and whether the rescan is complete (the checkpoints are reloaded then).
    pub fn rescan_step(&mut self, partitions_max: usize) -> Result<(Vec<LogEvent>, bool), LogError> {
        let mut events = Vec::new();
        if self.rescan_todo.is_none() {
            let mut seen: BTreeMap<TopicPartition, PathBuf> = BTreeMap::new();
            for d in &self.dirs {
                let rd = fs::read_dir(&d.path).map_err(|e| LogError::io(&d.path, e))?;
                for entry in rd {
                    let entry = entry.map_err(|e| LogError::io(&d.path, e))?;
                    let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
                    let Some((topic, partition)) = meta::parse_partition_dir(&name) else { continue };
                    if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        continue;
                    }
                    let tp = TopicPartition { topic, partition };
                    if let Some(other) = seen.get(&tp) {
                        log::warn!(
                            "{tp} is in two log dirs ({} and {}); serving the first",
                            other.display(),
                            entry.path().display()
                        );
                        continue;
                    }
                    seen.insert(tp, entry.path());
                }
            }
            let removed: Vec<TopicPartition> =
                self.partitions.keys().filter(|tp| !seen.contains_key(*tp)).cloned().collect();
            for tp in removed {
                if let Some(p) = self.partitions.remove(&tp) {
                    forget_segments(&mut self.cache, &p);
                }
                events.push(LogEvent::PartitionRemoved(tp));
            }
            // Reversed, so the next partition to do is popped from the end.
            self.rescan_todo = Some(seen.into_iter().rev().collect());
        }
        let mut done_now = 0;
        while done_now < partitions_max {
            let Some((tp, dir)) = self.rescan_todo.as_mut().and_then(Vec::pop) else { break };
            done_now += 1;
            let result = match self.partitions.get_mut(&tp) {
                Some(p) if p.dir == dir => p.refresh(&mut self.cache).map(|e| (None, e)),
                _ => Partition::open(tp.clone(), dir, &mut self.cache).map(|(p, e)| (Some(p), e)),
            };
            match result {
                Ok((new, e)) => {
                    if let Some(p) = new {
                        events.push(LogEvent::PartitionAdded(tp.clone()));
                        // Reopened from another folder (moved between log dirs: the broker
                        // swapped in the `-future` copy and renamed the old one `-delete`):
                        // the old folder's files leave the cache, or they stay open after the
                        // broker unlinks them.
                        if let Some(old) = self.partitions.insert(tp.clone(), p) {
                            forget_segments(&mut self.cache, &old);
                        }
                    }
                    if let Some(p) = self.partitions.get_mut(&tp) {
                        p.reload_leader_epochs();
                    }
                    events.extend(e);
                }
                // A partition directory that vanished between listing and opening is simply gone.
                Err(LogError { kind: LogErrorKind::Io(ref e), .. }) if e.kind() == io::ErrorKind::NotFound => {
                    if let Some(p) = self.partitions.remove(&tp) {
                        forget_segments(&mut self.cache, &p);
                        events.push(LogEvent::PartitionRemoved(tp));
                    }
                }
                Err(e) => {
                    self.rescan_todo = None;
                    return Err(e);
                }
            }
        }
        let done = self.rescan_todo.as_ref().is_none_or(Vec::is_empty);
        if done {
            self.rescan_todo = None;
            self.reload_checkpoints();
        }
        Ok((events, done))
    }

    /// Refreshes one partition (after an inotify event in its directory): re-reads its leader
    /// epochs and re-lists its segments.
    pub fn refresh(&mut self, tp: &TopicPartition) -> Result<Vec<LogEvent>, LogError> {
        let Some(p) = self.partitions.get_mut(tp) else { return Ok(Vec::new()) };
        p.reload_leader_epochs();
        match p.refresh(&mut self.cache) {
            Err(LogError { kind: LogErrorKind::Io(ref e), .. }) if e.kind() == io::ErrorKind::NotFound => self.rescan(),
            other => other,
        }
    }

    /// The fast path for a write to `file_name` in a partition directory (see
    /// [`Partition::refresh_active`]).
    pub fn refresh_active(&mut self, tp: &TopicPartition, file_name: &str) -> Result<Vec<LogEvent>, LogError> {
        let Some(p) = self.partitions.get_mut(tp) else { return Ok(Vec::new()) };
        match p.refresh_active(file_name, &mut self.cache) {
            Err(LogError { kind: LogErrorKind::Io(ref e), .. }) if e.kind() == io::ErrorKind::NotFound => self.rescan(),
            other => other,
        }
    }

    /// Re-reads `replication-offset-checkpoint` and `log-start-offset-checkpoint` of every dir.
    pub fn reload_checkpoints(&mut self) {
        for d in &self.dirs {
            for (file, is_hw) in [("replication-offset-checkpoint", true), ("log-start-offset-checkpoint", false)] {
                let path = d.path.join(file);
                let parsed = match read_optional(&path) {
                    Ok(Some(text)) => meta::parse_offset_checkpoint(&text),
                    Ok(None) => Ok(BTreeMap::new()),
                    Err(e) => {
                        log::warn!("{e}");
                        continue;
                    }
                };
                let entries = match parsed {
                    Ok(e) => e,
                    Err(e) => {
                        log::warn!("{}: {e}", path.display());
                        continue;
                    }
                };
                for (tp, p) in self.partitions.iter_mut() {
                    if !p.dir.starts_with(&d.path) {
                        continue;
                    }
                    let v = entries.get(&(tp.topic.clone(), tp.partition)).copied();
                    if is_hw {
                        p.high_watermark_checkpoint = v;
                    } else {
                        p.log_start_checkpoint = v;
                    }
                }
            }
        }
    }

    pub fn partition(&self, tp: &TopicPartition) -> Option<&Partition> {
        self.partitions.get(tp)
    }
}
