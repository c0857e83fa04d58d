//! Command line and environment configuration: one typed struct per subcommand, every flag
//! mirrored by an environment variable. No globals: the parsed values are passed down.

use crate::db::DbUrl;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// LivePet: a virtual-pet world where every pet is a live actor.
#[derive(Debug, Parser)]
#[command(name = "livepet", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the world: load every live pet, tick them, and serve the app, the API and /ws.
    Serve(ServeArgs),
    /// Create N live pets (and their owner, if missing) for demos, tests and benchmarks.
    Seed(SeedArgs),
    /// Apply pending database migrations and exit (every subcommand also does this first).
    Migrate(DbArgs),
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Database to use: sqlite://FILE (created if missing) or postgres://USER@HOST:PORT/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://livepet.db",
        value_parser = clap::builder::ValueParser::new(parse_db_url),
    )]
    pub database_url: DbUrl,
}

fn parse_db_url(s: &str) -> Result<DbUrl, String> {
    s.parse()
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Address to listen on (port 0 picks a free port; the log shows the real one).
    #[arg(long, env = "LIVEPET_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Milliseconds between two ticks of a pet (each tick: age +1, hunger +5).
    #[arg(long, env = "LIVEPET_TICK_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub tick_ms: u64,

    /// Milliseconds between two flushes of changed pets to the database. A hard crash loses at
    /// most this much ticking.
    #[arg(long, env = "LIVEPET_PERSIST_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub persist_ms: u64,

    /// A pet dies on the tick that takes its age past this many ticks.
    #[arg(long, env = "LIVEPET_DEATH_AGE", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub death_age: u32,

    /// Milliseconds between two top-ups of every user's treats (also done at start).
    #[arg(long, env = "LIVEPET_TREAT_REFRESH_MS", default_value_t = 1_800_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub treat_refresh_ms: u64,

    /// Folder with the built web app (Trunk's dist); served at /, with index.html as the
    /// fallback for app routes.
    #[arg(long, env = "LIVEPET_STATIC_DIR", default_value = "frontend/dist")]
    pub static_dir: PathBuf,

    /// Threads the pets live on (default: one per available core).
    #[arg(long, env = "LIVEPET_ARBITERS", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub arbiters: Option<u64>,

    /// Seconds a graceful stop (SIGTERM/SIGINT) may take before in-flight requests are cut.
    #[arg(long, env = "LIVEPET_SHUTDOWN_TIMEOUT_S", default_value_t = 30)]
    pub shutdown_timeout_s: u64,

    /// Extra origins allowed to open /ws, comma-separated (e.g. http://127.0.0.1:8081 for
    /// `trunk serve`). The server's own origin is always allowed; every other is refused.
    #[arg(long, env = "LIVEPET_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Mark the session cookie Secure even over plain http (set it behind a TLS proxy).
    #[arg(long, env = "LIVEPET_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Days a login stays valid.
    #[arg(long, env = "LIVEPET_SESSION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub session_days: u64,

    /// Login and registration attempts allowed per client IP per minute (429 beyond).
    #[arg(long, env = "LIVEPET_AUTH_ATTEMPTS_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_attempts_per_minute: u32,

    /// WebSocket frames a session may send per second (twice that as a burst); beyond it
    /// frames are refused, and sustained flooding closes the socket.
    #[arg(long, env = "LIVEPET_WS_FRAMES_PER_SECOND", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_frames_per_second: u32,

    /// Turn off the live dashboard (`subscribe_stats` is then refused).
    #[arg(long, env = "LIVEPET_NO_DASHBOARD")]
    pub no_dashboard: bool,

    /// Milliseconds a WebSocket client may stay silent before it is dropped; the server pings
    /// every third of this. Only time the server itself was running counts: after the server
    /// was paused (a VM pause, SIGSTOP), clients are pinged and given time to answer first.
    #[arg(long, env = "LIVEPET_WS_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(300..=3_600_000))]
    pub ws_timeout_ms: u64,

    /// Seconds a client may take to send a request body once its headers arrived; a slower
    /// one gets 408 and is disconnected, so a client trickling its body cannot hold a
    /// graceful stop.
    #[arg(long, env = "LIVEPET_BODY_TIMEOUT_S", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_s: u64,
}

impl ServeArgs {
    /// Defaults for a server under test: port 0, fast tick, the given database.
    pub fn for_tests(database_url: DbUrl) -> Self {
        ServeArgs {
            db: DbArgs { database_url },
            bind: "127.0.0.1:0".into(),
            tick_ms: 50,
            persist_ms: 60_000,
            death_age: 10_000,
            treat_refresh_ms: 1_800_000,
            static_dir: PathBuf::from("does-not-exist"),
            arbiters: Some(2),
            shutdown_timeout_s: 5,
            allowed_origins: Vec::new(),
            secure_cookies: false,
            session_days: 30,
            // Tests sign up many users from one address; the limiter test lowers this.
            auth_attempts_per_minute: 10_000,
            ws_frames_per_second: 50,
            no_dashboard: false,
            ws_timeout_ms: 30_000,
            body_timeout_s: 10,
        }
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    pub fn persist_every(&self) -> Duration {
        Duration::from_millis(self.persist_ms)
    }

    pub fn ws_timeout(&self) -> Duration {
        Duration::from_millis(self.ws_timeout_ms)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_s)
    }

    pub fn arbiter_count(&self) -> usize {
        match self.arbiters {
            Some(n) => n as usize,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// How many live pets to create.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=50_000_000))]
    pub pets: u64,

    /// Email of the user who owns the new pets (created if missing, without a usable password).
    #[arg(long, default_value = "seed@livepet.local")]
    pub owner: String,
}
