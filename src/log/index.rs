//! Index files: `.index` (offset → position), `.timeindex` (timestamp → offset) and `.txnindex`
//! (aborted transactions).
//!
//! Owns reading the three index formats and the rules for trusting them. Offset and time index
//! entries are *hints*: the active segment's files are preallocated with a zero tail, the number
//! of valid entries lives only in broker memory, and a truncation leaves stale entries behind the
//! valid ones. So every entry used is confirmed against the `.log` by the caller, and every lookup
//! ends with a header scan. Rolled segments' indexes may be memory-mapped (they are trimmed and no
//! longer written); the active segment's are read with `pread`. See `docs/kafka-format.md` §3.
//!
//! ```text
//! .index      entry = 8 bytes:  relative offset u32 | position u32           (big-endian)
//! .timeindex  entry = 12 bytes: timestamp i64       | relative offset u32
//! .txnindex   entry = 34 bytes: version i16 | producer id i64 | first offset i64
//!                               | last offset i64 | last stable offset i64
//! ```

use std::fs::File;
use std::io;
use std::path::Path;

use memmap2::Mmap;

use super::scan::ReadAt;

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;
pub const TXN_ENTRY_BYTES: usize = 34;

/// The bytes of an index file: mapped (rolled segments) or read through `pread` (active ones).
pub enum IndexSource {
    Mapped(Mmap),
    File(File),
    Bytes(Vec<u8>),
}

impl IndexSource {
    /// Opens an index file read-only. `map` should be true only for a rolled segment, whose
    /// index the broker has trimmed and no longer writes.
    pub fn open(path: &Path, map: bool) -> io::Result<Self> {
        let file = File::open(path)?;
        if map && file.metadata()?.len() > 0 {
            // SAFETY: the file is opened read-only and belongs to a rolled segment, which the broker
            // no longer writes; it can still be truncated or deleted by the broker (retention,
            // compaction). Deletion is harmless for a mapping; truncation of a rolled index only
            // happens when the segment becomes active again, and the tailer drops the mapping when
            // that segment becomes the active one. Every entry read is validated against the `.log`.
            let map = unsafe { Mmap::map(&file)? };
            return Ok(Self::Mapped(map));
        }
        Ok(Self::File(file))
    }

    pub fn len(&self) -> u64 {
        match self {
            Self::Mapped(m) => m.len() as u64,
            Self::File(f) => f.metadata().map(|m| m.len()).unwrap_or(0),
            Self::Bytes(b) => b.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        match self {
            Self::Mapped(m) => {
                let start = (pos as usize).min(m.len());
                let n = buf.len().min(m.len() - start);
                buf[..n].copy_from_slice(&m[start..start + n]);
                Ok(n)
            }
            Self::File(f) => f.read_at(buf, pos),
            Self::Bytes(b) => b.read_at(buf, pos),
        }
    }

    /// Reads `N` bytes at `pos`, or `None` past the end.
    fn entry<const N: usize>(&self, pos: u64) -> io::Result<Option<[u8; N]>> {
        let mut e = [0u8; N];
        let n = self.read(&mut e, pos)?;
        Ok((n == N).then_some(e))
    }
}

/// One `.index` entry, with the relative offset already made absolute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub offset: i64,
    pub position: u32,
}

impl std::fmt::Debug for IndexSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Self::Mapped(_) => "mapped",
            Self::File(_) => "file",
            Self::Bytes(_) => "bytes",
        };
        write!(f, "IndexSource({kind}, {} bytes)", self.len())
    }
}

/// An offset index of the segment with base offset `base_offset`.
#[derive(Debug)]
pub struct OffsetIndex {
    pub base_offset: i64,
    pub source: IndexSource,
}

impl OffsetIndex {
    pub fn slots(&self) -> u64 {
        self.source.len() / OFFSET_ENTRY_BYTES as u64
    }

    /// Raw entry `i` as stored (may be zero fill or stale).
    pub fn entry(&self, i: u64) -> io::Result<Option<OffsetEntry>> {
        Ok(self.source.entry::<8>(i * OFFSET_ENTRY_BYTES as u64)?.map(|e| OffsetEntry {
            offset: self.base_offset + i64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]])),
            position: u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
        }))
    }

    /// The entries that look valid: strictly increasing offsets and positions, position > 0.
    /// Stops at the zero fill of a preallocated file. Stale entries after a truncation can still
    /// pass this test; callers confirm each entry they use against the `.log`.
    pub fn plausible_entries(&self) -> io::Result<Vec<OffsetEntry>> {
        let mut out: Vec<OffsetEntry> = Vec::new();
        for i in 0..self.slots() {
            let Some(e) = self.entry(i)? else { break };
            if e.position == 0 {
                break;
            }
            if let Some(prev) = out.last() {
                if e.offset <= prev.offset || e.position <= prev.position {
                    break;
                }
            }
            out.push(e);
        }
        Ok(out)
    }

    /// Binary search over the slots below `slots_bound` for the last entry with
    /// `offset <= target`, treating zero-fill slots as "greater". Returns the slot and entry.
    pub fn floor(&self, target: i64, slots_bound: u64) -> io::Result<Option<(u64, OffsetEntry)>> {
        let (mut lo, mut hi) = (0u64, slots_bound.min(self.slots()));
        let mut best = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid)? {
                Some(e) if e.position != 0 && e.offset <= target => {
                    best = Some((mid, e));
                    lo = mid + 1;
                }
                _ => hi = mid,
            }
        }
        Ok(best)
    }
}

/// One `.timeindex` entry, offset made absolute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub offset: i64,
}

#[derive(Debug)]
pub struct TimeIndex {
    pub base_offset: i64,
    pub source: IndexSource,
}

impl TimeIndex {
    pub fn slots(&self) -> u64 {
        self.source.len() / TIME_ENTRY_BYTES as u64
    }

    pub fn entry(&self, i: u64) -> io::Result<Option<TimeEntry>> {
        Ok(self.source.entry::<12>(i * TIME_ENTRY_BYTES as u64)?.map(|e| {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&e[..8]);
            TimeEntry {
                timestamp: i64::from_be_bytes(ts),
                offset: self.base_offset + i64::from(u32::from_be_bytes([e[8], e[9], e[10], e[11]])),
            }
        }))
    }

    /// Entries up to the first slot whose timestamp does not grow (zero fill, stale tail).
    pub fn plausible_entries(&self) -> io::Result<Vec<TimeEntry>> {
        let mut out: Vec<TimeEntry> = Vec::new();
        for i in 0..self.slots() {
            let Some(e) = self.entry(i)? else { break };
            let grows = match out.last() {
                Some(prev) => e.timestamp > prev.timestamp && e.offset >= prev.offset,
                None => !(e.timestamp == 0 && e.offset == self.base_offset),
            };
            if !grows {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    /// The last plausible entry with `timestamp <= target` (Kafka's `TimeIndex.lookup`); the
    /// offset it names is only a place to start scanning from.
    pub fn floor(&self, target: i64) -> io::Result<Option<TimeEntry>> {
        Ok(self.plausible_entries()?.into_iter().take_while(|e| e.timestamp <= target).last())
    }
}

/// One aborted transaction (`AbortedTxn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub version: i16,
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

/// Reads every whole 34-byte entry of a `.txnindex` (a partial trailing entry is ignored, as the
/// broker's iterator does).
pub fn read_txn_index(bytes: &[u8]) -> Vec<AbortedTxn> {
    bytes
        .chunks_exact(TXN_ENTRY_BYTES)
        .map(|e| {
            let i64_at = |at: usize| {
                let mut a = [0u8; 8];
                a.copy_from_slice(&e[at..at + 8]);
                i64::from_be_bytes(a)
            };
            AbortedTxn {
                version: i16::from_be_bytes([e[0], e[1]]),
                producer_id: i64_at(2),
                first_offset: i64_at(10),
                last_offset: i64_at(18),
                last_stable_offset: i64_at(26),
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn offset_index_bytes(base: i64, entries: &[(i64, u32)], zero_slots: usize) -> Vec<u8> {
        let mut b = Vec::new();
        for &(o, p) in entries {
            b.extend_from_slice(&((o - base) as u32).to_be_bytes());
            b.extend_from_slice(&p.to_be_bytes());
        }
        b.extend(std::iter::repeat_n(0, zero_slots * OFFSET_ENTRY_BYTES));
        b
    }

    #[test]
    fn golden_offset_index_with_zero_tail() {
        // Two entries then preallocated zeros: only the two are plausible, floor skips the zeros.
        let bytes = vec![0, 0, 0, 5, 0, 0, 0x10, 0, 0, 0, 0, 9, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let idx = OffsetIndex { base_offset: 100, source: IndexSource::Bytes(bytes) };
        assert_eq!(idx.slots(), 3);
        assert_eq!(
            idx.plausible_entries().unwrap(),
            vec![OffsetEntry { offset: 105, position: 4096 }, OffsetEntry { offset: 109, position: 8192 }]
        );
        assert_eq!(idx.floor(104, u64::MAX).unwrap(), None);
        assert_eq!(idx.floor(107, u64::MAX).unwrap().map(|x| x.1.offset), Some(105));
        assert_eq!(idx.floor(10_000, u64::MAX).unwrap().map(|x| x.0), Some(1));
        assert_eq!(idx.floor(10_000, 1).unwrap().map(|x| x.0), Some(0));
    }

    #[test]
    fn stale_entries_after_truncation_stop_the_plausible_prefix() {
        // Valid (10, 100), (20, 200); then a truncation back to 15 rewrote (18, 150) over slot 1 and
        // left the stale (30, 300) behind it: the prefix stays increasing, so the stale one is
        // only caught by confirming against the .log. A later stale entry lower than its
        // predecessor ends the prefix.
        let b = offset_index_bytes(0, &[(10, 100), (18, 150), (30, 300), (25, 250)], 2);
        let idx = OffsetIndex { base_offset: 0, source: IndexSource::Bytes(b) };
        let e = idx.plausible_entries().unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[2], OffsetEntry { offset: 30, position: 300 });
    }

    #[test]
    fn golden_time_index() {
        let mut b = Vec::new();
        for (ts, rel) in [(1000i64, 3u32), (2000, 9), (2000, 12)] {
            b.extend_from_slice(&ts.to_be_bytes());
            b.extend_from_slice(&rel.to_be_bytes());
        }
        b.extend_from_slice(&[0; 24]);
        let idx = TimeIndex { base_offset: 50, source: IndexSource::Bytes(b) };
        let e = idx.plausible_entries().unwrap();
        assert_eq!(e, vec![TimeEntry { timestamp: 1000, offset: 53 }, TimeEntry { timestamp: 2000, offset: 59 }]);
        assert_eq!(idx.floor(999).unwrap(), None);
        assert_eq!(idx.floor(1500).unwrap().map(|e| e.offset), Some(53));
        let empty = TimeIndex { base_offset: 50, source: IndexSource::Bytes(vec![0; 36]) };
        assert!(empty.plausible_entries().unwrap().is_empty());
    }

    #[test]
    fn golden_txn_index_ignores_partial_tail() {
        let mut b = Vec::new();
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&77i64.to_be_bytes());
        b.extend_from_slice(&10i64.to_be_bytes());
        b.extend_from_slice(&20i64.to_be_bytes());
        b.extend_from_slice(&5i64.to_be_bytes());
        b.extend_from_slice(&[1, 2, 3]);
        let t = read_txn_index(&b);
        assert_eq!(
            t,
            vec![AbortedTxn { version: 0, producer_id: 77, first_offset: 10, last_offset: 20, last_stable_offset: 5 }]
        );
    }
}
