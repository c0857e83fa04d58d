//! Browser-test support: finding the built web app and the browser, the real `livepet`
//! binary on a chosen port, chromedriver on a free port, one fresh Chromium profile per
//! browser session, and waiting on DOM conditions (polled, with timeouts, never sleeps).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use serde_json::json;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any one thing in the browser may take before the test fails.
pub const STEP: Duration = Duration::from_secs(20);
/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(40);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("backend/ sits in the workspace")
        .to_path_buf()
}

/// Where screenshots go: `<root>/target/e2e/`.
pub fn shots_dir() -> PathBuf {
    root().join("target").join("e2e")
}

/// What a browser test needs from the machine.
pub struct Env {
    pub dist: PathBuf,
    pub chromedriver: PathBuf,
    pub chromium: PathBuf,
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

impl Env {
    /// Finds the built web app, chromedriver and Chromium. When one is missing the test is
    /// skipped with a loud `SKIPPED(e2e)` line, except under `CI`, where it fails.
    pub fn find(test: &str) -> Option<Env> {
        let dist = std::env::var_os("LIVEPET_E2E_DIST")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("frontend").join("dist"));
        let chromedriver = std::env::var_os("CHROMEDRIVER")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
        let chromium = std::env::var_os("CHROMIUM")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
        let missing = if !dist.join("index.html").is_file() {
            Some(format!(
                "the web app is not built: {} has no index.html (run `cargo xtask run` or \
                 `trunk build --release`, or set LIVEPET_E2E_DIST)",
                dist.display()
            ))
        } else if !chromedriver.is_file() {
            Some(format!(
                "chromedriver not found at {} (apt-get install -y chromium chromium-driver, \
                 or set CHROMEDRIVER)",
                chromedriver.display()
            ))
        } else if !chromium.is_file() {
            Some(format!(
                "Chromium not found at {} (apt-get install -y chromium chromium-driver, or set \
                 CHROMIUM)",
                chromium.display()
            ))
        } else {
            None
        };
        match missing {
            None => Some(Env {
                dist,
                chromedriver,
                chromium,
            }),
            Some(why) if ci() => panic!("browser tests must run under CI, but {why}"),
            Some(why) => {
                // Straight to stderr, past libtest's capture, so the skip is seen (and counted).
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr(), "SKIPPED(e2e): {test}: {why}");
                None
            }
        }
    }
}

/// A port that was free a moment ago (the OS picks it; we release it for the child).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `livepet serve`, on a fixed port so a restart comes back at the same address.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub base: String,
    args: Vec<String>,
    lines: Arc<Mutex<Vec<String>>>,
    rx: Option<mpsc::Receiver<String>>,
}

impl Server {
    /// Starts `livepet serve` on `port` with the database at `db_url`, serving `env.dist`,
    /// plus `extra` flags; returns once it logs that it listens.
    pub fn start(env: &Env, port: u16, db_url: &str, extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--bind".into(),
            format!("127.0.0.1:{port}"),
            "--database-url".into(),
            db_url.into(),
            "--static-dir".into(),
            env.dist.display().to_string(),
            "--auth-attempts-per-minute".into(),
            "1000".into(),
            "--shutdown-timeout-s".into(),
            "2".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = Server {
            child: None,
            port,
            base: format!("http://127.0.0.1:{port}"),
            args,
            lines: Arc::new(Mutex::new(Vec::new())),
            rx: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_livepet"))
            .args(&self.args)
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting livepet");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let keep = self.lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        self.rx = Some(rx);
        self.wait_line("listening on", Duration::from_secs(60));
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let rx = self.rx.as_ref().expect("server running");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "no log line with `{needle}` within {timeout:?}; log:\n{}",
                    self.log()
                ),
            }
        }
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM (the server flushes every pet), then waits for it to exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "server exited with {status}; log:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again after `stop`, with the same flags: same port, same database.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// chromedriver on a free port, in its own process group so the browsers it starts go down
/// with it even when a test panics.
pub struct ChromeDriver {
    child: Child,
    pub url: String,
    chromium: PathBuf,
}

impl ChromeDriver {
    pub fn start(env: &Env) -> ChromeDriver {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let child = Command::new(&env.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", env.chromedriver.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium: env.chromium.clone(),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group (chromedriver and the browsers it started). Spelled `-s KILL --
        // -PGID` on purpose: Debian's procps-ng 4.0.2 reads `kill -KILL -1234` as
        // kill(-1, SIGKILL), which kills every process the user may signal.
        let pgid = self.child.id();
        assert!(pgid > 1, "chromedriver's process group id is {pgid}");
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.child.wait();
    }
}

/// What a page shows, read in one round trip.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageState {
    pub path: String,
    pub age: Option<u32>,
    pub hunger: Option<u32>,
    pub hearts: Option<u32>,
    pub conn: Option<String>,
    pub dead: bool,
    pub feed: bool,
    pub active_list: bool,
    /// The "Give treat" buttons: (pet id, text, disabled).
    pub treats: Vec<(i64, String, bool)>,
}

impl PageState {
    pub fn treat_button(&self, pet: i64) -> Option<&(i64, String, bool)> {
        self.treats.iter().find(|t| t.0 == pet)
    }
}

const READ_STATE: &str = r#"
const q = s => document.querySelector(s);
const t = s => { const e = q(s); return e ? e.textContent.trim() : null; };
const n = s => { const v = t(s); return v === null || v === '' ? null : Number(v); };
const h = q('[data-testid=hearts]');
return {
  path: location.pathname,
  age: n('[data-testid=age]'),
  hunger: n('[data-testid=hunger]'),
  hearts: h ? Number(h.getAttribute('data-hearts')) : null,
  conn: t('[data-testid=conn-status]'),
  dead: !!q('[data-testid=pet-dead]'),
  feed: !!q('[data-testid=feed]'),
  active_list: !!q('[data-testid=active-pets]'),
  treats: [...document.querySelectorAll('[data-testid^="give-treat-"]')].map(b =>
    [Number(b.getAttribute('data-testid').slice('give-treat-'.length)), b.textContent.trim(), b.disabled]),
};
"#;

/// One browser session with a fresh profile (its own cookies): one user.
pub struct Browser {
    pub client: Client,
    pub name: &'static str,
    pub base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn open(driver: &ChromeDriver, name: &'static str, base: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": driver.chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1280,900",
                ],
            },
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("{name}: could not start a Chromium session: {e}"));
        Browser {
            client,
            name,
            base: base.to_string(),
            _profile: profile,
        }
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// Waits for an element to appear.
    pub async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(STEP)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                self.screenshot(&format!("FAILED-{}-missing-element", self.name))
                    .await;
                panic!(
                    "{}: no `{css}` within {STEP:?} ({e}); page state: {:?}",
                    self.name,
                    self.state().await
                )
            }
        }
    }

    pub async fn click(&self, css: &str) {
        self.element(css).await.click().await.unwrap();
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        self.element(css).await.send_keys(text).await.unwrap();
    }

    pub async fn state(&self) -> PageState {
        let v = self.client.execute(READ_STATE, vec![]).await.unwrap();
        serde_json::from_value(v).unwrap()
    }

    /// Polls the page until `ok` holds; on timeout saves a screenshot and fails with the
    /// last state seen.
    pub async fn wait_until(
        &self,
        what: &str,
        mut ok: impl FnMut(&PageState) -> bool,
    ) -> PageState {
        let deadline = Instant::now() + STEP;
        loop {
            let state = self.state().await;
            if ok(&state) {
                return state;
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("FAILED-{}", self.name)).await;
                panic!(
                    "{}: timed out after {STEP:?} waiting until {what}; last state: {state:?}",
                    self.name
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Saves a PNG of the page under target/e2e/.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = shots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Signs up through the form and lands on "Your pets".
    pub async fn sign_up(&self, email: &str) {
        self.goto("/signup").await;
        self.type_into("[data-testid=email]", email).await;
        self.type_into("[data-testid=password]", "correct horse battery staple")
            .await;
        self.click("[data-testid=submit]").await;
        self.element("[data-testid=new-pet]").await;
        self.wait_until("the pet list is shown", |s| s.path == "/pets")
            .await;
    }

    /// Adopts a pet through the form and lands on its page; returns its id.
    pub async fn adopt(&self, name: &str, species: &str) -> i64 {
        self.click("[data-testid=new-pet]").await;
        self.type_into("[data-testid=pet-name-input]", name).await;
        self.click(&format!("[data-testid=species-{species}]"))
            .await;
        self.click("[data-testid=save-pet]").await;
        let state = self
            .wait_until("the new pet's page is live", |s| {
                s.path.starts_with("/pets/")
                    && s.age.is_some()
                    && s.conn.as_deref() == Some("connected")
            })
            .await;
        state
            .path
            .trim_start_matches("/pets/")
            .parse()
            .expect("a pet id in the URL")
    }
}

/// Polls an async check until it returns `Some`; fails after `STEP`.
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(POLL).await;
    }
}
