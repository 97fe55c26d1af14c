//! The `siamese` command line.

fn main() {
    // Behave like other command-line tools when the reader of stdout goes away
    // (`siamese predict … | head`): end quietly instead of panicking on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    siamese_app::alloc::tune_host_allocator();
    std::process::exit(siamese_app::cli::main());
}
