//! The `wasmhook` binary: process-wide settings, then the command line (`wasmhook::cli`).

use std::io::IsTerminal;
use std::process::ExitCode;

// The delivery path allocates many small, short-lived buffers across threads; glibc's malloc
// spent a fifth of the engine's time on them (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Transparent huge pages made the allocator fault in and zero 2 MiB pages as storage's
    // short-lived buffers came and went (a tenth of the server's CPU under load; see
    // BENCHMARKS.md). The setting is the process's own and leaves the system's alone.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person watching: not in files, pipes or journald.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    wasmhook::cli::main()
}
