//! Request memory: one global bound on the bytes of requests buffered for all connections
//! (`buffered_request_bytes_max`), as the broker's `MemoryPool` (`queued.max.request.bytes`)
//! bounds them.
//!
//! Owns the accounting only (sans-io: sizes in, decisions out); the loop asks it before reading
//! and tells it what each connection's buffer holds. Two rules keep the bound from ever being
//! exceeded while small requests keep flowing:
//!
//! - A *large* request (a declared frame above [`SMALL_REQUEST_BYTES`]) is admitted whole or not
//!   at all: its full frame is reserved before its body is read, from the pool less a headroom
//!   kept for small requests. Half-read large requests therefore never share out the pool
//!   between them so that none can finish (the deadlock of per-chunk admission). A connection
//!   that is not admitted is not read (backpressure: its bytes wait in the kernel's socket
//!   buffer) and waits in FIFO order to be woken when memory is released.
//! - *Small* requests (and the first bytes of any request, before its size is known) are read
//!   into what is left of the whole pool, headroom included, and account exactly the bytes
//!   held. Fetch, Heartbeat and OffsetCommit requests are a few hundred bytes to a few KiB.
//!
//! A large request that cannot fit even in an empty pool ([`Grant::Never`]) is refused: the
//! loop closes its connection with a log line and a metric.
//!
//! ```text
//!  0                                   bytes_max − headroom           bytes_max
//!  |<-------- large requests, whole -------->|<--- small only: headroom --->|
//!  |<------------------------- small requests (and headers) --------------->|
//! ```

use std::collections::VecDeque;

/// Frames up to this size are small: read as they arrive, no whole-frame reservation.
pub const SMALL_REQUEST_BYTES: usize = 64 << 10;
/// Default of `--buffered-request-bytes-max`.
pub const BUFFERED_REQUEST_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// The answer to "may this connection's buffer grow?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Granted: the accounting already includes the new size.
    Granted,
    /// Not now: wait until memory is released (the caller stops reading the connection).
    Wait,
    /// Never: this request does not fit even in an empty pool.
    Never,
}

#[derive(Debug)]
pub struct RequestMemory {
    bytes_max: usize,
    headroom_bytes: usize,
    used_bytes: usize,
    /// Connections waiting for memory, oldest first.
    waiting: VecDeque<usize>,
    /// High-water mark of `used_bytes`, for tests and metrics.
    pub used_bytes_peak: usize,
}

impl RequestMemory {
    /// A pool of `bytes_max`, an eighth of it (at least one small request) kept for small
    /// requests.
    pub fn new(bytes_max: usize) -> Self {
        let bytes_max = bytes_max.max(SMALL_REQUEST_BYTES);
        let headroom_bytes = (bytes_max / 8).max(SMALL_REQUEST_BYTES).min(bytes_max);
        Self { bytes_max, headroom_bytes, used_bytes: 0, waiting: VecDeque::new(), used_bytes_peak: 0 }
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    /// The largest frame a connection can ever be admitted with.
    pub fn large_frame_bytes_max(&self) -> usize {
        self.bytes_max - self.headroom_bytes
    }

    /// Bytes a small read may add now.
    pub fn small_room(&self) -> usize {
        self.bytes_max - self.used_bytes
    }

    /// Reserve a whole large frame: a buffer that holds `held` bytes of capacity now is to hold
    /// `frame_bytes`.
    pub fn admit_large(&mut self, held: usize, frame_bytes: usize) -> Grant {
        if frame_bytes > self.large_frame_bytes_max() {
            return Grant::Never;
        }
        let grow = frame_bytes.saturating_sub(held);
        if self.used_bytes + grow > self.large_frame_bytes_max() {
            return Grant::Wait;
        }
        self.add(grow);
        Grant::Granted
    }

    /// A buffer's held capacity changed from `before` to `after` (a small read, a shrink, a
    /// close). Returns true when memory was released (waiters should be woken).
    pub fn resized(&mut self, before: usize, after: usize) -> bool {
        if after >= before {
            self.add(after - before);
            false
        } else {
            self.used_bytes = self.used_bytes.saturating_sub(before - after);
            true
        }
    }

    fn add(&mut self, n: usize) {
        self.used_bytes += n;
        self.used_bytes_peak = self.used_bytes_peak.max(self.used_bytes);
    }

    /// Queues connection `conn` to be woken when memory is released (once); true when it was
    /// not waiting already.
    pub fn wait(&mut self, conn: usize) -> bool {
        let new = !self.waiting.contains(&conn);
        if new {
            self.waiting.push_back(conn);
        }
        new
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Connections to try again now that memory was released, oldest first: as many as the
    /// free room could admit at `SMALL_REQUEST_BYTES`… `large_frame_bytes_max` each, at least one.
    /// Those that still do not fit call [`wait`](Self::wait) again.
    pub fn wake(&mut self, frame_bytes_of: impl Fn(usize) -> usize) -> Vec<usize> {
        let mut room = self.large_frame_bytes_max().saturating_sub(self.used_bytes);
        let mut out = Vec::new();
        while let Some(&conn) = self.waiting.front() {
            let need = frame_bytes_of(conn).max(1);
            if need > room && !out.is_empty() {
                break;
            }
            room = room.saturating_sub(need);
            out.push(conn);
            self.waiting.pop_front();
            if room == 0 {
                break;
            }
        }
        out
    }

    /// Forgets a connection that closed while waiting.
    pub fn forget(&mut self, conn: usize) {
        self.waiting.retain(|&c| c != conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn large_requests_are_admitted_whole_within_the_bound() {
        let mut m = RequestMemory::new(64 * MIB);
        assert_eq!(m.large_frame_bytes_max(), 56 * MIB);
        // Seven 8 MiB frames fit below the headroom, the eighth waits.
        for _ in 0..7 {
            assert_eq!(m.admit_large(0, 8 * MIB), Grant::Granted);
        }
        assert_eq!(m.admit_large(0, 8 * MIB), Grant::Wait);
        assert_eq!(m.used_bytes(), 56 * MIB);
        // A frame larger than the pool could ever admit is refused for good.
        assert_eq!(m.admit_large(0, 57 * MIB), Grant::Never);
        // Small reads still have the headroom.
        assert_eq!(m.small_room(), 8 * MIB);
        assert!(!m.resized(0, 4096));
        assert_eq!(m.used_bytes(), 56 * MIB + 4096);
        // An admitted frame that already held some bytes reserves only the rest.
        let mut n = RequestMemory::new(64 * MIB);
        n.resized(0, 1000);
        assert_eq!(n.admit_large(1000, 8 * MIB), Grant::Granted);
        assert_eq!(n.used_bytes(), 8 * MIB);
    }

    #[test]
    fn releases_are_accounted_and_wake_waiters_in_order() {
        let mut m = RequestMemory::new(64 * MIB);
        for _ in 0..7 {
            m.admit_large(0, 8 * MIB);
        }
        for conn in [10, 11, 12, 10] {
            assert_eq!(m.admit_large(0, 8 * MIB), Grant::Wait);
            m.wait(conn);
        }
        assert_eq!(m.waiting(), 3, "a connection waits once");
        assert!(m.resized(8 * MIB, 0));
        assert_eq!(m.used_bytes(), 48 * MIB);
        // Room for one 8 MiB frame: the oldest waiter is woken, the others keep waiting.
        assert_eq!(m.wake(|_| 8 * MIB), vec![10]);
        assert_eq!(m.waiting(), 2);
        m.forget(12);
        assert_eq!(m.wake(|_| 8 * MIB), vec![11]);
        assert_eq!(m.waiting(), 0);
        assert!(m.used_bytes_peak <= m.bytes_max());
    }

    #[test]
    fn the_bound_holds_under_any_mix() {
        // A deterministic mix of admissions, small reads and releases never exceeds the bound.
        let mut m = RequestMemory::new(64 * MIB);
        let mut held = vec![0usize; 64];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = (x % 64) as usize;
            match (x >> 8) % 3 {
                0 => {
                    let frame = SMALL_REQUEST_BYTES + ((x >> 16) as usize % (9 * MIB));
                    if m.admit_large(held[c], frame) == Grant::Granted {
                        held[c] = held[c].max(frame);
                    }
                }
                1 => {
                    let n = ((x >> 16) as usize % SMALL_REQUEST_BYTES).min(m.small_room());
                    m.resized(held[c], held[c] + n);
                    held[c] += n;
                }
                _ => {
                    m.resized(held[c], 0);
                    held[c] = 0;
                }
            }
            assert!(m.used_bytes() <= m.bytes_max());
            assert_eq!(m.used_bytes(), held.iter().sum::<usize>());
        }
    }
}
