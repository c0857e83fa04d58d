//! Browser-test support: finding the built web app and the browser, the real `livepet`
//! binary serving it (restartable at the same address), chromedriver on a port it picks, one
//! fresh Chromium profile per browser session, and waiting on DOM conditions (polled, with
//! timeouts, never sleeps).

use crate::process::ServerProcess;
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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

/// The real `livepet serve` with the web app; it can be stopped and started again at the
/// same address, as a browser that is already open expects.
pub struct Server {
    process: ServerProcess,
    pub base: String,
    database_url: String,
    flags: Vec<String>,
    /// Canaries sent so far (see `assert_no_csp_violations`).
    csp_checks: u32,
}

impl Server {
    /// Starts `livepet serve` on a port the OS picks, with the database at `database_url`,
    /// serving `env.dist`, plus `extra` flags; returns once it listens.
    pub async fn start(env: &Env, database_url: &str, extra: &[&str]) -> Server {
        let mut flags: Vec<String> = vec![
            "--static-dir".into(),
            env.dist.display().to_string(),
            "--auth-attempts-per-minute".into(),
            "1000".into(),
            "--shutdown-timeout-s".into(),
            "2".into(),
        ];
        flags.extend(extra.iter().map(|s| s.to_string()));
        let process = ServerProcess::start(database_url, &as_strs(&flags)).await;
        Server {
            base: process.base.clone(),
            process,
            database_url: database_url.into(),
            flags,
            csp_checks: 0,
        }
    }

    /// SIGTERM (the server flushes every pet), then waits for a clean exit.
    pub async fn stop(&mut self) {
        self.process.stop().await;
    }

    /// Fails if any page has broken the Content-Security-Policy. Each browser first adds a
    /// script from a made-up address, which the policy must block: its report is the sign
    /// that every report sent before it has arrived, and then the only violations in the
    /// log may be these canaries.
    pub async fn assert_no_csp_violations(&mut self, browsers: &[&Browser]) {
        for b in browsers {
            // Reports name a foreign script by its origin only, and a page reports the same
            // violation once: each check gets a host of its own.
            self.csp_checks += 1;
            let canary = format!("https://{}-{}.csp-canary.invalid", b.name, self.csp_checks);
            let blocked = b
                .client
                .execute_async(CSP_CANARY, vec![json!(format!("{canary}/canary.js"))])
                .await
                .unwrap();
            assert_eq!(
                blocked,
                json!(true),
                "{}: the policy let a foreign script in",
                b.name
            );
            self.process.wait_line(&canary, STEP).await;
        }
        let violations: Vec<String> = self
            .process
            .log()
            .lines()
            .filter(|l| l.contains("content security policy violation"))
            .filter(|l| !l.contains(".csp-canary.invalid"))
            .map(str::to_string)
            .collect();
        assert!(
            violations.is_empty(),
            "the web app broke its Content-Security-Policy:\n{}",
            violations.join("\n")
        );
    }

    /// Everything the server logged so far (for failure messages).
    #[allow(dead_code)] // only the cluster test prints it
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Starts it again after `stop`, with the same flags: same port, same database.
    pub async fn start_again(&mut self) {
        let port = self.process.addr.port();
        self.process =
            ServerProcess::start_on(port, &self.database_url, &as_strs(&self.flags)).await;
    }
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// chromedriver on a port it picks, in its own process group so the browsers it starts go
/// down with it even when a test panics.
pub struct ChromeDriver {
    child: Child,
    pub url: String,
    chromium: PathBuf,
}

/// What chromedriver prints once it listens, followed by its port.
const DRIVER_LISTENING: &str = "started successfully on port ";

impl ChromeDriver {
    pub fn start(env: &Env) -> ChromeDriver {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new(&env.chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", env.chromedriver.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Read to the end, so chromedriver never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, port)) = line.split_once(DRIVER_LISTENING) {
                    let _ = tx.send(port.trim_end_matches('.').trim().to_string());
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("chromedriver did not say it listens: {e}"));
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

/// Adds `<script src=arguments[0]>` and answers whether the policy refused it: true on the
/// page's `securitypolicyviolation` event for it, false if none came within 5 s.
const CSP_CANARY: &str = r#"
const [src, done] = arguments;
document.addEventListener('securitypolicyviolation', (e) => {
  if (e.blockedURI.startsWith(src.split('/canary.js')[0])) done(true);
});
const s = document.createElement('script');
s.src = src;
document.head.appendChild(s);
setTimeout(() => done(false), 5000);
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
    pub async fn wait_until(&self, what: &str, ok: impl FnMut(&PageState) -> bool) -> PageState {
        self.poll(what, READ_STATE, vec![], STEP, ok).await
    }

    /// Runs `script` (with `args`) on the page until what it returns satisfies `ok`, for at
    /// most `limit`; on timeout saves a screenshot and fails with the last result.
    pub async fn poll<T: serde::de::DeserializeOwned + std::fmt::Debug>(
        &self,
        what: &str,
        script: &str,
        args: Vec<serde_json::Value>,
        limit: Duration,
        mut ok: impl FnMut(&T) -> bool,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.client.execute(script, args.clone()).await.unwrap();
            let seen: T = serde_json::from_value(v).unwrap();
            if ok(&seen) {
                return seen;
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("FAILED-{}", self.name)).await;
                panic!(
                    "{}: timed out after {limit:?} waiting until {what}; last seen: {seen:?}",
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
