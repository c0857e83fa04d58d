//! Database access: one connection type over SQLite and PostgreSQL, the URL that picks it,
//! a connection pool, and the embedded migrations. Only the persister and request handlers
//! on the blocking pool talk to the database.

pub mod cluster;
pub mod lock;
pub mod models;
pub mod queries;
pub mod schema;

use anyhow::Context as _;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// One connection to whichever database the URL named.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs the same code against whichever concrete connection `conn` holds. Used where a
/// statement needs backend-specific SQL or features the multi-backend does not cover.
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Pg($c) => $body,
        }
    };
}

/// Which database to use, parsed from `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// A SQLite file path (created if missing).
    Sqlite(String),
    /// A libpq connection URL.
    Postgres(String),
}

impl FromStr for DbUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err("the sqlite URL has no file path (expected sqlite://FILE)".into());
            }
            return Ok(DbUrl::Sqlite(path.to_string()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(DbUrl::Postgres(s.to_string()));
        }
        match s.split_once("://") {
            Some((scheme, _)) => Err(format!(
                "unknown database URL scheme `{scheme}`: use sqlite://FILE or postgres://USER@HOST/DB"
            )),
            None => Err(format!(
                "`{s}` is not a database URL: use sqlite://FILE or postgres://USER@HOST/DB"
            )),
        }
    }
}

impl fmt::Display for DbUrl {
    /// Shown in logs, so a PostgreSQL password never is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbUrl::Sqlite(path) => write!(f, "sqlite://{path}"),
            DbUrl::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(start), Some(at)) if at > start => {
                    let creds = &url[start + 3..at];
                    let user = creds.split(':').next().unwrap_or("");
                    write!(f, "{}{user}:***{}", &url[..start + 3], &url[at..])
                }
                _ => f.write_str(url),
            },
        }
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Opens one connection, with the SQLite settings LivePet relies on.
pub fn establish(url: &DbUrl) -> anyhow::Result<DbConn> {
    match url {
        DbUrl::Sqlite(path) => {
            let mut c = SqliteConnection::establish(path)
                .with_context(|| format!("cannot open SQLite database {url}"))?;
            // WAL lets readers run during a flush; NORMAL sync keeps every commit safe from
            // a process crash (a power cut may lose the last commits, never corrupt the file);
            // the busy timeout makes concurrent writers wait instead of failing.
            diesel::connection::SimpleConnection::batch_execute(
                &mut c,
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
            )
            .with_context(|| format!("cannot configure SQLite database {url}"))?;
            Ok(DbConn::Sqlite(c))
        }
        DbUrl::Postgres(raw) => {
            let c = PgConnection::establish(raw)
                .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
            Ok(DbConn::Pg(c))
        }
    }
}

/// The advisory lock nodes of a cluster take in turn to migrate one PostgreSQL database
/// ("LivM"; the one-server lock is "LivP").
const PG_MIGRATE_LOCK: i64 = 0x4C69_764D;

/// Applies every pending migration; returns how many ran. On PostgreSQL the servers starting
/// together on one database (a cluster's nodes) migrate one after the other: two creating the
/// same tables at once would fail on PostgreSQL's catalog.
pub fn run_migrations(conn: &mut DbConn) -> anyhow::Result<usize> {
    let applied = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
        DbConn::Pg(c) => {
            use diesel::RunQueryDsl as _;
            diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATE_LOCK})"))
                .execute(c)
                .map_err(|e| anyhow::anyhow!("waiting for other servers' migrations: {e}"))?;
            let applied = c.run_pending_migrations(PG_MIGRATIONS).map(|v| v.len());
            let _ = diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_MIGRATE_LOCK})"))
                .execute(c);
            applied
        }
    }
    .map_err(|e| anyhow::anyhow!("running migrations failed: {e}"))?;
    Ok(applied)
}

/// One harmless write of every kind to every table LivePet writes (each matches no row),
/// so a database the server cannot write fails here, at start, and not at the final flush.
const WRITE_PROBES: &str = "\
    INSERT INTO users SELECT * FROM users WHERE 1 = 0; \
    UPDATE users SET id = id WHERE 1 = 0; \
    DELETE FROM users WHERE 1 = 0; \
    INSERT INTO sessions SELECT * FROM sessions WHERE 1 = 0; \
    UPDATE sessions SET token_hash = token_hash WHERE 1 = 0; \
    DELETE FROM sessions WHERE 1 = 0; \
    INSERT INTO pets SELECT * FROM pets WHERE 1 = 0; \
    UPDATE pets SET id = id WHERE 1 = 0; \
    DELETE FROM pets WHERE 1 = 0;";

/// Fails unless this connection may write every table: a read-only file or mount, a role
/// without write privileges, or `default_transaction_read_only` would otherwise be found only
/// when the first write fails (at worst the final flush, losing every unsaved state). The
/// probes run in a transaction that is rolled back, so nothing changes.
pub fn check_writable(conn: &mut DbConn, url: &DbUrl) -> anyhow::Result<()> {
    use diesel::result::Error;
    let probe = conn.transaction::<(), Error, _>(|c| {
        diesel::connection::SimpleConnection::batch_execute(c, WRITE_PROBES)?;
        Err(Error::RollbackTransaction)
    });
    match probe {
        Ok(()) | Err(Error::RollbackTransaction) => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "cannot write to the database {url}: {e} (a read-only file or mount, or a \
             database user without write privileges?)"
        )),
    }
}

/// Opens the database, migrates it, and logs what happened.
pub fn connect_and_migrate(url: &DbUrl) -> anyhow::Result<DbConn> {
    let mut conn = establish(url)?;
    let applied = run_migrations(&mut conn)?;
    if applied > 0 {
        log::info!("applied {applied} migration(s) to {url}");
    }
    Ok(conn)
}

/// r2d2 glue: how to open and check a [`DbConn`].
#[derive(Debug, Clone)]
pub struct DbManager {
    url: DbUrl,
}

impl r2d2::ManageConnection for DbManager {
    type Connection = DbConn;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConn, ConnectError> {
        establish(&self.url).map_err(|e| ConnectError(format!("{e:#}")))
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), ConnectError> {
        diesel::connection::SimpleConnection::batch_execute(conn, "SELECT 1")
            .map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// Why a pooled connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

/// The connection pool of request handlers, sessions and background jobs, with a gate in
/// front of it: at most one task per connection is on a blocking thread at a time, the rest
/// wait asynchronously for a turn. Without the gate, a reconnect storm of thousands of
/// sockets (each looks its session up) put a thousand blocking threads to sleep on the
/// pool, and their wake-ups starved the threads that write frames to connected viewers.
#[derive(Clone)]
pub struct DbPool {
    pool: r2d2::Pool<DbManager>,
    turns: std::sync::Arc<tokio::sync::Semaphore>,
}

/// How long a request waits for a database connection before it is told to try later.
const POOL_WAIT: Duration = Duration::from_secs(3);

/// Why work sent to the blocking pool did not get to run its queries.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection within the pool's timeout: the database is away or saturated.
    #[error("no database connection: {0}")]
    Pool(#[from] r2d2::Error),
    /// Every connection stayed busy for as long as the pool's timeout: too much waiting.
    #[error("the database is busy: no turn within {} s", POOL_WAIT.as_secs())]
    Busy,
    /// The blocking task itself failed (it panicked or the runtime is stopping).
    #[error("database task failed: {0}")]
    Task(String),
}

/// Runs blocking database work on the blocking thread pool with a pooled connection: the one
/// way request handlers, sessions and background jobs reach the database (the persister
/// has its own thread and connection). Async code never waits on a query in place.
pub async fn run<T, E, F>(pool: &DbPool, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
    F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
{
    // Bounded like the pool's own checkout, so a dead or saturated database still gets a
    // quick 503 rather than a queue that grows for as long as the outage lasts.
    let turn = tokio::time::timeout(POOL_WAIT, pool.turns.clone().acquire_owned())
        .await
        .map_err(|_| DbError::Busy)?
        .map_err(|e| DbError::Task(e.to_string()))?;
    let pool = pool.pool.clone();
    actix_rt::task::spawn_blocking(move || {
        let _turn = turn;
        let mut conn = pool.get().map_err(DbError::Pool)?;
        f(&mut conn)
    })
    .await
    .map_err(|e| DbError::Task(e.to_string()))?
}

/// A pool for request handlers and background jobs.
pub fn pool(url: &DbUrl, size: u32) -> anyhow::Result<DbPool> {
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(POOL_WAIT)
        // A connection broken by a database restart is noticed and replaced at checkout,
        // so an outage heals by itself once the database is back.
        .test_on_check_out(true)
        .build(DbManager { url: url.clone() })
        .with_context(|| format!("cannot open a connection pool for {url}"))?;
    Ok(DbPool {
        pool,
        turns: std::sync::Arc::new(tokio::sync::Semaphore::new(size as usize)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_urls() {
        assert_eq!(
            "sqlite://livepet.db".parse::<DbUrl>(),
            Ok(DbUrl::Sqlite("livepet.db".into()))
        );
        assert_eq!(
            "sqlite:///tmp/x.db".parse::<DbUrl>(),
            Ok(DbUrl::Sqlite("/tmp/x.db".into()))
        );
        assert!(matches!(
            "postgres://u@h/db".parse::<DbUrl>(),
            Ok(DbUrl::Postgres(_))
        ));
        assert!(matches!(
            "postgresql://u@h/db".parse::<DbUrl>(),
            Ok(DbUrl::Postgres(_))
        ));
    }

    #[test]
    fn rejects_unknown_schemes_clearly() {
        let e = "mysql://x".parse::<DbUrl>().unwrap_err();
        assert!(e.contains("unknown database URL scheme `mysql`"), "{e}");
        assert!("livepet.db".parse::<DbUrl>().is_err());
        assert!("sqlite://".parse::<DbUrl>().is_err());
    }

    #[test]
    fn display_hides_passwords() {
        let u: DbUrl = "postgres://bob:secret@db:5432/x".parse().unwrap();
        assert_eq!(u.to_string(), "postgres://bob:***@db:5432/x");
    }
}
