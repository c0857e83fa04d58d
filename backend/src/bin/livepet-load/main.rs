//! `livepet-load`: a load generator for a running LivePet server, used by `cargo xtask bench`.
//!
//! - `viewers`: signs up K users over HTTP, each adopting its share of pets, opens M
//!   WebSocket viewers (each logged in as its user, watching one of that user's pets), lets a
//!   share of them feed and give treats at a set rate, and reports frames received against
//!   frames expected, tick-to-client latency from each frame's `at`, feed and treat round
//!   trips, error frames by code and connection failures.
//! - `http`: one user and pet, C concurrent keep-alive clients on `GET /api/pets/{id}`;
//!   requests per second and latency percentiles.
//!
//! Progress goes to stderr; stdout carries machine-readable lines for the harness:
//! `READY <ms>`, `WINDOW <start_ms> <end_ms>` and finally `RESULT <json>`.

mod http_load;
mod setup;
mod stats;
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
