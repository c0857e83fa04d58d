//! Command line and environment configuration: one typed struct per subcommand, every flag
//! mirrored by an environment variable. No globals: the parsed values are passed down.

use crate::db::DbUrl;
use crate::services::limits::LimitSettings;
use crate::services::mail::{self, MailConfig, SmtpUrl};
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

// One value per process, parsed once: boxing `ServeArgs` would buy nothing.
#[allow(clippy::large_enum_variant)]
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

/// A session length such as `24h` or `60d`: at least a second, at most ten years.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (write it like 30m, 24h or 60d)"))?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3650 * 86_400) {
        return Err("between 1s and 3650d".into());
    }
    Ok(d)
}

/// One trusted proxy: an address (a /32 or /128) or a CIDR.
fn parse_proxy(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR like 10.0.0.0/8"))
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

    /// How long a login without "keep me logged in" lasts (its cookie also ends when the
    /// browser closes), e.g. 24h, 90m, 2d.
    #[arg(long, env = "LIVEPET_SESSION_TTL", default_value = "24h",
          value_parser = parse_ttl)]
    pub session_ttl: Duration,

    /// How long a login with "keep me logged in" lasts, e.g. 60d.
    #[arg(long, env = "LIVEPET_REMEMBER_TTL", default_value = "60d",
          value_parser = parse_ttl)]
    pub remember_ttl: Duration,

    /// Proxies trusted to name the client: comma-separated addresses or CIDRs (e.g.
    /// 127.0.0.1,10.0.0.0/8). Only a request from one of them may set the client address
    /// through X-Forwarded-For (used for attempt limits and logs); without this flag the
    /// header is ignored and the peer address counts.
    #[arg(long, env = "LIVEPET_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Login and registration attempts allowed per client IP per minute (429 beyond).
    #[arg(long, env = "LIVEPET_AUTH_ATTEMPTS_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_attempts_per_minute: u32,

    /// Live pets one user may have; adopting more is refused (422 `limit_reached`).
    #[arg(long, env = "LIVEPET_MAX_PETS_PER_USER", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pets_per_user: u32,

    /// Adoptions one user may make per minute (429 beyond).
    #[arg(long, env = "LIVEPET_ADOPTIONS_PER_MINUTE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub adoptions_per_minute: u32,

    /// WebSockets one user may have open at once (tabs, devices); more are refused with 429.
    #[arg(long, env = "LIVEPET_MAX_SOCKETS_PER_USER", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sockets_per_user: u32,

    /// Pets one user may watch at once across all its sockets; each watched pet is on every
    /// viewer's active list, so this bounds what one account can put there.
    #[arg(long, env = "LIVEPET_MAX_WATCHED_PER_USER", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_watched_per_user: u32,

    /// WebSocket frames one user may send per second across all its sockets (twice that as
    /// a burst); beyond it frames are refused like a single socket's flood.
    #[arg(long, env = "LIVEPET_FRAMES_PER_USER_PER_SECOND", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub frames_per_user_per_second: u32,

    /// WebSocket frames a session may send per second (twice that as a burst); beyond it
    /// frames are refused, and sustained flooding closes the socket.
    #[arg(long, env = "LIVEPET_WS_FRAMES_PER_SECOND", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_frames_per_second: u32,

    /// Serve /metrics on this address instead (e.g. 127.0.0.1:9090), so it can stay private
    /// while the app is public; the app's own port then answers /metrics with 404. Default:
    /// /metrics on the app's address.
    #[arg(long, env = "LIVEPET_METRICS_BIND")]
    pub metrics_bind: Option<String>,

    /// HTTP connections (WebSockets included) served at once. Past it a request gets an
    /// immediate 503 with Retry-After instead of waiting. Default: what the open-file limit
    /// allows once raised, less a reserve for the database, files and the persister.
    #[arg(long, env = "LIVEPET_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: Option<u64>,

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

    /// SMTP server for mail (password resets, email changes). smtp://USER:PASSWORD@HOST:PORT
    /// uses STARTTLS when the server offers it and plain SMTP when it does not (add
    /// ?tls=required to insist on STARTTLS, ?tls=none to never try it); smtps://… is TLS from
    /// the first byte. Ports default to 587 and 465; percent-encode special characters in the
    /// user and password. Without it, each mail is written as an .eml file to --mail-dir.
    #[arg(long, env = "LIVEPET_SMTP_URL", hide_env_values = true,
          value_parser = SmtpUrlParser)]
    pub smtp_url: Option<SmtpUrl>,

    /// Sender of every mail, e.g. "LivePet <livepet@example.com>".
    #[arg(long, env = "LIVEPET_MAIL_FROM", default_value = mail::DEFAULT_FROM,
          value_parser = mail::parse_mail_from)]
    pub mail_from: String,

    /// Folder that mails are written to (as .eml files) when there is no --smtp-url; created
    /// if missing. Default: mail/ beside the SQLite file, or ./mail with PostgreSQL.
    #[arg(long, env = "LIVEPET_MAIL_DIR")]
    pub mail_dir: Option<PathBuf>,

    /// The address users open the app at, for links in mails, e.g. https://pets.example.com
    /// (default: the address the server listens on).
    #[arg(long, env = "LIVEPET_PUBLIC_URL", value_parser = mail::parse_public_url)]
    pub public_url: Option<String>,

    /// Run as one node of a cluster: the NATS server the nodes talk through, e.g.
    /// nats://127.0.0.1:4222. Needs a PostgreSQL DATABASE_URL shared by every node; the nodes
    /// share the pets between them and take over a failed node's. Without it: one node.
    #[arg(long, env = "LIVEPET_NATS_URL", help_heading = "Cluster")]
    pub nats_url: Option<String>,

    /// This node's name in the cluster, unique among its nodes (default: host name and port).
    #[arg(long, env = "LIVEPET_NODE_NAME", help_heading = "Cluster")]
    pub node_name: Option<String>,

    /// Milliseconds a node's lease on its shards lasts without renewal: how long a crashed or
    /// cut-off node's pets wait before other nodes take them over.
    #[arg(long, env = "LIVEPET_LEASE_TTL_MS", default_value_t = 10_000, help_heading = "Cluster",
          value_parser = clap::value_parser!(u64).range(200..=600_000))]
    pub lease_ttl_ms: u64,

    /// Milliseconds between two heartbeats of a node (renewing its leases, seeing who is
    /// alive); under half the lease.
    #[arg(long, env = "LIVEPET_HEARTBEAT_MS", default_value_t = 2_000, help_heading = "Cluster",
          value_parser = clap::value_parser!(u64).range(50..=300_000))]
    pub heartbeat_ms: u64,
}

/// Parses `--smtp-url` with an error of its own: clap's usual one repeats the value, and
/// this one may hold a password.
#[derive(Clone)]
struct SmtpUrlParser;

impl clap::builder::TypedValueParser for SmtpUrlParser {
    type Value = SmtpUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SmtpUrl, clap::Error> {
        let invalid = |why: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for --smtp-url (LIVEPET_SMTP_URL): {why}\n"),
            )
            .with_cmd(cmd)
        };
        value
            .to_str()
            .ok_or_else(|| invalid("not valid UTF-8"))?
            .parse()
            .map_err(|e: String| invalid(&e))
    }
}

/// This machine's host name (for a node's default name).
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_str()
        .map(str::to_string)
        .unwrap_or_else(|_| "livepet".into())
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
            session_ttl: Duration::from_secs(86_400),
            remember_ttl: Duration::from_secs(60 * 86_400),
            trusted_proxies: Vec::new(),
            // Tests sign up many users from one address; the limiter test lowers this.
            auth_attempts_per_minute: 10_000,
            ws_frames_per_second: 50,
            // Tests open many sockets and pets per user; the limit tests lower these.
            max_pets_per_user: 100_000,
            adoptions_per_minute: 100_000,
            max_sockets_per_user: 10_000,
            max_watched_per_user: 10_000,
            frames_per_user_per_second: 100_000,
            no_dashboard: false,
            metrics_bind: None,
            max_connections: None,
            ws_timeout_ms: 30_000,
            body_timeout_s: 10,
            smtp_url: None,
            mail_from: mail::DEFAULT_FROM.into(),
            // Beside an SQLite file in the test's folder; the test helpers set one anyway, so
            // a server on PostgreSQL does not write into the working directory.
            mail_dir: None,
            public_url: None,
            nats_url: None,
            node_name: None,
            lease_ttl_ms: 10_000,
            heartbeat_ms: 2_000,
        }
    }

    /// Cluster mode's settings, or `None` for one node; an error for a combination that
    /// cannot work (SQLite, a heartbeat as long as half the lease). `port`: where this node
    /// listens, for its default name.
    pub fn cluster(&self, port: u16) -> anyhow::Result<Option<crate::cluster::ClusterConfig>> {
        let Some(nats_url) = self.nats_url.clone() else {
            return Ok(None);
        };
        if matches!(self.db.database_url, DbUrl::Sqlite(_)) {
            anyhow::bail!(
                "--nats-url needs a PostgreSQL DATABASE_URL shared by every node (SQLite is one \
                 node's file); set DATABASE_URL=postgres://... or drop --nats-url"
            );
        }
        if self.heartbeat_ms * 2 >= self.lease_ttl_ms {
            anyhow::bail!(
                "--heartbeat-ms ({}) must be under half of --lease-ttl-ms ({}), so a lease is \
                 renewed at least twice before it expires",
                self.heartbeat_ms,
                self.lease_ttl_ms
            );
        }
        let node = match &self.node_name {
            Some(n) if !n.trim().is_empty() => n.trim().to_string(),
            Some(_) => anyhow::bail!("--node-name is empty"),
            None => format!("{}:{port}", host_name()),
        };
        Ok(Some(crate::cluster::ClusterConfig {
            nats_url,
            node,
            lease_ttl: Duration::from_millis(self.lease_ttl_ms),
            heartbeat: Duration::from_millis(self.heartbeat_ms),
        }))
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

    /// Whether people reach the server over https (behind a TLS proxy): `--secure-cookies`
    /// or an https `--public-url`. It marks the cookie Secure and sends HSTS; no request
    /// header can change it.
    pub fn served_over_tls(&self) -> bool {
        self.secure_cookies
            || self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }

    pub fn limits(&self) -> LimitSettings {
        LimitSettings {
            pets: self.max_pets_per_user,
            adoptions_per_minute: self.adoptions_per_minute,
            sockets: self.max_sockets_per_user,
            frames_per_second: self.frames_per_user_per_second,
            watched: self.max_watched_per_user,
        }
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

    /// Where mail goes: the SMTP server, or else the mail folder (by default `mail/` beside
    /// the SQLite file, so a self-hoster finds it next to the data; `./mail` otherwise).
    pub fn mail_config(&self) -> MailConfig {
        let dir = self
            .mail_dir
            .clone()
            .unwrap_or_else(|| match &self.db.database_url {
                DbUrl::Sqlite(file) => std::path::Path::new(file)
                    .parent()
                    .map_or_else(|| PathBuf::from("mail"), |p| p.join("mail")),
                DbUrl::Postgres(_) => PathBuf::from("mail"),
            });
        MailConfig {
            smtp_url: self.smtp_url.clone(),
            from: self.mail_from.clone(),
            dir,
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
