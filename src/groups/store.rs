//! The committed-offsets store: one append-only, checksummed file in logferry's own state
//! directory (never inside a Kafka log dir), plus the in-memory map it describes.
//!
//! Owns durability of OffsetCommit: records are appended to a buffer as commits are accepted;
//! [`OffsetStore::sync`] writes the buffer and `fdatasync`s the file once for every commit that
//! arrived in the same loop turn, and only then does the server release the OffsetCommit
//! responses. A commit that was acknowledged is therefore on disk, SIGKILL or not. On start the
//! file is read front to back; a torn tail (a record cut short by a crash, or trailing garbage)
//! is dropped and the file truncated to the last whole record. A record whose checksum fails in
//! the middle of the file (a flipped bit) is skipped by its length when the records after it
//! chain cleanly to the end of the file; otherwise everything from it on is treated as a torn
//! tail. Either way a warning says how many bytes were dropped.
//!
//! Compaction: when the file is larger than `COMPACT_BYTES_MIN` and more than
//! `COMPACT_RATIO` times the bytes of its live records, [`OffsetStore::sync`] rewrites the live
//! records to `offsets.tmp`, fsyncs it, renames it over `offsets.log` and fsyncs the directory.
//! The rewrite runs on the loop thread right after a sync; its cost is bounded by the live set
//! (groups_max × partitions) and it happens once per `COMPACT_RATIO`-fold growth.
//!
//! ```text
//! file:    magic "LFOFFST1" (8 bytes) | record*
//! record:  length u32 (bytes after this field) | crc32c u32 (of the bytes after it) | kind u8 | body
//! kind 1 (commit):  group str16 | topic str16 | partition i32 | offset i64 | leader_epoch i32
//!                   | commit_ms i64 | metadata_len i32 (-1 = null) | metadata bytes
//! kind 2 (delete):  group str16 | topic str16 | partition i32
//! str16:            len u16 | UTF-8 bytes
//! ```
//! All integers big-endian. A lock file (`flock`) keeps two processes off one state dir.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"LFOFFST1";
pub const FILE_NAME: &str = "offsets.log";
const TMP_NAME: &str = "offsets.tmp";
const LOCK_NAME: &str = "lock";
/// Record bytes before the kind: length and checksum.
const RECORD_HEADER_BYTES: usize = 8;
/// A record longer than this is not one of ours (group, topic and metadata are bounded well below).
const RECORD_BYTES_MAX: u32 = 1 << 20;
const KIND_COMMIT: u8 = 1;
const KIND_DELETE: u8 = 2;
/// Compaction starts above this file size ...
pub const COMPACT_BYTES_MIN: u64 = 1 << 20;
/// ... when the file is this many times larger than its live records.
pub const COMPACT_RATIO: u64 = 4;

/// One committed offset, as OffsetFetch returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// Wall-clock milliseconds of the commit (for offset retention).
    pub commit_ms: i64,
}

/// Offsets of one group, by (topic, partition).
pub type GroupOffsets = BTreeMap<(String, i32), Committed>;

#[derive(Debug)]
pub enum StoreError {
    Io { path: PathBuf, what: &'static str, source: std::io::Error },
    NotAStore(PathBuf),
    Locked(PathBuf),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io { path, what, source } => write!(f, "{}: {what}: {source}", path.display()),
            StoreError::NotAStore(p) => {
                write!(
                    f,
                    "{}: not a logferry offsets file (bad magic); move it away or pick another --state-dir",
                    p.display()
                )
            }
            StoreError::Locked(p) => write!(f, "{}: state dir is in use by another logferry process", p.display()),
        }
    }
}

impl std::error::Error for StoreError {}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { path: path.to_path_buf(), what, source }
}

/// What opening the store found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub records: u64,
    /// Bytes of a torn or garbage tail that were cut off.
    pub tail_bytes_dropped: u64,
    /// Corrupt records in the middle of the file that were skipped.
    pub records_skipped: u64,
}

pub struct OffsetStore {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Bytes of the file that are written (and, unless `pending` is non-empty, synced).
    len: u64,
    /// Encoded records not yet written.
    pending: Vec<u8>,
    offsets: BTreeMap<String, GroupOffsets>,
    /// Bytes the live records take when encoded (what a compaction would write).
    live_bytes: u64,
    _lock: File,
    pub compactions: u64,
}

/// A decoded record.
#[derive(Debug, PartialEq, Eq)]
enum Record {
    Commit { group: String, topic: String, partition: i32, c: Committed },
    Delete { group: String, topic: String, partition: i32 },
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Callers bound group and topic names well below 64 KiB; cut rather than wrap if not.
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

fn encode(rec: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    match rec {
        Record::Commit { group, topic, partition, c } => {
            out.push(KIND_COMMIT);
            put_str16(out, group);
            put_str16(out, topic);
            out.extend_from_slice(&partition.to_be_bytes());
            out.extend_from_slice(&c.offset.to_be_bytes());
            out.extend_from_slice(&c.leader_epoch.to_be_bytes());
            out.extend_from_slice(&c.commit_ms.to_be_bytes());
            match &c.metadata {
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(m) => {
                    out.extend_from_slice(&(m.len() as i32).to_be_bytes());
                    out.extend_from_slice(m.as_bytes());
                }
            }
        }
        Record::Delete { group, topic, partition } => {
            out.push(KIND_DELETE);
            put_str16(out, group);
            put_str16(out, topic);
            out.extend_from_slice(&partition.to_be_bytes());
        }
    }
    let body_len = (out.len() - start - 4) as u32;
    let crc = crc32c::crc32c(&out[start + RECORD_HEADER_BYTES..]);
    out[start..start + 4].copy_from_slice(&body_len.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// A cursor over a record body; every read is bounds-checked.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(i64::from_be_bytes(a))
    }
    fn str16(&mut self) -> Option<String> {
        let n = self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Decodes the body of one record (after length and CRC); `None` when it does not parse.
fn decode_body(body: &[u8]) -> Option<Record> {
    let mut c = Cur(body);
    let kind = c.take(1)?[0];
    let group = c.str16()?;
    let topic = c.str16()?;
    let partition = c.i32()?;
    let rec = match kind {
        KIND_COMMIT => {
            let offset = c.i64()?;
            let leader_epoch = c.i32()?;
            let commit_ms = c.i64()?;
            let mlen = c.i32()?;
            let metadata = if mlen < 0 { None } else { Some(String::from_utf8(c.take(mlen as usize)?.to_vec()).ok()?) };
            Record::Commit { group, topic, partition, c: Committed { offset, leader_epoch, metadata, commit_ms } }
        }
        KIND_DELETE => Record::Delete { group, topic, partition },
        _ => return None,
    };
    c.0.is_empty().then_some(rec)
}

/// What is at a position of the file's bytes.
enum Parsed {
    Record(Record, usize),
    /// Not enough bytes for the record its length announces: a torn tail.
    Incomplete,
    /// A length that cannot be ours, a checksum mismatch or a body that does not parse; the
    /// `Option` is the announced size when the length itself is plausible.
    Bad(Option<usize>),
}

fn parse_at(buf: &[u8], at: usize) -> Parsed {
    let rest = &buf[at..];
    if rest.len() < RECORD_HEADER_BYTES {
        return Parsed::Incomplete;
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    if !(5..=RECORD_BYTES_MAX).contains(&len) {
        return Parsed::Bad(None);
    }
    let total = 4 + len as usize;
    if rest.len() < total {
        return Parsed::Incomplete;
    }
    let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let body = &rest[RECORD_HEADER_BYTES..total];
    if crc32c::crc32c(body) != crc {
        return Parsed::Bad(Some(total));
    }
    match decode_body(body) {
        Some(r) => Parsed::Record(r, total),
        None => Parsed::Bad(Some(total)),
    }
}

/// True when whole records follow each other from `at` to exactly the end of `buf`.
fn chains_to_end(buf: &[u8], mut at: usize) -> bool {
    while at < buf.len() {
        match parse_at(buf, at) {
            Parsed::Record(_, n) => at += n,
            _ => return false,
        }
    }
    true
}

/// Reads the records of a store file image. Returns them, the length of the good prefix the
/// file keeps (records after a skipped corrupt one included) and what was dropped.
fn recover(buf: &[u8]) -> (Vec<Record>, usize, Recovery) {
    let mut out = Vec::new();
    let mut rec = Recovery::default();
    let mut at = MAGIC.len();
    while at < buf.len() {
        match parse_at(buf, at) {
            Parsed::Record(r, n) => {
                out.push(r);
                rec.records += 1;
                at += n;
            }
            Parsed::Bad(Some(n)) if at + n < buf.len() && chains_to_end(buf, at + n) => {
                rec.records_skipped += 1;
                at += n;
            }
            Parsed::Incomplete | Parsed::Bad(_) => {
                rec.tail_bytes_dropped = (buf.len() - at) as u64;
                return (out, at, rec);
            }
        }
    }
    (out, at, rec)
}

fn record_bytes(group: &str, topic: &str, c: &Committed) -> u64 {
    (RECORD_HEADER_BYTES
        + 1
        + 2
        + group.len()
        + 2
        + topic.len()
        + 4
        + 8
        + 4
        + 8
        + 4
        + c.metadata.as_ref().map_or(0, |m| m.len())) as u64
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = File::open(dir).map_err(io_err(dir, "opening the state dir to sync it"))?;
    d.sync_all().map_err(io_err(dir, "syncing the state dir"))
}

impl OffsetStore {
    /// Opens (or creates) the store in `dir`, taking an exclusive lock on it and recovering the
    /// file as the module doc describes.
    pub fn open(dir: &Path) -> Result<(Self, Recovery), StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir, "creating the state dir"))?;
        let lock_path = dir.join(LOCK_NAME);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path, "opening the lock file"))?;
        #[allow(deprecated)]
        // nix's Flock wrapper takes ownership of the file; the plain call keeps ours.
        if nix::fcntl::flock(lock.as_raw_fd(), nix::fcntl::FlockArg::LockExclusiveNonblock).is_err() {
            return Err(StoreError::Locked(dir.to_path_buf()));
        }
        let tmp = dir.join(TMP_NAME);
        if tmp.exists() {
            // A compaction that did not reach its rename: the old file is still complete.
            std::fs::remove_file(&tmp).map_err(io_err(&tmp, "removing an unfinished compaction"))?;
        }
        let path = dir.join(FILE_NAME);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path, "opening"))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(io_err(&path, "reading"))?;
        let mut recovery = Recovery::default();
        let mut records = Vec::new();
        let keep = if buf.len() < MAGIC.len() {
            // New, or a crash before the magic was whole: start the file over.
            if !MAGIC.starts_with(&buf) {
                return Err(StoreError::NotAStore(path));
            }
            recovery.tail_bytes_dropped = buf.len() as u64;
            0
        } else {
            if &buf[..MAGIC.len()] != MAGIC {
                return Err(StoreError::NotAStore(path));
            }
            let (r, keep, rec) = recover(&buf);
            records = r;
            recovery = rec;
            keep
        };
        if keep != buf.len() || keep == 0 {
            file.set_len(keep as u64).map_err(io_err(&path, "truncating a torn tail"))?;
        }
        let mut store = OffsetStore {
            dir: dir.to_path_buf(),
            path: path.clone(),
            file,
            len: keep as u64,
            pending: Vec::new(),
            offsets: BTreeMap::new(),
            live_bytes: 0,
            _lock: lock,
            compactions: 0,
        };
        if keep == 0 {
            store.pending.extend_from_slice(MAGIC);
        }
        for r in records {
            store.apply(r);
        }
        store.sync()?;
        if recovery.records_skipped > 0 {
            // Rewrite without the corrupt record, so it is reported once and later damage
            // after it is still recoverable.
            store.compact()?;
        }
        fsync_dir(dir)?;
        Ok((store, recovery))
    }

    fn apply(&mut self, r: Record) {
        match r {
            Record::Commit { group, topic, partition, c } => {
                let add = record_bytes(&group, &topic, &c);
                let g = self.offsets.entry(group.clone()).or_default();
                if let Some(old) = g.insert((topic.clone(), partition), c) {
                    self.live_bytes -= record_bytes(&group, &topic, &old);
                }
                self.live_bytes += add;
            }
            Record::Delete { group, topic, partition } => {
                if let Some(g) = self.offsets.get_mut(&group) {
                    if let Some(old) = g.remove(&(topic.clone(), partition)) {
                        self.live_bytes -= record_bytes(&group, &topic, &old);
                    }
                    if g.is_empty() {
                        self.offsets.remove(&group);
                    }
                }
            }
        }
    }

    /// Records a commit (in memory at once, on disk at the next [`sync`](Self::sync)).
    pub fn commit(&mut self, group: &str, topic: &str, partition: i32, c: Committed) {
        let rec = Record::Commit { group: group.to_string(), topic: topic.to_string(), partition, c };
        encode(&rec, &mut self.pending);
        self.apply(rec);
    }

    /// Forgets a committed offset (offset retention).
    pub fn delete(&mut self, group: &str, topic: &str, partition: i32) {
        let rec = Record::Delete { group: group.to_string(), topic: topic.to_string(), partition };
        encode(&rec, &mut self.pending);
        self.apply(rec);
    }

    /// True when records wait to be written and synced.
    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes the pending records and `fdatasync`s the file; then compacts if it is due. On a
    /// write or sync failure the file is cut back to its last synced length and the in-memory
    /// map reloaded from it, so memory never claims what the disk does not hold.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let res = self
            .write_at_end(&pending)
            .and_then(|()| nix::unistd::fdatasync(self.file.as_raw_fd()).map_err(std::io::Error::from));
        if let Err(e) = res {
            let err = StoreError::Io { path: self.path.clone(), what: "writing committed offsets", source: e };
            self.reload_after_failure();
            return Err(err);
        }
        self.len += pending.len() as u64;
        if self.len >= COMPACT_BYTES_MIN && self.len > COMPACT_RATIO * (MAGIC.len() as u64 + self.live_bytes) {
            self.compact()?;
        }
        Ok(())
    }

    fn write_at_end(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(bytes, self.len)
    }

    fn reload_after_failure(&mut self) {
        let _ = self.file.set_len(self.len);
        let mut buf = Vec::new();
        use std::io::{Seek, SeekFrom};
        if self.file.seek(SeekFrom::Start(0)).is_ok() && self.file.read_to_end(&mut buf).is_ok() && buf.len() >= 8 {
            let (records, _, _) = recover(&buf);
            self.offsets.clear();
            self.live_bytes = 0;
            for r in records {
                self.apply(r);
            }
        }
    }

    /// Rewrites the live records to a new file and renames it into place.
    pub fn compact(&mut self) -> Result<(), StoreError> {
        let mut out = Vec::with_capacity((MAGIC.len() as u64 + self.live_bytes) as usize);
        out.extend_from_slice(MAGIC);
        for (g, offs) in &self.offsets {
            for ((t, p), c) in offs {
                encode(&Record::Commit { group: g.clone(), topic: t.clone(), partition: *p, c: c.clone() }, &mut out);
            }
        }
        let tmp = self.dir.join(TMP_NAME);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .open(&tmp)
            .map_err(io_err(&tmp, "creating"))?;
        f.write_all(&out).map_err(io_err(&tmp, "writing"))?;
        f.sync_all().map_err(io_err(&tmp, "syncing"))?;
        std::fs::rename(&tmp, &self.path).map_err(io_err(&self.path, "renaming the compacted file into place"))?;
        fsync_dir(&self.dir)?;
        log::info!("compacted {}: {} -> {} bytes", self.path.display(), self.len, out.len());
        self.file = f;
        self.len = out.len() as u64;
        self.compactions += 1;
        Ok(())
    }

    /// Committed offsets of a group.
    pub fn group(&self, group: &str) -> Option<&GroupOffsets> {
        self.offsets.get(group)
    }

    pub fn groups(&self) -> impl Iterator<Item = (&String, &GroupOffsets)> {
        self.offsets.iter()
    }

    pub fn group_count(&self) -> usize {
        self.offsets.len()
    }

    /// Bytes of the file on disk (synced).
    pub fn file_bytes(&self) -> u64 {
        self.len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(offset: i64) -> Committed {
        Committed { offset, leader_epoch: 3, metadata: Some("m".into()), commit_ms: 1_700_000_000_000 }
    }

    #[test]
    fn commits_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut s, r) = OffsetStore::open(d.path()).unwrap();
            assert_eq!(r, Recovery::default());
            s.commit("g", "t", 0, c(10));
            s.commit("g", "t", 1, c(20));
            s.commit("g", "t", 0, c(11));
            s.commit("h", "t", 0, Committed { metadata: None, ..c(5) });
            s.sync().unwrap();
        }
        let (s, r) = OffsetStore::open(d.path()).unwrap();
        assert_eq!(r.records, 4);
        assert_eq!(s.group("g").unwrap()[&("t".into(), 0)], c(11));
        assert_eq!(s.group("g").unwrap()[&("t".into(), 1)], c(20));
        assert_eq!(s.group("h").unwrap()[&("t".into(), 0)].metadata, None);
    }

    #[test]
    fn a_second_process_is_locked_out() {
        let d = tempfile::tempdir().unwrap();
        let (_s, _) = OffsetStore::open(d.path()).unwrap();
        assert!(matches!(OffsetStore::open(d.path()), Err(StoreError::Locked(_))));
    }

    #[test]
    fn torn_tail_is_dropped_at_every_cut() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = OffsetStore::open(d.path()).unwrap();
            s.commit("g", "t", 0, c(1));
            s.sync().unwrap();
            s.commit("g", "t", 0, c(2));
            s.sync().unwrap();
        }
        let full = std::fs::read(d.path().join(FILE_NAME)).unwrap();
        let first_end = {
            let (_, keep, _) = recover(&full[..full.len() - 1]);
            keep
        };
        // Every cut inside the second record loses only the second record.
        for cut in first_end + 1..full.len() {
            let e = tempfile::tempdir().unwrap();
            std::fs::write(e.path().join(FILE_NAME), &full[..cut]).unwrap();
            let (s, r) = OffsetStore::open(e.path()).unwrap();
            assert_eq!(r.tail_bytes_dropped, (cut - first_end) as u64, "cut {cut}");
            assert_eq!(s.group("g").unwrap()[&("t".into(), 0)].offset, 1, "cut {cut}");
            assert_eq!(std::fs::metadata(e.path().join(FILE_NAME)).unwrap().len(), first_end as u64);
            drop(s);
            // The truncated file takes new records cleanly.
            let (mut s, _) = OffsetStore::open(e.path()).unwrap();
            s.commit("g", "t", 0, c(3));
            s.sync().unwrap();
            drop(s);
            let (s, r) = OffsetStore::open(e.path()).unwrap();
            assert_eq!(r.tail_bytes_dropped, 0);
            assert_eq!(s.group("g").unwrap()[&("t".into(), 0)].offset, 3);
        }
    }

    #[test]
    fn corrupt_record_in_the_middle_is_skipped_and_garbage_tail_cut() {
        let d = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = OffsetStore::open(d.path()).unwrap();
            s.commit("g", "t", 0, c(1));
            s.commit("g", "t", 1, c(100));
            s.commit("g", "t", 2, c(200));
            s.sync().unwrap();
        }
        let p = d.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&p).unwrap();
        // Flip a byte inside the second record's body (its offset field).
        let first = 4 + u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        bytes[8 + first + 20] ^= 0x40;
        std::fs::write(&p, &bytes).unwrap();
        let (s, r) = OffsetStore::open(d.path()).unwrap();
        assert_eq!((r.records, r.records_skipped, r.tail_bytes_dropped), (2, 1, 0));
        let g = s.group("g").unwrap();
        assert_eq!(g[&("t".into(), 0)].offset, 1);
        assert!(!g.contains_key(&("t".into(), 1)));
        assert_eq!(g[&("t".into(), 2)].offset, 200);
        drop(s);
        // Garbage after the last record (e.g. a zero-filled block) is a torn tail.
        let mut bytes = std::fs::read(&p).unwrap();
        let before = bytes.len();
        bytes.extend_from_slice(&[0u8; 100]);
        std::fs::write(&p, &bytes).unwrap();
        let (_, r) = OffsetStore::open(d.path()).unwrap();
        assert_eq!(r.tail_bytes_dropped, 100);
        assert_eq!(std::fs::metadata(&p).unwrap().len() as usize, before);
    }

    #[test]
    fn not_a_store_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(FILE_NAME), b"something else entirely").unwrap();
        assert!(matches!(OffsetStore::open(d.path()), Err(StoreError::NotAStore(_))));
    }

    #[test]
    fn compaction_keeps_the_live_set_and_bounds_the_file() {
        let d = tempfile::tempdir().unwrap();
        let (mut s, _) = OffsetStore::open(d.path()).unwrap();
        for i in 0..40_000i64 {
            s.commit("group", "topic", (i % 8) as i32, c(i));
            if i % 100 == 0 {
                s.sync().unwrap();
            }
            s.delete("gone", "topic", 0);
        }
        s.sync().unwrap();
        assert!(s.compactions >= 1);
        assert!(s.file_bytes() < COMPACT_BYTES_MIN * 2, "{}", s.file_bytes());
        drop(s);
        let (s, r) = OffsetStore::open(d.path()).unwrap();
        assert_eq!(r.tail_bytes_dropped + r.records_skipped, 0);
        for p in 0..8 {
            assert_eq!(s.group("group").unwrap()[&("topic".into(), p)].offset, 39_992 + i64::from(p));
        }
        assert!(s.group("gone").is_none());
    }
}
