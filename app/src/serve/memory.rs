//! The server process's memory: what it holds, and handing freed memory back.
//!
//! glibc's `malloc` gives threads their own pools (*arenas*, up to 8 per core) and keeps the
//! pages freed inside them. Under a long overload the server's threads allocate and free
//! request buffers in ever-different places of several arenas, so the resident set creeps up
//! while the bytes actually in use stay flat: not a leak, but indistinguishable from one on a
//! dashboard (BENCHMARKS.md, "Service", measures both). The server therefore
//! - limits glibc to `--malloc-arenas` arenas (default 1: one pool that freed memory returns
//!   to; on this service's small, short-lived request buffers the shared lock costs no
//!   measurable throughput), set before any thread starts, and
//! - calls `malloc_trim` every `--trim-memory-secs` seconds (default 10), which returns the
//!   free pages of every arena to the kernel.
//!
//! Other platforms and allocators are left alone.

use std::time::Duration;

/// Resident set size from `/proc/self/statm` (second field, in pages).
#[cfg(target_os = "linux")]
pub fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as i64)
}

/// Resident set size (not known on this platform).
#[cfg(not(target_os = "linux"))]
pub fn resident_bytes() -> Option<i64> {
    None
}

/// Bytes in use by `malloc`: small blocks in the arenas plus `mmap`ed large blocks.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_in_use_bytes() -> Option<i64> {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct (glibc ≥ 2.33).
    let info = unsafe { libc::mallinfo2() };
    i64::try_from(info.uordblks.saturating_add(info.hblkhd)).ok()
}

/// Bytes in use by `malloc` (not known for this allocator).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_in_use_bytes() -> Option<i64> {
    None
}

/// Limits glibc's `malloc` to `arenas` arenas (0 leaves its default). Call it before the
/// process starts threads: threads that already have an arena keep it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas(arenas: usize) {
    if arenas > 0 {
        let n = libc::c_int::try_from(arenas).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a parameter of glibc's allocator.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, n);
        }
    }
}

/// Nothing to do for this allocator.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas(_arenas: usize) {}

/// Returns the free pages of every `malloc` arena to the kernel; `true` when some were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Nothing to do for this allocator.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}

/// Starts a thread that calls [`trim`] every `every` (none when `every` is zero).
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn_trimmer(every: Duration) -> std::io::Result<()> {
    if every.is_zero() || cfg!(not(all(target_os = "linux", target_env = "gnu"))) {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                trim();
            }
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_follow_allocations_and_trim_returns_pages() {
        if !cfg!(all(target_os = "linux", target_env = "gnu")) {
            return;
        }
        let before = heap_in_use_bytes().unwrap();
        // Many small blocks (arena memory, not mmap), touched so that they are resident.
        let blocks: Vec<Vec<u8>> = (0..8192).map(|i| vec![(i % 251) as u8; 16 << 10]).collect();
        let held = heap_in_use_bytes().unwrap();
        assert!(held >= before + (100 << 20), "{before} → {held}");
        let resident_held = resident_bytes().unwrap();
        // Free all but the last block, which pins the top of the arena so that only
        // malloc_trim (not the automatic trim at the top) can return the pages below it.
        let mut blocks = blocks;
        let last = blocks.pop();
        drop(blocks);
        assert!(heap_in_use_bytes().unwrap() < held - (100 << 20));
        trim();
        let resident_after = resident_bytes().unwrap();
        assert!(
            resident_after < resident_held - (64 << 20),
            "resident {resident_held} → {resident_after} after trim"
        );
        drop(last);
    }
}
