//! Zero-copy response writing: a response is a [`WritePlan`] of memory chunks and file ranges.
//!
//! Owns the only code that writes to client sockets. Memory chunks go out with `writev` (adjacent
//! ones coalesced into one call), file ranges with `sendfile(2)` straight from the page cache, so
//! record bytes never enter user space. Every size in the plan is fixed before the first byte is
//! written (the Kafka frame size comes first); a partial write leaves a cursor and the next
//! writable event resumes there. If a file range comes back short (the file was truncated under
//! us), the frame can no longer be completed: the outcome is [`WriteStatus::FileShrunk`] and the
//! caller closes that connection (product rule 2; Kafka's own `FileRecords.writeTo` has the same
//! problem and the same answer).
//!
//! Per call, at most `budget_bytes` are sent so one fast reader cannot starve the loop; the
//! caller comes back when the socket is writable again or on the next turn.
//!
//! A limit of zero copy that no user-space code can close: bytes handed to `sendfile` are queued
//! as references to page-cache pages, not copies. If the broker truncates the file after the call
//! returned but before the bytes left the machine, the kernel zeroes the partial page at the cut in
//! place and the queued bytes change. When the frame is then incomplete (the usual case: the next
//! `sendfile` comes back short) the connection is closed and no client parses it. A frame that
//! was already wholly queued can carry the zeroed bytes; every consumer checks batch CRCs
//! (`check.crcs`, on by default) and rejects such a batch. Truncation of served bytes needs an
//! unclean leader election, or `--visibility log-end` over a log that is truncated: with the
//! checkpointed high watermark, the broker only truncates what logferry never served. Kafka's own
//! `FileRecords.writeTo` has the same window.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::rc::Rc;

use bytes::Bytes;

/// One piece of a response.
#[derive(Debug)]
pub enum Chunk {
    Mem(Bytes),
    /// `len` bytes of `file` from `position`.
    File {
        file: Rc<File>,
        position: u64,
        len: u64,
    },
}

impl Chunk {
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Mem(b) => b.len() as u64,
            Chunk::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How far a write got.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteStatus {
    /// Everything was written.
    Done,
    /// The socket would block (or the per-call budget ran out); call again later.
    Blocked,
    /// A file range could not be read to its end: the file shrank after the plan was made.
    FileShrunk,
}

/// Counters of what went out, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub mem_bytes: u64,
    pub file_bytes: u64,
    /// Bytes (memory and file ranges alike) copied into a TLS session (`server::transport`).
    pub tls_bytes: u64,
}

/// What [`WritePlan::copy_next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Copied {
    /// This many bytes of the plan's front are in the buffer (0: the plan is done).
    Bytes(usize),
    /// A file range could not be read to its end.
    FileShrunk,
}

/// An ordered list of chunks with a resume cursor.
#[derive(Debug, Default)]
pub struct WritePlan {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_done: u64,
    total: u64,
    written: u64,
}

/// At most this many iovecs per `writev`.
const IOV_MAX_PER_CALL: usize = 64;

impl WritePlan {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push_mem(&mut self, b: impl Into<Bytes>) {
        let b: Bytes = b.into();
        if b.is_empty() {
            return;
        }
        self.total += b.len() as u64;
        self.chunks.push_back(Chunk::Mem(b));
    }

    pub fn push_file(&mut self, file: Rc<File>, position: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.total += len;
        self.chunks.push_back(Chunk::File { file, position, len });
    }

    /// Total bytes of the plan.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn remaining(&self) -> u64 {
        self.total - self.written
    }

    pub fn is_done(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Every chunk, for tests that materialise the plan.
    pub fn chunks(&self) -> impl Iterator<Item = &Chunk> {
        self.chunks.iter()
    }

    fn advance(&mut self, mut n: u64) {
        self.written += n;
        while n > 0 {
            let Some(front) = self.chunks.front() else { break };
            let left = front.len() - self.front_done;
            if n >= left {
                n -= left;
                self.chunks.pop_front();
                self.front_done = 0;
            } else {
                self.front_done += n;
                n = 0;
            }
        }
    }

    /// Writes as much as the socket takes, up to `budget_bytes`. `sock` must be non-blocking.
    pub fn write_to(&mut self, sock: BorrowedFd<'_>, budget_bytes: u64, sent: &mut Sent) -> io::Result<WriteStatus> {
        let mut budget = budget_bytes;
        loop {
            if self.chunks.is_empty() {
                return Ok(WriteStatus::Done);
            }
            if budget == 0 {
                return Ok(WriteStatus::Blocked);
            }
            let result = match self.chunks.front() {
                Some(Chunk::Mem(_)) => self.write_mem(sock).map(|n| (n, false)),
                Some(Chunk::File { file, position, len }) => {
                    let count = (len - self.front_done).min(budget) as usize;
                    let mut offset = (position + self.front_done) as i64;
                    let file = Rc::clone(file);
                    sendfile(sock, file.as_fd(), &mut offset, count).map(|n| {
                        if n == 0 {
                            (0, true)
                        } else {
                            (n as u64, false)
                        }
                    })
                }
                None => return Ok(WriteStatus::Done),
            };
            match result {
                Ok((_, true)) => return Ok(WriteStatus::FileShrunk),
                Ok((n, false)) => {
                    if matches!(self.chunks.front(), Some(Chunk::File { .. })) {
                        sent.file_bytes += n;
                    } else {
                        sent.mem_bytes += n;
                    }
                    budget = budget.saturating_sub(n);
                    self.advance(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(WriteStatus::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Copies the plan's next bytes, up to `buf.len()`, into `buf` without consuming them
    /// (memory chunks by `memcpy`, file ranges by `pread`); [`WritePlan::consume`] takes them
    /// once the TLS session has them. The copy path for sockets `sendfile` cannot serve.
    pub fn copy_next(&self, buf: &mut [u8]) -> io::Result<Copied> {
        use std::os::unix::fs::FileExt;
        let mut n = 0;
        let mut skip = self.front_done;
        for c in &self.chunks {
            if n == buf.len() {
                break;
            }
            let left = (c.len() - skip) as usize;
            let take = left.min(buf.len() - n);
            match c {
                Chunk::Mem(b) => buf[n..n + take].copy_from_slice(&b[skip as usize..skip as usize + take]),
                Chunk::File { file, position, .. } => {
                    let mut got = 0;
                    while got < take {
                        match file.read_at(&mut buf[n + got..n + take], position + skip + got as u64) {
                            Ok(0) => return Ok(Copied::FileShrunk),
                            Ok(k) => got += k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            n += take;
            skip = 0;
        }
        Ok(Copied::Bytes(n))
    }

    /// Marks `n` bytes of the front as written (after [`WritePlan::copy_next`]).
    pub fn consume(&mut self, n: u64) {
        self.advance(n.min(self.remaining()));
    }

    /// One `writev` of the leading run of memory chunks.
    fn write_mem(&self, sock: BorrowedFd<'_>) -> io::Result<u64> {
        let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(IOV_MAX_PER_CALL);
        for (i, c) in self.chunks.iter().enumerate() {
            let Chunk::Mem(b) = c else { break };
            let s = if i == 0 { &b[self.front_done as usize..] } else { &b[..] };
            iov.push(IoSlice::new(s));
            if iov.len() == IOV_MAX_PER_CALL {
                break;
            }
        }
        let n = nix::sys::uio::writev(sock, &iov).map_err(io::Error::from)?;
        Ok(n as u64)
    }
}

/// `sendfile(2)` from `file` at `*offset` to `sock`, advancing `*offset`.
fn sendfile(sock: BorrowedFd<'_>, file: BorrowedFd<'_>, offset: &mut i64, count: usize) -> io::Result<usize> {
    let _ = sock.as_raw_fd();
    nix::sys::sendfile::sendfile64(sock, file, Some(offset), count).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn writes_memory_and_file_chunks_in_order_across_partial_writes() {
        // A socket pair with a small buffer forces partial writes; the reader sees the exact bytes.
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut f = tempfile::tempfile().unwrap();
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&content).unwrap();
        let f = Rc::new(f);
        let mut plan = WritePlan::new();
        plan.push_mem(Bytes::from_static(b"head"));
        plan.push_file(Rc::clone(&f), 1000, 250_000);
        plan.push_mem(Bytes::from_static(b"mid"));
        plan.push_mem(Bytes::from_static(b"tail"));
        assert_eq!(plan.total(), 4 + 250_000 + 3 + 4);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            got
        });
        let mut sent = Sent::default();
        loop {
            match plan.write_to(a.as_fd(), 64 << 10, &mut sent).unwrap() {
                WriteStatus::Done => break,
                WriteStatus::Blocked => std::thread::sleep(std::time::Duration::from_millis(1)),
                WriteStatus::FileShrunk => panic!("file did not shrink"),
            }
        }
        drop(a);
        let got = reader.join().unwrap();
        let mut want = b"head".to_vec();
        want.extend_from_slice(&content[1000..251_000]);
        want.extend_from_slice(b"midtail");
        assert!(got == want);
        assert_eq!(sent.file_bytes, 250_000);
        assert_eq!(sent.mem_bytes, 11);
    }

    #[test]
    fn a_file_that_shrank_is_reported() {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[1u8; 100]).unwrap();
        let f = Rc::new(f);
        let mut plan = WritePlan::new();
        plan.push_file(Rc::clone(&f), 0, 100);
        f.set_len(10).unwrap();
        let mut sent = Sent::default();
        assert_eq!(plan.write_to(a.as_fd(), 1 << 20, &mut sent).unwrap(), WriteStatus::FileShrunk);
        assert_eq!(sent.file_bytes, 10);
    }
}
