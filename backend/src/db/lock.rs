//! One server per database: an exclusive lock held for the life of the process, so a second
//! `livepet serve` on the same database exits at once, naming the first, instead of both
//! ticking the same pets and writing over each other (stored states flipping between two
//! worlds, feeds lost, every pet dying twice).
//!
//! - SQLite: `flock` on a lock file beside the database (`livepet.db.lock`). The kernel drops
//!   it when the process ends, however it ends, so a crash never leaves a stale lock; the
//!   file's text only names the last holder, for the second server's error.
//! - PostgreSQL: a session-level advisory lock on a connection of its own, held until the
//!   process stops. PostgreSQL drops it when that session ends; the holder is named through
//!   the session's `application_name`. A watchdog thread notices a broken lock connection
//!   (the database restarted or the network dropped it) and takes the lock again.
//!
//! This is for one node. Several nodes sharing one PostgreSQL database (a cluster) must not
//! take this lock; they fence their writes with shard leases instead.

use super::DbUrl;
use anyhow::Context as _;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer, Text};
use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The advisory lock's key: "LivP". Below 2^31, so it shows in `pg_locks` as `classid` 0 and
/// `objid` this number.
const PG_LOCK_KEY: i64 = 0x4C69_7650;

/// How long a PostgreSQL lock held by a session that is going away (its server was just
/// killed and PostgreSQL has not noticed yet) is waited for before giving up.
const PG_HOLDER_GRACE: Duration = Duration::from_secs(2);

/// How often the watchdog checks that the lock connection is alive.
const PG_CHECK_EVERY: Duration = Duration::from_secs(5);

/// The exclusive right to use one database, released when dropped.
pub struct DbLock {
    inner: Inner,
}

enum Inner {
    File { file: File, path: PathBuf },
    Pg(PgLock),
}

impl DbLock {
    /// Takes the lock of the database `url` names, or fails with an error that names the
    /// server holding it when that is known. Blocking: call it off the async runtime.
    pub fn acquire(url: &DbUrl) -> anyhow::Result<DbLock> {
        let inner = match url {
            DbUrl::Sqlite(path) => lock_file(url, Path::new(path))?,
            DbUrl::Postgres(raw) => Inner::Pg(PgLock::acquire(url, raw)?),
        };
        Ok(DbLock { inner })
    }

    /// Records this process and the address it serves as the holder, for the error a second
    /// server prints.
    pub fn record_holder(&self, addr: &str) {
        let holder = holder_text(addr);
        match &self.inner {
            Inner::File { file, path } => {
                let written = file
                    .set_len(0)
                    .and_then(|()| file.write_all_at(holder.as_bytes(), 0));
                if let Err(e) = written {
                    log::debug!("cannot record the holder in {}: {e}", path.display());
                }
            }
            Inner::Pg(pg) => pg.send(Cmd::Holder(holder)),
        }
    }

    /// Releases the lock and waits until it is released. Blocking.
    pub fn release(self) {
        match self.inner {
            Inner::File { file, .. } => drop(file),
            Inner::Pg(mut pg) => pg.stop_and_join(),
        }
    }
}

/// `pid=1234 http://127.0.0.1:8080`, short enough for PostgreSQL's 63-byte application name.
fn holder_text(addr: &str) -> String {
    format!("livepet pid={} http://{addr}", std::process::id())
}

/// Why another server is named: "another livepet server (…)".
fn in_use(url: &DbUrl, holder: &str) -> anyhow::Error {
    let holder = holder.trim();
    let who = if holder.is_empty() {
        "another livepet server".to_string()
    } else {
        format!("another livepet server ({holder})")
    };
    anyhow::anyhow!(
        "{url} is in use by {who}; only one server may use a database at a time: stop that \
         one first"
    )
}

// ---- SQLite: a lock file -----------------------------------------------------------------

/// The lock file of the database at `db`: beside the real file, so two spellings of one path
/// (relative, absolute, through a symlink) share one lock.
fn lock_path(db: &Path) -> PathBuf {
    let real = std::fs::canonicalize(db).ok().or_else(|| {
        // Not created yet: resolve its folder instead.
        let dir = db.parent().filter(|d| !d.as_os_str().is_empty())?;
        Some(std::fs::canonicalize(dir).ok()?.join(db.file_name()?))
    });
    let mut name = real.unwrap_or_else(|| db.to_path_buf()).into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

fn lock_file(url: &DbUrl, db: &Path) -> anyhow::Result<Inner> {
    let path = lock_path(db);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        // A lock file left by another user can still be locked through a read-only handle.
        .or_else(|_| File::open(&path))
        .with_context(|| format!("cannot create the lock file {}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut holder = String::new();
            let _ = (&file).read_to_string(&mut holder);
            return Err(in_use(url, &holder));
        }
        Err(e) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    // Until the address is known, at least the process is named.
    let pid = format!("livepet pid={}", std::process::id());
    let _ = file
        .set_len(0)
        .and_then(|()| file.write_all_at(pid.as_bytes(), 0));
    Ok(Inner::File { file, path })
}

// ---- PostgreSQL: an advisory lock on a connection of its own -----------------------------

enum Cmd {
    Holder(String),
    Stop,
}

struct PgLock {
    tx: mpsc::Sender<Cmd>,
    thread: Option<JoinHandle<()>>,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = Integer)]
    pid: i32,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    client: String,
}

/// The session holding the lock in this database, if any.
fn pg_holder(conn: &mut PgConnection) -> QueryResult<Option<Holder>> {
    diesel::sql_query(format!(
        "SELECT a.pid, COALESCE(a.application_name, '') AS name, \
                COALESCE(host(a.client_addr), 'a local socket') AS client \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 \
           AND l.objid = {PG_LOCK_KEY} AND l.objsubid = 1 \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ))
    .get_result(conn)
    .optional()
}

fn set_name(conn: &mut PgConnection, name: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT set_config('application_name', $1, false)")
        .bind::<Text, _>(name)
        .execute(conn)
        .map(|_| ())
}

fn try_lock(conn: &mut PgConnection) -> QueryResult<bool> {
    diesel::sql_query(format!(
        "SELECT pg_try_advisory_lock({PG_LOCK_KEY}) AS locked"
    ))
    .get_result::<Locked>(conn)
    .map(|l| l.locked)
}

/// The lock connection fails fast when the server is unreachable, instead of libpq's default
/// of waiting forever.
fn lock_url(raw: &str) -> String {
    if raw.contains("connect_timeout=") {
        raw.to_string()
    } else if raw.contains('?') {
        format!("{raw}&connect_timeout=5")
    } else {
        format!("{raw}?connect_timeout=5")
    }
}

/// Connects and takes the lock. `me` is this process's application name; a holder with the
/// same name is a session of this very process that lost its client (after a network cut) and
/// is ended, so the lock can be taken again. Another holder is waited for up to `grace`.
fn connect_and_lock(
    url: &DbUrl,
    raw: &str,
    me: &str,
    grace: Duration,
) -> anyhow::Result<PgConnection> {
    let mut conn = PgConnection::establish(&lock_url(raw))
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
    set_name(&mut conn, me).context("cannot name the lock session")?;
    let deadline = Instant::now() + grace;
    loop {
        if try_lock(&mut conn).context("cannot take the database lock")? {
            return Ok(conn);
        }
        let holder = pg_holder(&mut conn).context("cannot read the lock holder")?;
        match holder {
            Some(h) if h.name == me => {
                diesel::sql_query(format!("SELECT pg_terminate_backend({})", h.pid))
                    .execute(&mut conn)
                    .context("cannot end this server's orphaned lock session")?;
            }
            // Released between the two queries: try again at once.
            None => {}
            Some(h) if Instant::now() >= deadline => {
                return Err(in_use(
                    url,
                    &format!(
                        "{}; PostgreSQL session {} from {}",
                        if h.name.is_empty() {
                            "unnamed"
                        } else {
                            &h.name
                        },
                        h.pid,
                        h.client
                    ),
                ));
            }
            // Perhaps a server that was just killed, whose session PostgreSQL is ending.
            Some(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

impl PgLock {
    fn acquire(url: &DbUrl, raw: &str) -> anyhow::Result<PgLock> {
        let mut me = format!("livepet pid={}", std::process::id());
        let mut conn = Some(connect_and_lock(url, raw, &me, PG_HOLDER_GRACE)?);
        let (tx, rx) = mpsc::channel();
        let (url, raw) = (url.clone(), raw.to_string());
        let thread = std::thread::Builder::new()
            .name("livepet-db-lock".into())
            .spawn(move || loop {
                match rx.recv_timeout(PG_CHECK_EVERY) {
                    Ok(Cmd::Holder(name)) => {
                        me = name;
                        if let Some(c) = conn.as_mut() {
                            let _ = set_name(c, &me);
                        }
                    }
                    Ok(Cmd::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                        if let Some(mut c) = conn.take() {
                            let _ = diesel::sql_query(format!(
                                "SELECT pg_advisory_unlock({PG_LOCK_KEY})"
                            ))
                            .execute(&mut c);
                        }
                        return;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let alive = conn.as_mut().is_some_and(|c| {
                            diesel::connection::SimpleConnection::batch_execute(c, "SELECT 1")
                                .is_ok()
                        });
                        if alive {
                            continue;
                        }
                        let was_held = conn.take().is_some();
                        match connect_and_lock(&url, &raw, &me, Duration::ZERO) {
                            Ok(c) => {
                                log::info!("database lock of {url} taken again");
                                conn = Some(c);
                            }
                            Err(e) if was_held => {
                                log::error!(
                                    "lost the database lock of {url} (its connection broke) \
                                     and cannot take it again yet: {e:#}"
                                );
                            }
                            Err(e) => log::debug!("database lock still not taken: {e:#}"),
                        }
                    }
                }
            })
            .context("cannot start the database lock thread")?;
        Ok(PgLock {
            tx,
            thread: Some(thread),
        })
    }

    fn send(&self, cmd: Cmd) {
        let _ = self.tx.send(cmd);
    }

    fn stop_and_join(&mut self) {
        self.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        // Not joined here: a drop may happen on the async runtime. The thread unlocks and ends
        // by itself; `release` waits for it.
        self.send(Cmd::Stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_sqlite_file_is_refused_and_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("livepet.db");
        let url = DbUrl::Sqlite(db.display().to_string());
        let first = DbLock::acquire(&url).unwrap();
        first.record_holder("127.0.0.1:8080");
        // Another spelling of the same file.
        let other = DbUrl::Sqlite(format!("{}/./livepet.db", dir.path().display()));
        let err = DbLock::acquire(&other).err().unwrap().to_string();
        assert!(err.contains("in use by another livepet server"), "{err}");
        assert!(
            err.contains(&format!("pid={}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("http://127.0.0.1:8080"), "{err}");
        first.release();
        DbLock::acquire(&url).unwrap().release();
    }

    #[test]
    fn lock_urls_get_a_connect_timeout() {
        assert_eq!(
            lock_url("postgres://u@h/db"),
            "postgres://u@h/db?connect_timeout=5"
        );
        assert_eq!(
            lock_url("postgres://u@h/db?sslmode=disable"),
            "postgres://u@h/db?sslmode=disable&connect_timeout=5"
        );
        assert_eq!(
            lock_url("postgres://u@h/db?connect_timeout=1"),
            "postgres://u@h/db?connect_timeout=1"
        );
    }
}
