//! Process-wide allocator settings of the `siamese` binary and the benchmark programs.

/// Keeps freed host memory in the process instead of returning it to the kernel (glibc
/// `mallopt`: large blocks from the heap rather than fresh `mmap`s, a high trim threshold).
///
/// Every CPU step allocates batch-sized buffers (inputs, activations, gradients). With glibc's
/// defaults each buffer over 128 KiB is a fresh `mmap` whose pages fault in on first touch and
/// go back with `munmap` when freed; on this project's VM that page-fault traffic doubled
/// `predict` at input dim 784, batch 1,024 (see BENCHMARKS.md). Reusing the memory removes it;
/// peak memory is unchanged, the process just keeps what it once used. The library never calls
/// this: it is a choice for a whole program, made once at start-up before threads start. A
/// no-op on other platforms and C libraries, and when the environment sets
/// `SIAMESE_MALLOC=default`.
pub fn tune_host_allocator() {
    if std::env::var_os("SIAMESE_MALLOC").is_some_and(|v| v == "default") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; called at start-up.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
