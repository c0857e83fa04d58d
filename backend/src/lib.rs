//! The LivePet server: a world of pet actors, persisted through diesel, served over HTTP
//! and WebSocket. `main.rs` only parses the command line and calls [`run_cli`].

pub mod actors;
pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod metrics;
pub mod seed;
pub mod startup;
pub mod world;
pub mod ws;
pub mod ws_protocol;

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
            let app = startup::Application::build(args).await?;
            app.run_until_signal().await
        }),
    }
}
