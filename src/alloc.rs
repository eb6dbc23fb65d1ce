//! The process allocator: the system allocator, except that very large blocks are reserved with
//! `mmap(MAP_NORESERVE)` and only become memory when touched.
//!
//! Why: the `kafka-protocol` decoder sizes each array with `Vec::with_capacity(count)` straight
//! from the 4-byte count on the wire, before checking that the bytes are there. A 40-byte request
//! claiming 2^31 elements asks for tens of gigabytes at once; the system allocator refuses and the
//! process aborts (the fuzz target `request` found exactly this). Reserving such blocks lazily
//! turns the claim into address space only; the decoder then fails at the first missing element
//! and frees it, and the connection is closed as for any malformed request. Real memory use stays
//! bounded by `request_bytes_max` times the decoder's expansion. With `vm.overcommit_memory=2`
//! (strict accounting) the reservation itself can fail; the process then aborts as before.

use std::alloc::{GlobalAlloc, Layout, System};
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};

/// Blocks at least this large are reserved lazily.
pub const LAZY_BLOCK_BYTES_MIN: usize = 64 << 20;
const PAGE_BYTES: usize = 4096;

pub struct GuardedAlloc;

fn lazy(layout: &Layout) -> bool {
    layout.size() >= LAZY_BLOCK_BYTES_MIN && layout.align() <= PAGE_BYTES
}

fn reserve(size: usize) -> *mut u8 {
    let Some(len) = NonZeroUsize::new(size) else { return std::ptr::null_mut() };
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory; the result is checked and released only in `dealloc` with the same size.
    let mapped = unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
        )
    };
    match mapped {
        Ok(p) => p.as_ptr().cast(),
        Err(_) => std::ptr::null_mut(),
    }
}

// SAFETY: every method either forwards to `System` with the caller's arguments, or handles a
// lazy block that this allocator mapped itself (page aligned, which satisfies every alignment up
// to a page, zero filled, released with the size it was mapped with). `lazy()` decides on the
// layout alone, so a block is always freed by the path that allocated it.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if lazy(&layout) {
            reserve(layout.size())
        } else {
            // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if lazy(&layout) {
            reserve(layout.size()) // anonymous mappings are zero filled
        } else {
            // SAFETY: forwarded unchanged.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if lazy(&layout) {
            if let (Some(p), Some(len)) = (NonNull::new(ptr.cast()), NonZeroUsize::new(layout.size())) {
                // SAFETY: `ptr` came from `reserve(layout.size())` (same layout ⇒ same path).
                let _ = unsafe { munmap(p, len.get()) };
            }
        } else {
            // SAFETY: forwarded unchanged; `ptr` came from `System` for this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` forms a valid layout with `layout.align()`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !lazy(&layout) && !lazy(&new_layout) {
            // SAFETY: forwarded unchanged.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: allocate, copy the overlapping prefix, free the old block through its own path.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_claims_cost_address_space_only() {
        let a = GuardedAlloc;
        // 64 GiB: more than the machine has; reserved lazily, touched at two places, released.
        let layout = Layout::from_size_align(64 << 30, 8).unwrap();
        // SAFETY: non-zero layout; the block is written within bounds and freed with its layout.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            *p = 7;
            *p.add((64 << 30) - 1) = 9;
            assert_eq!(*p, 7);
            a.dealloc(p, layout);
        }
        let small = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: as above, for the system path, then growth across the threshold.
        unsafe {
            let p = a.alloc(small);
            *p = 3;
            let q = a.realloc(p, small, LAZY_BLOCK_BYTES_MIN);
            assert_eq!(*q, 3);
            a.dealloc(q, Layout::from_size_align(LAZY_BLOCK_BYTES_MIN, 8).unwrap());
        }
    }
}
