//! Walking the batches of a `.log` file, header by header, with bounded reads.
//!
//! Owns the positioned-read abstraction ([`ReadAt`]: a file, or bytes in tests) and the batch
//! scanner that every other part uses to find batch boundaries: the tailer to find the last
//! complete batch, lookups to go from an index hint to the batch holding an offset, `verify` and
//! `dump` to walk whole files. Reads go through a small window buffer so a header-only scan costs
//! one `pread` per window, not per batch. Never memory-maps a `.log` (a truncation would turn a
//! read into SIGBUS).
//!
//! The scanner stops at the first position that is not a complete, well-formed batch and says
//! why ([`ScanEnd`]). Whether that is a torn tail still being written or corruption is the
//! caller's decision: the tailer waits, `verify` reports.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::batch::{self, BatchError, BatchHeader, HeaderParse};

/// Positioned reads. Implemented for files (`pread`) and byte vectors (tests, simulation).
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes at `pos`; fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Current length of the underlying file.
    fn len(&self) -> io::Result<u64>;
    /// Whether the underlying file is empty now.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match FileExt::read_at(self, &mut buf[done..], pos + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let start = (pos as usize).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(Vec::len(self) as u64)
    }
}

/// Default bound on one batch's size. Kafka's own limit is `message.max.bytes` (default about
/// 1 MiB, per topic up to i32::MAX); 256 MiB keeps a corrupt length from driving a huge read
/// while allowing any batch a real broker is likely to hold.
pub const BATCH_BYTES_MAX_DEFAULT: i32 = 256 << 20;
/// Read window for header scans.
const WINDOW_BYTES: usize = 64 << 10;

/// Why a scan stopped.
#[derive(Debug)]
pub enum ScanEnd {
    /// Exactly at the scan limit: every byte before it belongs to a complete batch.
    Clean,
    /// A batch starts here but its bytes run past the limit (write in progress, or a torn tail).
    Incomplete { position: u64, batch_size: u64 },
    /// The bytes here are not a valid batch (zero fill, garbage, CRC mismatch).
    Invalid { position: u64, error: BatchError },
    /// The read itself failed.
    Io { position: u64, error: io::Error },
}

/// One step of a scan.
#[derive(Debug)]
pub enum Step {
    Batch { position: u64, header: BatchHeader },
    End(ScanEnd),
}

/// Walks batches from `position` up to `limit` (exclusive), optionally checking each CRC.
pub struct Scanner<'a, R: ReadAt + ?Sized> {
    source: &'a R,
    position: u64,
    limit: u64,
    verify_crc: bool,
    batch_bytes_max: i32,
    window: Vec<u8>,
    window_start: u64,
    scratch: Vec<u8>,
    done: bool,
}

impl<'a, R: ReadAt + ?Sized> Scanner<'a, R> {
    pub fn new(source: &'a R, position: u64, limit: u64, verify_crc: bool) -> Self {
        Self {
            source,
            position,
            limit,
            verify_crc,
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            window: Vec::new(),
            window_start: 0,
            scratch: Vec::new(),
            done: false,
        }
    }

    pub fn with_batch_bytes_max(mut self, max: i32) -> Self {
        self.batch_bytes_max = max;
        self
    }

    /// The position the next step starts at (after a `Batch`, the end of that batch).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Makes `[pos, pos + want)` available in the window when it lies below `limit`;
    /// returns how many bytes from `pos` are available.
    fn fill(&mut self, pos: u64, want: usize) -> io::Result<usize> {
        let window_end = self.window_start + self.window.len() as u64;
        if pos >= self.window_start && pos + want as u64 <= window_end {
            return Ok(want);
        }
        let avail = self.limit.saturating_sub(pos);
        let n = (WINDOW_BYTES.max(want) as u64).min(avail) as usize;
        self.window.resize(n, 0);
        let got = self.source.read_at(&mut self.window, pos)?;
        self.window.truncate(got);
        self.window_start = pos;
        Ok(got.min(want))
    }

    fn window_slice(&self, pos: u64, len: usize) -> &[u8] {
        let at = (pos - self.window_start) as usize;
        &self.window[at..at + len]
    }

    /// The next batch, or why the scan ended. After an `End` every call returns `End(Clean)`
    /// at the same position, so callers can loop on it without special cases.
    pub fn step(&mut self) -> Step {
        if self.done || self.position >= self.limit {
            self.done = true;
            return Step::End(ScanEnd::Clean);
        }
        let pos = self.position;
        let mut need = batch::V2_HEADER_SIZE;
        let header = loop {
            let avail = match self.fill(pos, need) {
                Ok(n) => n,
                Err(error) => return self.end(ScanEnd::Io { position: pos, error }),
            };
            match batch::parse_header(self.window_slice(pos, avail), self.batch_bytes_max) {
                HeaderParse::Complete(h) => break h,
                HeaderParse::Invalid(error) => return self.end(ScanEnd::Invalid { position: pos, error }),
                HeaderParse::Incomplete(n) => {
                    if avail < need || n <= avail {
                        // Not enough bytes before the limit to finish the header.
                        return self.end(ScanEnd::Incomplete { position: pos, batch_size: n as u64 });
                    }
                    need = n;
                }
            }
        };
        let size = header.size();
        if pos + size > self.limit {
            return self.end(ScanEnd::Incomplete { position: pos, batch_size: size });
        }
        if self.verify_crc {
            let result = if size as usize <= WINDOW_BYTES {
                match self.fill(pos, size as usize) {
                    Ok(n) if n as u64 == size => batch::check_crc(&header, self.window_slice(pos, n)),
                    Ok(_) => return self.end(ScanEnd::Incomplete { position: pos, batch_size: size }),
                    Err(error) => return self.end(ScanEnd::Io { position: pos, error }),
                }
            } else {
                self.scratch.resize(size as usize, 0);
                match self.source.read_at(&mut self.scratch, pos) {
                    Ok(n) if n as u64 == size => batch::check_crc(&header, &self.scratch),
                    Ok(_) => return self.end(ScanEnd::Incomplete { position: pos, batch_size: size }),
                    Err(error) => return self.end(ScanEnd::Io { position: pos, error }),
                }
            };
            if let Err(error) = result {
                return self.end(ScanEnd::Invalid { position: pos, error });
            }
        }
        self.position = pos + size;
        Step::Batch { position: pos, header }
    }

    fn end(&mut self, end: ScanEnd) -> Step {
        self.done = true;
        Step::End(end)
    }
}

/// Reads the header at `position` if a complete, well-formed batch starts there (CRC checked
/// when `verify_crc`). Used to confirm index hints.
pub fn batch_at<R: ReadAt + ?Sized>(source: &R, position: u64, limit: u64, verify_crc: bool) -> Option<BatchHeader> {
    match Scanner::new(source, position, limit, verify_crc).step() {
        Step::Batch { header, .. } => Some(header),
        Step::End(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::v2_batch;

    fn file(batches: &[Vec<u8>]) -> Vec<u8> {
        batches.concat()
    }

    #[test]
    fn walks_batches_and_ends_clean() {
        let f = file(&[v2_batch(0, 2, 0, b"aaaa"), v2_batch(3, 0, 0, b""), v2_batch(4, 9, 0, &[7; 100])]);
        let mut s = Scanner::new(&f, 0, f.len() as u64, true);
        let mut seen = vec![];
        loop {
            match s.step() {
                Step::Batch { position, header } => seen.push((position, header.base_offset, header.last_offset())),
                Step::End(ScanEnd::Clean) => break,
                Step::End(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(seen, vec![(0, 0, 2), (65, 3, 3), (126, 4, 13)]);
    }

    #[test]
    fn torn_tail_is_incomplete_not_corrupt() {
        let mut f = file(&[v2_batch(0, 0, 0, b"x"), v2_batch(1, 0, 0, b"yyyyyyyy")]);
        f.truncate(f.len() - 3);
        let mut s = Scanner::new(&f, 0, f.len() as u64, true);
        assert!(matches!(s.step(), Step::Batch { position: 0, .. }));
        match s.step() {
            Step::End(ScanEnd::Incomplete { position, batch_size }) => {
                assert_eq!(position, 62);
                assert_eq!(batch_size, 69);
            }
            other => panic!("{other:?}"),
        }
        // A tail shorter than a header is incomplete too.
        let f2 = f[..70].to_vec();
        let mut s = Scanner::new(&f2, 62, f2.len() as u64, true);
        assert!(matches!(s.step(), Step::End(ScanEnd::Incomplete { position: 62, .. })));
    }

    #[test]
    fn zero_filled_preallocated_tail_stops_the_scan() {
        let mut f = v2_batch(0, 0, 0, b"x");
        f.extend_from_slice(&[0; 4096]);
        let mut s = Scanner::new(&f, 0, f.len() as u64, true);
        assert!(matches!(s.step(), Step::Batch { .. }));
        assert!(matches!(
            s.step(),
            Step::End(ScanEnd::Invalid { position: 62, error: BatchError::LengthTooSmall { length: 0, .. } })
        ));
        assert!(matches!(s.step(), Step::End(ScanEnd::Clean)));
    }

    #[test]
    fn crc_mismatch_is_reported_only_when_verifying() {
        let mut f = file(&[v2_batch(0, 0, 0, b"hello"), v2_batch(1, 0, 0, b"world")]);
        let n = f.len();
        f[n - 1] ^= 0x20;
        let mut s = Scanner::new(&f, 0, n as u64, true);
        assert!(matches!(s.step(), Step::Batch { .. }));
        assert!(matches!(s.step(), Step::End(ScanEnd::Invalid { error: BatchError::CrcMismatch { .. }, .. })));
        let mut s = Scanner::new(&f, 0, n as u64, false);
        assert!(matches!(s.step(), Step::Batch { .. }));
        assert!(matches!(s.step(), Step::Batch { .. }));
    }

    #[test]
    fn large_batch_beyond_window_is_crc_checked() {
        let big = vec![0x5a; 200_000];
        let f = file(&[v2_batch(0, 0, 0, &big), v2_batch(1, 0, 0, b"z")]);
        let mut s = Scanner::new(&f, 0, f.len() as u64, true);
        assert!(matches!(s.step(), Step::Batch { position: 0, .. }));
        assert!(matches!(s.step(), Step::Batch { .. }));
        assert!(matches!(s.step(), Step::End(ScanEnd::Clean)));
    }

    #[test]
    fn limit_bounds_the_scan() {
        let f = file(&[v2_batch(0, 0, 0, b"x"), v2_batch(1, 0, 0, b"y")]);
        let mut s = Scanner::new(&f, 0, 62, true);
        assert!(matches!(s.step(), Step::Batch { .. }));
        assert!(matches!(s.step(), Step::End(ScanEnd::Clean)));
        assert!(batch_at(&f, 62, f.len() as u64, true).is_some());
        assert!(batch_at(&f, 61, f.len() as u64, true).is_none());
    }
}
