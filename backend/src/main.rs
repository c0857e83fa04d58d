//! The `livepet` binary: parse the command line, set up logging, run.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: glibc raises its mmap threshold after the first large free,
/// so the large frames of thousands of WebSocket sessions stayed resident after use
/// (10,000 viewers: 12 GB instead of 1.6 GB; see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = livepet_server::config::Cli::parse();
    livepet_server::logging::init("info");
    match livepet_server::run_cli(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
