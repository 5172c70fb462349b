//! The stage's large tables and their memory latency.
//!
//! The context tables are read at random, a few cache lines per bit; with 4 KiB pages nearly
//! every read also misses the TLB. On Linux the tables ask for transparent huge pages, which
//! cuts those misses, and every part prefetches what it will read next as early as it knows
//! the address. Both are hints about memory only: they cannot change a bit of the output, and
//! where the kernel or the CPU declines them nothing else changes.

/// Asks the CPU to start loading the cache line that holds `item` (a no-op where no prefetch
/// instruction is available).
#[inline(always)]
pub fn prefetch<T>(item: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint with no architectural effect, valid for any address, and
    // SSE is part of the x86-64 baseline.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((item as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// A zeroed table of `len` counters (zeroed memory is what every table starts as).
pub fn zeroed(len: usize) -> Vec<u32> {
    let table = vec![0u32; len];
    advise_huge_pages(&table);
    table
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(table: &[u32]) {
    const HUGE: usize = 2 << 20;
    let start = table.as_ptr() as usize;
    let end = start + std::mem::size_of_val(table);
    // madvise wants page-aligned ranges; only whole huge pages inside the table qualify.
    let first = start.next_multiple_of(HUGE);
    if end > first + HUGE {
        let len = (end - first) / HUGE * HUGE;
        // SAFETY: the range lies inside `table`'s live allocation; MADV_HUGEPAGE changes no
        // contents and its failure (old kernels, THP disabled) is harmless, so it is ignored.
        unsafe {
            libc::madvise(first as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_table: &[u32]) {}
