//! `livepet-load`: a load generator for a running LivePet server, used by `cargo xtask bench`.
//!
//! - `viewers`: signs up K users over HTTP, each adopting its share of pets, opens M
//!   WebSocket viewers (each logged in as its user, watching one of that user's pets), lets a
//!   share of them feed and give treats at a set rate, and reports frames received against
//!   frames expected, tick-to-client latency from each frame's `at`, feed and treat round
//!   trips, error frames by code, connection failures by kind (timeout, refused with 503 or
//!   by TCP, reset, other: each viewer gives up after a bounded time), and the bytes a
//!   session receives by frame type. With `--storm S`, S more viewers connect all at once
//!   during the window while the M are measured.
//! - `http`: one user and pet, C concurrent keep-alive clients on `GET /api/pets/{id}`;
//!   requests per second and latency percentiles.
//!
//! Progress goes to stderr; stdout carries machine-readable lines for the harness:
//! `CONNECTING <ms>` (viewers start connecting), `READY <ms>`, `WINDOW <start_ms> <end_ms>`,
//! `STORM <ms>` (with a storm) and finally `RESULT <json>`.

mod http_load;
mod report;
mod setup;
mod stats;
mod viewer;
mod viewers;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The same allocator as the server (it holds thousands of sockets too).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "livepet-load", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// WebSocket viewers watching their own pets, some feeding and giving treats.
    Viewers(viewers::ViewersArgs),
    /// Keep-alive clients hammering `GET /api/pets/{id}`.
    Http(http_load::HttpArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let result = match Cli::parse().command {
        Command::Viewers(args) => viewers::run(args),
        Command::Http(args) => http_load::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("livepet-load: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
