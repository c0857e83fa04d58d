//! Test support: a database per test (an SQLite file in a temporary folder, or a fresh
//! PostgreSQL database dropped afterwards), `TestApp` (an in-process server on port 0 with its
//! database and clients), reading metrics, and waiting on events.

use crate::client::{Client, Viewer};
use crate::process::ServerProcess;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use livepet_server::config::{DbArgs, SeedArgs, ServeArgs};
use livepet_server::db::{self, DbUrl};
use livepet_server::services::Services;
use livepet_server::startup::Application;
use livepet_server::world::World;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Declares one test per database for a scenario `fn name(backend: Backend)`:
/// `name::sqlite` and `name::postgres` (the names the test summary counts by).
macro_rules! on_both_databases {
    (async $scenario:ident) => {
        mod $scenario {
            #[actix_rt::test]
            async fn sqlite() {
                super::$scenario($crate::helpers::Backend::Sqlite).await;
            }

            #[actix_rt::test]
            async fn postgres() {
                super::$scenario($crate::helpers::Backend::Postgres).await;
            }
        }
    };
}

/// Which backend a test runs on; test names end in `_sqlite` / `_postgres` so the test
/// summary can count both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    url: DbUrl,
    raw_url: String,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

impl TestDb {
    /// A database of the given kind, or `None` (with a loud line) when PostgreSQL is not
    /// available outside CI. Under `CI`, a missing PostgreSQL fails the test.
    pub fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::sqlite()),
            Backend::Postgres => TestDb::postgres(),
        }
    }

    /// An SQLite file in a temporary folder (always available).
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let raw = format!("sqlite://{}", dir.path().join("livepet.db").display());
        TestDb {
            url: raw.parse().unwrap(),
            raw_url: raw,
            _dir: Some(dir),
            pg_drop: None,
        }
    }

    fn postgres() -> Option<TestDb> {
        let (admin, mut conn) = postgres_admin()?;
        Some(TestDb::postgres_on(admin, &mut conn, None))
    }

    /// A fresh PostgreSQL database stored in `tablespace` (which the caller made, and drops
    /// after this database is dropped).
    pub fn postgres_in_tablespace(
        admin: String,
        conn: &mut PgConnection,
        tablespace: &str,
    ) -> TestDb {
        TestDb::postgres_on(admin, conn, Some(tablespace))
    }

    fn postgres_on(admin: String, conn: &mut PgConnection, tablespace: Option<&str>) -> TestDb {
        let name = format!(
            "livepet_test_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let placed = tablespace.map_or(String::new(), |t| format!(" TABLESPACE {t}"));
        diesel::sql_query(format!("CREATE DATABASE {name}{placed}"))
            .execute(conn)
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        let raw = format!("{base}/{name}");
        TestDb {
            url: raw.parse().unwrap(),
            raw_url: raw,
            _dir: None,
            pg_drop: Some((admin, name)),
        }
    }

    /// The URL as the binary's `--database-url` takes it.
    pub fn raw_url(&self) -> &str {
        &self.raw_url
    }

    /// For PostgreSQL: the address of the server this database lives on.
    pub fn postgres_addr(&self) -> SocketAddr {
        let [_, _, hostport, _] = self.postgres_url_parts();
        let hostport = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:5432")
        };
        hostport.replace("localhost", "127.0.0.1").parse().unwrap()
    }

    /// For PostgreSQL: this database's URL through `127.0.0.1:port` (a proxy) instead.
    pub fn url_through(&self, port: u16) -> String {
        let [scheme, creds, _, db] = self.postgres_url_parts();
        format!("{scheme}://{creds}@127.0.0.1:{port}/{db}")
    }

    /// `scheme://creds@hostport/db`, taken apart.
    fn postgres_url_parts(&self) -> [&str; 4] {
        let (scheme, rest) = self.raw_url.split_once("://").unwrap();
        let (creds, rest) = rest.split_once('@').unwrap();
        let (hostport, db) = rest.split_once('/').unwrap();
        [scheme, creds, hostport, db]
    }

    /// A connection to this database (migrated).
    pub fn conn(&self) -> db::DbConn {
        db::connect_and_migrate(&self.url).unwrap()
    }

    /// Seeds `n` live pets through the real `seed` code path.
    pub fn seed(&self, n: u64) {
        livepet_server::seed::run(&SeedArgs {
            db: DbArgs {
                database_url: self.url.clone(),
            },
            pets: n,
            owner: "owner@example.com".into(),
        })
        .unwrap();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_drop.take() {
            if let Ok(mut c) = PgConnection::establish(&admin) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c);
            }
        }
    }
}

/// The URL of the test PostgreSQL server's admin database and a connection to it; `None`
/// (with a loud line) when PostgreSQL is not available outside CI, a panic under `CI`.
pub fn postgres_admin() -> Option<(String, PgConnection)> {
    if std::env::var("LIVEPET_TEST_POSTGRES").as_deref() == Ok("off") {
        return skip_postgres("LIVEPET_TEST_POSTGRES=off");
    }
    let admin = std::env::var("LIVEPET_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    match PgConnection::establish(&admin) {
        Ok(c) => Some((admin, c)),
        Err(e) => skip_postgres(&format!("cannot connect to {admin}: {e}")),
    }
}

/// Skips a PostgreSQL test with a loud line, or fails it under `CI`.
pub fn skip_postgres<T>(why: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("PostgreSQL is required under CI but unavailable: {why}");
    }
    report(&format!("SKIPPED(postgres): {why}"));
    None
}

/// An in-process server on port 0 with a database of its own, and the clients a test talks
/// to it with: every in-process test starts with one.
pub struct TestApp {
    // Before `db`, so it is dropped first: the server lets go of the database before the
    // database is deleted.
    server: Application,
    pub db: TestDb,
    /// Where this server writes mail without SMTP (a folder of its own, unless the test chose).
    mail_dir: PathBuf,
    _mail_tmp: tempfile::TempDir,
}

impl TestApp {
    /// A server on a fresh database of `backend` with the test defaults; `None` only when
    /// PostgreSQL is unavailable outside CI (see [`TestDb::new`]).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, |_| {}).await
    }

    /// Like [`spawn`](Self::spawn), with the test defaults changed by `configure`.
    pub async fn spawn_with(
        backend: Backend,
        configure: impl FnOnce(&mut ServeArgs),
    ) -> Option<TestApp> {
        Some(TestApp::spawn_on(TestDb::new(backend)?, configure).await)
    }

    /// A server on a fresh SQLite database with the test defaults.
    pub async fn sqlite() -> TestApp {
        TestApp::spawn_on(TestDb::sqlite(), |_| {}).await
    }

    /// Like [`sqlite`](Self::sqlite), with the test defaults changed by `configure`.
    pub async fn sqlite_with(configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
        TestApp::spawn_on(TestDb::sqlite(), configure).await
    }

    /// A server on a database the test prepared (seeded, or left by an earlier server).
    pub async fn spawn_on(db: TestDb, configure: impl FnOnce(&mut ServeArgs)) -> TestApp {
        let mut args = ServeArgs::for_tests(db.url.clone());
        let mail_tmp = tempfile::tempdir().unwrap();
        args.mail_dir = Some(mail_tmp.path().to_owned());
        configure(&mut args);
        let mail_dir = args.mail_config().dir;
        let server = Application::build(args).await.unwrap();
        TestApp {
            server,
            db,
            mail_dir,
            _mail_tmp: mail_tmp,
        }
    }

    /// The port of the separate /metrics address, when `metrics_bind` was set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.server.metrics_port()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    /// A new browser: no cookie yet.
    pub fn client(&self) -> Client {
        Client::new(&self.base())
    }

    /// A new browser, signed up (and so logged in) as `email`.
    pub async fn signed_up(&self, email: &str) -> Client {
        let mut client = self.client();
        client.sign_up(email).await;
        client
    }

    /// A new owner of a pet named `pet_name`, on its page (see [`Viewer`]).
    pub async fn viewer(&self, email: &str, pet_name: &str) -> Viewer {
        Viewer::sign_up(&self.base(), email, pet_name).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        scrape(&self.base()).await
    }

    pub fn world(&self) -> &Arc<World> {
        self.server.world()
    }

    /// The server's operations (its mailer, its links, …), to drive one step directly.
    pub fn services(&self) -> &Services {
        self.server.services()
    }

    /// The folder this server writes `.eml` files to when it has no SMTP server.
    pub fn mail_dir(&self) -> &Path {
        &self.mail_dir
    }

    /// How many stored pets were brought to life at startup.
    pub fn started_pets(&self) -> usize {
        self.server.started_pets()
    }

    /// Writes every changed pet now; returns how many rows that wrote.
    pub async fn flush(&self) -> usize {
        self.server.flush().await.unwrap().rows
    }

    /// A graceful stop (which must succeed); hands back the database for checks or for the
    /// next server.
    pub async fn shutdown(self) -> TestDb {
        self.server.shutdown().await.unwrap();
        self.db
    }
}

/// Writes a line straight to stderr, past the test harness's output capture, so skips and
/// measured figures show in the CI log even when the test passes.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Waits until `check` returns `Some`, polling an observable (metric, registry, channel)
/// every few milliseconds; panics with `what` after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads one metric's value from Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The Prometheus text of `<base>/metrics`.
async fn scrape(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

// Reading the binary's metrics: only these tests do, so it lives here rather than in the
// process module the browser tests share.
impl ServerProcess {
    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        scrape(&self.base).await
    }

    /// Polls `/metrics` until `name` satisfies `ok`.
    pub async fn wait_metric(
        &self,
        name: &str,
        timeout: Duration,
        ok: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = metric(&self.metrics().await, name) {
                if ok(v) {
                    return v;
                }
            }
            assert!(Instant::now() < deadline, "metric {name} never got there");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
