//! The cluster as the KRaft metadata log on disk says it is (`__cluster_metadata-0`).
//!
//! Owns following that log: the newest snapshot (`<end offset>-<epoch>.checkpoint`, not the
//! bootstrap snapshot 0-0, not `.part` or `.deleted`) replaces the image, then the log's batches
//! from the snapshot's end offset on are replayed ([`image::Image`]); metadata transactions
//! (Begin/End/AbortTransactionRecord) are buffered and applied or dropped whole, as the broker's
//! `MetadataBatchLoader` does. [`MetadataLog::refresh`] reads only what was appended since the
//! last call (the tailer calls it on inotify events; the controller's NoOpRecord arrives twice a
//! second), and rebuilds from scratch when the log was truncated under it (the last batch it
//! applied is gone or different, or a snapshot newer than its position appeared).
//!
//! Committed records only: the files hold records the quorum has not committed yet, and nothing
//! on disk says where the quorum's high watermark is (`docs/cluster-and-security.md` §1.5).
//! With `--upstream`, the co-located broker is asked (DescribeQuorum, see
//! [`crate::server::upstream`]) and [`MetadataLog::commit_bound`] holds back every batch not
//! wholly below that high watermark. Without it (or while the broker does not answer), this
//! reader applies every complete, CRC-valid batch and relies on detection (a departure,
//! documented): an uncommitted suffix that the broker truncates (a KRaft leader change with a
//! diverging epoch) is noticed on the next refresh and the image rebuilt without it. On a
//! healthy quorum records commit within milliseconds of being appended, so that is the window
//! in which an uncommitted change can be shown.

pub mod fleet;
pub mod image;
pub mod records;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::log::batch::{self, HeaderParse, V2_HEADER_SIZE};
use crate::log::meta::{parse_segment_file, SegmentFileKind, SegmentFileState};
use image::Image;
use records::MetadataRecord;

/// The metadata log's directory name inside a log dir.
pub const METADATA_DIR_NAME: &str = "__cluster_metadata-0";
/// Largest batch the raft layer writes is 8 MiB (`KafkaRaftClient.MAX_BATCH_SIZE_BYTES`);
/// a length above this bound is corruption.
pub const METADATA_BATCH_BYTES_MAX: i32 = 16 << 20;

/// Counters for the metrics and the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub records_applied: u64,
    /// Record types or versions this build does not know (skipped).
    pub records_unknown: u64,
    /// Records that did not decode (skipped).
    pub records_invalid: u64,
    /// Complete batches whose CRC did not match (reading stops there until they change).
    pub batches_corrupt: u64,
    pub rebuilds: u64,
}

/// Where the reader is in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    /// Base offset of the segment being read.
    segment: i64,
    /// Byte position of the next batch in it.
    position: u64,
    /// Position and CRC of the last batch applied from this segment, to notice truncation.
    last: Option<(u64, u32)>,
}

/// A snapshot file's id: every record below `end_offset` is in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotId {
    pub end_offset: i64,
    pub epoch: i32,
}

/// Parses `<20-digit offset>-<10-digit epoch>.checkpoint`.
pub fn parse_snapshot_name(name: &str) -> Option<SnapshotId> {
    let stem = name.strip_suffix(".checkpoint")?;
    let (o, e) = stem.split_once('-')?;
    if o.len() != 20
        || e.len() != 10
        || !o.bytes().all(|b| b.is_ascii_digit())
        || !e.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(SnapshotId { end_offset: o.parse().ok()?, epoch: e.parse().ok()? })
}

/// Why the metadata log could not be read at all.
#[derive(Debug)]
pub enum MetadataLogError {
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for MetadataLogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for MetadataLogError {}

pub struct MetadataLog {
    pub dir: PathBuf,
    pub image: Image,
    /// Offset of the next record to apply.
    pub next_offset: i64,
    /// The snapshot the image was started from.
    pub snapshot: Option<SnapshotId>,
    pub stats: Stats,
    /// Bumped whenever the image changes (not for NoOp records).
    pub generation: u64,
    /// The metadata quorum's high watermark when known (learned from the co-located broker):
    /// batches are applied only once wholly below it. `None`: every complete batch is applied.
    pub commit_bound: Option<i64>,
    cursor: Option<Cursor>,
    /// Records of an open metadata transaction, with their offsets.
    txn: Option<Vec<MetadataRecord>>,
}

struct Listing {
    segments: Vec<i64>,
    snapshot: Option<SnapshotId>,
}

fn list(dir: &Path) -> Result<Listing, MetadataLogError> {
    let rd = std::fs::read_dir(dir).map_err(|e| MetadataLogError::Io(dir.to_path_buf(), e))?;
    let mut segments = Vec::new();
    let mut snapshot: Option<SnapshotId> = None;
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = parse_snapshot_name(name) {
            // 0-0 is the formatter's bootstrap snapshot: not committed state (§1.3).
            if id.end_offset > 0 && snapshot.is_none_or(|s| id > s) {
                snapshot = Some(id);
            }
        } else if let Some((base, SegmentFileKind::Log, SegmentFileState::Live)) = parse_segment_file(name) {
            segments.push(base);
        }
    }
    segments.sort_unstable();
    Ok(Listing { segments, snapshot })
}

fn segment_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(crate::log::meta::segment_file_name(base, "log"))
}

fn snapshot_path(dir: &Path, id: SnapshotId) -> PathBuf {
    dir.join(format!("{:020}-{:010}.checkpoint", id.end_offset, id.epoch))
}

/// One complete batch read from a file.
struct ReadBatch {
    header: batch::BatchHeader,
    bytes: Vec<u8>,
}

enum BatchRead {
    Batch(ReadBatch),
    /// Not a whole batch yet (the writer is appending) or the end of the file.
    End,
    /// A complete batch that is not valid (bad CRC or header).
    Corrupt,
}

fn read_batch(f: &File, position: u64, file_len: u64) -> Result<BatchRead, std::io::Error> {
    if file_len < position + V2_HEADER_SIZE as u64 {
        return Ok(BatchRead::End);
    }
    let mut head = [0u8; V2_HEADER_SIZE];
    f.read_exact_at(&mut head, position)?;
    let header = match batch::parse_header(&head, METADATA_BATCH_BYTES_MAX) {
        HeaderParse::Complete(h) if h.magic == 2 => h,
        HeaderParse::Complete(_) | HeaderParse::Invalid(_) => return Ok(BatchRead::Corrupt),
        HeaderParse::Incomplete(_) => return Ok(BatchRead::End),
    };
    let size = header.size();
    if file_len < position + size {
        return Ok(BatchRead::End);
    }
    let mut bytes = vec![0u8; size as usize];
    f.read_exact_at(&mut bytes, position)?;
    if batch::check_crc(&header, &bytes).is_err() {
        return Ok(BatchRead::Corrupt);
    }
    Ok(BatchRead::Batch(ReadBatch { header, bytes }))
}

impl MetadataLog {
    /// Reads the newest snapshot and the log after it.
    pub fn open(dir: &Path) -> Result<Self, MetadataLogError> {
        let mut m = Self {
            dir: dir.to_path_buf(),
            image: Image::default(),
            next_offset: 0,
            snapshot: None,
            stats: Stats::default(),
            generation: 0,
            commit_bound: None,
            cursor: None,
            txn: None,
        };
        m.rebuild()?;
        m.stats.rebuilds = 0;
        Ok(m)
    }

    fn rebuild(&mut self) -> Result<(), MetadataLogError> {
        self.stats.rebuilds += 1;
        self.image = Image::default();
        self.next_offset = 0;
        self.snapshot = None;
        self.cursor = None;
        self.txn = None;
        self.generation += 1;
        let listing = list(&self.dir)?;
        if let Some(id) = listing.snapshot {
            self.load_snapshot(id)?;
        }
        self.read_log(&listing)
    }

    fn load_snapshot(&mut self, id: SnapshotId) -> Result<(), MetadataLogError> {
        let path = snapshot_path(&self.dir, id);
        let f = match File::open(&path) {
            Ok(f) => f,
            // Removed between listing and opening (retention): replay the log alone.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(MetadataLogError::Io(path, e)),
        };
        let len = f.metadata().map_err(|e| MetadataLogError::Io(path.clone(), e))?.len();
        let mut position = 0u64;
        loop {
            match read_batch(&f, position, len).map_err(|e| MetadataLogError::Io(path.clone(), e))? {
                BatchRead::Batch(b) => {
                    position += b.header.size();
                    if !b.header.is_control() {
                        self.apply_batch(&b, None);
                    }
                }
                BatchRead::End => break,
                BatchRead::Corrupt => {
                    self.stats.batches_corrupt += 1;
                    log::warn!("{}: corrupt batch at position {position}; snapshot read up to there", path.display());
                    break;
                }
            }
        }
        // A snapshot is a whole image: an unfinished transaction in it is not applied.
        self.txn = None;
        self.snapshot = Some(id);
        self.next_offset = id.end_offset;
        Ok(())
    }

    /// Decodes a batch's records and applies those at or above `next_offset` (all of them for
    /// a snapshot, `from = None`).
    fn apply_batch(&mut self, b: &ReadBatch, from: Option<i64>) {
        let recs = match crate::log::records::decode(&b.header, &b.bytes) {
            Ok(r) => r,
            Err(e) => {
                self.stats.records_invalid += u64::from(b.header.records_count.max(0) as u32);
                log::warn!("{}: batch at offset {}: {e}; skipped", self.dir.display(), b.header.base_offset);
                return;
            }
        };
        for r in recs {
            if from.is_some_and(|f| r.offset < f) {
                continue;
            }
            let Some(value) = r.value.as_deref() else {
                self.stats.records_invalid += 1;
                continue;
            };
            match records::decode(value) {
                Ok(MetadataRecord::Unknown { api_key, version }) => {
                    self.stats.records_unknown += 1;
                    log::debug!("metadata record type {api_key} v{version} at offset {} skipped", r.offset);
                }
                Ok(rec) => self.replay(rec),
                Err(e) => {
                    self.stats.records_invalid += 1;
                    log::warn!("{}: metadata record at offset {}: {e}; skipped", self.dir.display(), r.offset);
                }
            }
        }
    }

    fn replay(&mut self, rec: MetadataRecord) {
        match rec {
            MetadataRecord::BeginTransaction => {
                if self.txn.replace(Vec::new()).is_some() {
                    log::warn!(
                        "{}: metadata transaction begun inside another; the first is dropped",
                        self.dir.display()
                    );
                }
            }
            MetadataRecord::EndTransaction => match self.txn.take() {
                Some(recs) => {
                    for r in recs {
                        self.apply_now(r);
                    }
                }
                None => log::warn!("{}: end of a metadata transaction that was not begun", self.dir.display()),
            },
            MetadataRecord::AbortTransaction => {
                if self.txn.take().is_none() {
                    log::warn!("{}: abort of a metadata transaction that was not begun", self.dir.display());
                }
            }
            rec => match &mut self.txn {
                Some(buffered) => buffered.push(rec),
                None => self.apply_now(rec),
            },
        }
    }

    fn apply_now(&mut self, rec: MetadataRecord) {
        if matches!(rec, MetadataRecord::Ignored(_)) {
            return;
        }
        self.stats.records_applied += 1;
        self.generation += 1;
        self.image.apply(rec);
    }

    /// Reads what was appended since the last call; rebuilds when the log was truncated under
    /// the reader. Returns whether the image changed.
    pub fn refresh(&mut self) -> Result<bool, MetadataLogError> {
        let before = self.generation;
        let listing = list(&self.dir)?;
        let behind_snapshot = listing.snapshot.is_some_and(|s| s.end_offset > self.next_offset);
        // Applied before the quorum's high watermark was known, beyond it: start again below it.
        let beyond_commit = self.commit_bound.is_some_and(|hw| self.next_offset > hw);
        if behind_snapshot || beyond_commit || !self.cursor_intact(&listing) {
            log::info!(
                "{}: metadata log truncated or replaced under the reader; rebuilding the image",
                self.dir.display()
            );
            self.rebuild()?;
        } else {
            self.read_log(&listing)?;
        }
        Ok(self.generation != before)
    }

    /// The last batch applied is still where it was, with the same CRC.
    fn cursor_intact(&self, listing: &Listing) -> bool {
        let Some(c) = self.cursor else { return true };
        if !listing.segments.contains(&c.segment) {
            // Deleted by retention is fine only when a later segment carries on.
            return listing.segments.iter().any(|&s| s > c.segment);
        }
        let Ok(f) = File::open(segment_path(&self.dir, c.segment)) else { return false };
        let Ok(len) = f.metadata().map(|m| m.len()) else { return false };
        if len < c.position {
            return false;
        }
        match c.last {
            None => true,
            Some((pos, crc)) => {
                let mut head = [0u8; V2_HEADER_SIZE];
                f.read_exact_at(&mut head, pos).is_ok()
                    && matches!(batch::parse_header(&head, METADATA_BATCH_BYTES_MAX), HeaderParse::Complete(h) if h.crc == crc)
            }
        }
    }

    fn read_log(&mut self, listing: &Listing) -> Result<(), MetadataLogError> {
        for (i, &base) in listing.segments.iter().enumerate() {
            let is_last = i + 1 == listing.segments.len();
            let next_base = listing.segments.get(i + 1).copied();
            // Segments wholly below what was applied are skipped.
            if next_base.is_some_and(|n| n <= self.next_offset) {
                continue;
            }
            let mut cursor = match self.cursor {
                Some(c) if c.segment == base => c,
                Some(c) if c.segment > base => continue,
                _ => Cursor { segment: base, position: 0, last: None },
            };
            let path = segment_path(&self.dir, base);
            let f = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(MetadataLogError::Io(path, e)),
            };
            let len = f.metadata().map_err(|e| MetadataLogError::Io(path.clone(), e))?.len();
            loop {
                match read_batch(&f, cursor.position, len).map_err(|e| MetadataLogError::Io(path.clone(), e))? {
                    BatchRead::Batch(b) => {
                        if self.commit_bound.is_some_and(|hw| b.header.next_offset() > hw) {
                            // Not committed yet: read again from here once the bound has
                            // passed it (later segments are later still).
                            self.cursor = Some(cursor);
                            return Ok(());
                        }
                        if b.header.last_offset() >= self.next_offset {
                            if !b.header.is_control() {
                                self.apply_batch(&b, Some(self.next_offset));
                            }
                            self.next_offset = b.header.next_offset();
                        }
                        cursor.last = Some((cursor.position, b.header.crc));
                        cursor.position += b.header.size();
                    }
                    BatchRead::End => break,
                    BatchRead::Corrupt => {
                        // A complete batch with a bad CRC: the writer may be mid-write, or the
                        // file is damaged. Stop here; the next refresh looks again.
                        self.stats.batches_corrupt += 1;
                        log::warn!(
                            "{}: corrupt metadata batch at position {}; reading stops there",
                            path.display(),
                            cursor.position
                        );
                        self.cursor = Some(cursor);
                        return Ok(());
                    }
                }
            }
            self.cursor = Some(cursor);
            if !is_last {
                // A rolled segment is complete: go on with the next one from its start.
                continue;
            }
        }
        Ok(())
    }
}

/// A record's offset and what it decoded to.
pub type DecodedRecord = (i64, Result<MetadataRecord, records::DecodeError>);

/// Every data record of one metadata file (a `.log` segment or a snapshot), with its offset:
/// for `logferry dump` and the golden tests. Stops at the first incomplete or corrupt batch.
pub fn decode_file(path: &Path) -> Result<Vec<DecodedRecord>, MetadataLogError> {
    let io = |e| MetadataLogError::Io(path.to_path_buf(), e);
    let f = File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut out = Vec::new();
    let mut position = 0u64;
    while let BatchRead::Batch(b) = read_batch(&f, position, len).map_err(io)? {
        position += b.header.size();
        if b.header.is_control() {
            continue;
        }
        let Ok(recs) = crate::log::records::decode(&b.header, &b.bytes) else { break };
        for r in recs {
            let rec = match r.value.as_deref() {
                Some(v) => records::decode(v),
                None => Err(records::DecodeError::Invalid("null value")),
            };
            out.push((r.offset, rec));
        }
    }
    Ok(out)
}

/// The metadata log directory: the flag, else `metadata.log.dir` from the broker's config,
/// else the first log dir that holds one.
pub fn locate(flag: Option<&Path>, broker_metadata_dir: Option<&Path>, log_dirs: &[PathBuf]) -> Option<PathBuf> {
    if let Some(d) = flag {
        // The flag names `metadata.log.dir` (the parent) or the partition directory itself.
        return Some(if d.ends_with(METADATA_DIR_NAME) { d.to_path_buf() } else { d.join(METADATA_DIR_NAME) });
    }
    if let Some(d) = broker_metadata_dir {
        return Some(d.join(METADATA_DIR_NAME));
    }
    log_dirs.iter().map(|d| d.join(METADATA_DIR_NAME)).find(|d| d.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names() {
        assert_eq!(
            parse_snapshot_name("00000000000000012345-0000000007.checkpoint"),
            Some(SnapshotId { end_offset: 12345, epoch: 7 })
        );
        assert_eq!(parse_snapshot_name("00000000000000012345-0000000007.checkpoint.deleted"), None);
        assert_eq!(parse_snapshot_name("00000000000000012345-0000000007-abc.checkpoint.part"), None);
        assert_eq!(parse_snapshot_name("bootstrap.checkpoint"), None);
    }
}
