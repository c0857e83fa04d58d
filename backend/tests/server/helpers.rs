//! Test support: a database per test (SQLite temp file or a fresh PostgreSQL database that
//! is dropped afterwards), in-process apps on port 0, the real binary, and waiting on events.

#![allow(dead_code, clippy::unwrap_used)]

use diesel::pg::PgConnection;
use diesel::prelude::*;
use livepet_server::config::{DbArgs, SeedArgs, ServeArgs};
use livepet_server::db::{self, DbUrl};
use livepet_server::startup::Application;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
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
    (blocking $scenario:ident) => {
        mod $scenario {
            #[test]
            fn sqlite() {
                super::$scenario($crate::helpers::Backend::Sqlite);
            }

            #[test]
            fn postgres() {
                super::$scenario($crate::helpers::Backend::Postgres);
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
    pub url: DbUrl,
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

    pub fn postgres() -> Option<TestDb> {
        if std::env::var("LIVEPET_TEST_POSTGRES").as_deref() == Ok("off") {
            return skip_postgres("LIVEPET_TEST_POSTGRES=off");
        }
        let admin = std::env::var("LIVEPET_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = match PgConnection::establish(&admin) {
            Ok(c) => c,
            Err(e) => return skip_postgres(&format!("cannot connect to {admin}: {e}")),
        };
        let name = format!(
            "livepet_test_{}_{}",
            std::process::id(),
            rand::random::<u32>()
        );
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        let raw = format!("{base}/{name}");
        Some(TestDb {
            url: raw.parse().unwrap(),
            raw_url: raw,
            _dir: None,
            pg_drop: Some((admin, name)),
        })
    }

    pub fn raw_url(&self) -> &str {
        &self.raw_url
    }

    /// For PostgreSQL: the server's address, and this database's URL via `host:port` instead.
    pub fn via(&self, port: u16) -> (std::net::SocketAddr, String) {
        let (scheme, rest) = self.raw_url.split_once("://").unwrap();
        let (creds, rest) = rest.split_once('@').unwrap();
        let (hostport, db) = rest.split_once('/').unwrap();
        let hostport = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:5432")
        };
        let hostport = hostport.replace("localhost", "127.0.0.1");
        (
            hostport.parse().unwrap(),
            format!("{scheme}://{creds}@127.0.0.1:{port}/{db}"),
        )
    }

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

    pub fn serve_args(&self) -> ServeArgs {
        ServeArgs::for_tests(self.url.clone())
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

fn skip_postgres(why: &str) -> Option<TestDb> {
    if std::env::var_os("CI").is_some() {
        panic!("PostgreSQL is required under CI but unavailable: {why}");
    }
    report(&format!("SKIPPED(postgres): {why}"));
    None
}

/// Writes a line straight to stderr, past the test harness's output capture, so skips and
/// measured figures show in the CI log even when the test passes.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Starts an in-process server.
pub async fn spawn_app(args: ServeArgs) -> Application {
    Application::build(args).await.unwrap()
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

/// The real `livepet` binary, started with a log we can wait on.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
    lines: Arc<Mutex<Vec<String>>>,
    rx: mpsc::Receiver<String>,
}

pub fn livepet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_livepet"));
    c.env("RUST_LOG", "info").env_remove("DATABASE_URL");
    c
}

impl ServerProcess {
    /// Starts `livepet serve` on port 0 with `extra` flags and waits until it listens.
    pub fn start(db: &TestDb, extra: &[&str]) -> ServerProcess {
        ServerProcess::start_url(db.raw_url(), extra)
    }

    /// Starts `livepet serve` against any database URL (e.g. through a proxy).
    pub fn start_url(url: &str, extra: &[&str]) -> ServerProcess {
        let mut child = livepet()
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", url])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let keep = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut p = ServerProcess {
            child,
            base: String::new(),
            lines,
            rx,
        };
        let line = p.wait_line("listening on", Duration::from_secs(60));
        let addr = line.split("listening on ").nth(1).unwrap().trim();
        p.base = addr.to_string();
        p
    }

    /// Waits for a log line containing `needle` (the event itself, not a sleep).
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "no log line with `{needle}` within {timeout:?}; log so far:\n{}",
                    self.log()
                ),
            }
        }
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn get(&self, path: &str) -> RawResponse {
        raw_http(&self.base, "GET", path, None)
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> RawResponse {
        raw_http(&self.base, "POST", path, Some(&body.to_string()))
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").body
    }

    /// Polls /metrics until `name` satisfies `ok`.
    pub fn wait_metric(&self, name: &str, timeout: Duration, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = metric(&self.metrics(), name) {
                if ok(v) {
                    return v;
                }
            }
            assert!(Instant::now() < deadline, "metric {name} never got there");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response read by [`raw_http`].
pub struct RawResponse {
    pub status: u16,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A minimal blocking HTTP/1.1 exchange over std's TcpStream. Usable from synchronous and
/// asynchronous tests alike (a blocking client with its own runtime is not).
pub fn raw_http(base: &str, method: &str, path: &str, body: Option<&str>) -> RawResponse {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    RawResponse { status, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
