//! `cargo xtask`: the only commands a newcomer needs.
//!
//! - `cargo xtask run`   installs what is missing, builds the web app and serves everything
//!   (`--nodes N`: N nodes as one world, with PostgreSQL and NATS).
//! - `cargo xtask test`  formatting, lints, the browser build and every test (CI runs this).
//! - `cargo xtask bench` the benchmarks behind BENCHMARKS.md.
//! - `cargo xtask schema` rewrites backend/src/db/schema.rs from the migrations.
//!
//! Everything is plain `std::process::Command`: each step prints a `==> ` line, children
//! write straight to the terminal, and a failing step stops the run with a message saying
//! which command failed.

mod bench;
mod bench_cluster;
mod bench_conn;
mod bench_report;
mod bench_sys;
mod bench_web;
mod browser;
mod cluster;
mod fuzz;
mod pgcheck;
mod proc;
mod run;
mod run_cluster;
mod schema;
mod test;
mod tools;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Build, run and test LivePet. Start with `cargo xtask run`, then open the URL it prints.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install missing tools, build the web app and run `livepet serve` on it.
    ///
    /// The first run installs the wasm32 target, trunk 0.21.14, the wasm-bindgen CLI that
    /// matches Cargo.lock and wasm-opt (npm binaryen 132, under target/tools); later runs
    /// reuse them. Then it builds frontend/dist with trunk and starts the server on it.
    ///
    /// Example: cargo xtask run -- --bind 127.0.0.1:9000 --tick-ms 1000
    ///
    /// Several nodes as one world (PostgreSQL and NATS): cargo xtask run --nodes 3
    Run(run::RunArgs),
    /// Check formatting, lints and schema.rs, compile the web app for the browser, run
    /// every test.
    ///
    /// PostgreSQL tests use LIVEPET_TEST_POSTGRES_URL (default
    /// postgres://postgres@127.0.0.1:5432/postgres). When it cannot be reached they are
    /// skipped with a loud warning, unless CI is set, where that is an error.
    Test,
    /// Run the benchmarks (release build, fresh process and database per measure) and
    /// write BENCHMARKS.md; `--quick` is a short run that checks the harness.
    Bench(bench::BenchArgs),
    /// Rewrite backend/src/db/schema.rs from the migrations (run it after adding one).
    ///
    /// Runs migrations/sqlite and migrations/postgres on throwaway databases (a temporary
    /// SQLite file; a database created on LIVEPET_TEST_POSTGRES_URL and dropped again),
    /// writes what `diesel print-schema` prints for SQLite and fails if PostgreSQL's schema
    /// names other types. Installs diesel_cli 2.3.14 the first time (about 6 min).
    /// `--check` only compares, as `cargo xtask test` does.
    Schema(schema::SchemaArgs),
    /// Internal: what `run --nodes N` starts behind its signal-relaying shell.
    #[command(hide = true)]
    ClusterSupervise(run_cluster::SuperviseArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Test => test::test(),
        Command::Bench(args) => bench::bench(args),
        Command::Schema(args) => schema::schema(args),
        Command::ClusterSupervise(args) => run_cluster::supervise(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
