//! The LivePet server: a world of pet actors, persisted through diesel, served over HTTP
//! and WebSocket. `main.rs` only parses the command line and calls [`run_cli`].
//!
//! Layers, each depending only on the ones below it (a test in `layering.rs` checks):
//! - edges: `api` (HTTP) and `ws` (WebSocket), started by `startup`, sharing `state`;
//! - `services`: operations both edges use (accounts, pets, treats);
//! - `cluster`: several nodes as one world (leases in PostgreSQL, traffic on NATS), used by
//!   the services to reach pets on other nodes; only with `--nats-url`;
//! - the pet core: `world` (cells, dirty set, ticker, registry, loading) and `actors`;
//! - `db`: connections, rows and queries; beside everything, `config`, `metrics`, `clock`.

pub mod actors;
pub mod api;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod seed;
pub mod services;
pub mod startup;
pub mod state;
pub mod world;
pub mod ws;

#[cfg(test)]
mod layering;

use config::{Cli, Command};

/// Runs one subcommand to completion.
pub fn run_cli(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate(args) => {
            db::connect_and_migrate(&args.database_url)?;
            log::info!("database {} is up to date", args.database_url);
            Ok(())
        }
        Command::Seed(args) => seed::run(&args),
        Command::Serve(args) => actix_web::rt::System::new().block_on(async move {
            let signals = startup::StopSignals::install()?;
            let app = startup::Application::build(args).await?;
            app.run_until_signal(signals).await
        }),
    }
}
