//! The frontend rows: the size of the release wasm in frontend/dist (raw and gzipped), and
//! first contentful paint in headless Chromium on localhost, read from the browser's own
//! Paint Timing entry through chromedriver (plain WebDriver over HTTP).

use crate::bench::{self, Ctx};
use crate::bench_sys::{self, Proc};
use crate::proc;
use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

#[derive(Debug, Clone, Default)]
pub struct Web {
    /// (file name, raw bytes, gzip -9 bytes)
    pub wasm: Option<(String, u64, u64)>,
    pub wasm_note: Option<String>,
    /// First contentful paint of each cold load, ms from navigation start.
    pub paint_ms: Vec<f64>,
    pub paint_note: Option<String>,
}

impl Web {
    pub fn json(&self) -> Value {
        json!({"wasm": self.wasm, "wasm_note": self.wasm_note, "paint_ms": self.paint_ms, "paint_note": self.paint_note})
    }

    pub fn rows(&self, target_gz: f64, target_paint_ms: f64) -> String {
        let mut t = String::new();
        match (&self.wasm, &self.wasm_note) {
            (Some((name, raw, gz)), _) => t.push_str(&format!(
                "| frontend: release wasm (`frontend/dist/{name}`) | | {:.0} KB raw, **{:.0} KB gzipped** (gzip -9) | | | ≤ 250 KB gzipped | {} |\n",
                *raw as f64 / 1e3,
                *gz as f64 / 1e3,
                if (*gz as f64) <= target_gz {
                    "**met**".to_string()
                } else {
                    format!("**missed** by {:.0} KB", (*gz as f64 - target_gz) / 1e3)
                }
            )),
            (None, note) => t.push_str(&format!(
                "| frontend: release wasm | | skipped: {} | | | ≤ 250 KB gzipped | not measured |\n",
                note.clone().unwrap_or_default()
            )),
        }
        if self.paint_ms.is_empty() {
            t.push_str(&format!(
                "| frontend: first paint, headless Chromium, localhost | | skipped: {} | | | ≤ 1 s | not measured |\n",
                self.paint_note.clone().unwrap_or_default()
            ));
        } else {
            let mut v = self.paint_ms.clone();
            v.sort_by(f64::total_cmp);
            let median = v[v.len() / 2];
            let max = v[v.len() - 1];
            t.push_str(&format!(
                "| frontend: first contentful paint, headless Chromium, localhost, cold profile | {} loads | median {median:.0} ms, max {max:.0} ms | | | ≤ 1 s | {} |\n",
                v.len(),
                if max <= target_paint_ms {
                    "**met**".to_string()
                } else {
                    format!("**missed** by {:.0} ms (worst load)", max - target_paint_ms)
                }
            ));
        }
        t
    }
}

pub fn measure(ctx: &Ctx) -> Result<Web> {
    let mut web = Web::default();
    let dist = proc::root().join("frontend").join("dist");
    let wasm: Option<PathBuf> = std::fs::read_dir(&dist).ok().and_then(|d| {
        d.filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "wasm"))
    });
    match &wasm {
        Some(path) => {
            let raw = std::fs::metadata(path)?.len();
            let gz = gzip_size(path)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            println!("    {name}: {raw} bytes, {gz} gzipped");
            web.wasm = Some((name, raw, gz));
        }
        None => {
            web.wasm_note = Some(format!(
                "no {}/*.wasm: build it with `cargo xtask run`",
                dist.display()
            ))
        }
    }
    if !dist.join("index.html").is_file() {
        web.paint_note = Some("no frontend/dist/index.html".into());
        return Ok(web);
    }
    let driver = which("chromedriver");
    if driver.is_none() || !std::path::Path::new(CHROMIUM).exists() {
        web.paint_note = Some(format!(
            "needs {CHROMIUM} and chromedriver (apt-get install chromium chromium-driver)"
        ));
        return Ok(web);
    }
    match first_paints(ctx, &dist, driver.unwrap_or_default()) {
        Ok(v) => web.paint_ms = v,
        Err(e) => {
            // A browser that cannot run here is a skipped row, not a broken benchmark.
            println!("    first paint not measured: {e:#}");
            web.paint_note = Some(format!("could not measure: {e:#}"));
        }
    }
    Ok(web)
}

fn gzip_size(path: &std::path::Path) -> Result<u64> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .stderr(Stdio::null())
        .output()
        .context("running gzip")?;
    if !out.status.success() {
        bail!("gzip failed on {}", path.display());
    }
    Ok(out.stdout.len() as u64)
}

fn which(name: &str) -> Option<PathBuf> {
    bench_sys::output(Command::new("sh").args(["-c", &format!("command -v {name}")]))
        .map(PathBuf::from)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn first_paints(ctx: &Ctx, dist: &std::path::Path, driver: PathBuf) -> Result<Vec<f64>> {
    let db = format!("sqlite://{}", ctx.dir.join("web.db").display());
    let dist = dist.display().to_string();
    let server = bench::serve(ctx, &db, "web", &["--static-dir", &dist])?;
    let port = free_port()?;
    let mut cmd = Command::new(driver);
    cmd.arg(format!("--port={port}"));
    let mut chromedriver = Proc::spawn("chromedriver", &cmd, &ctx.dir.join("chromedriver.log"))?;
    let wd = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, body)) = bench_sys::http("GET", &wd, "/status", None) {
            if body.contains("\"ready\":true") {
                break;
            }
        }
        chromedriver.check_alive()?;
        if Instant::now() > deadline {
            bail!("chromedriver did not get ready");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("http://{}/", server.addr);
    let mut out = Vec::new();
    for i in 0..ctx.plan.paint_runs {
        let profile = ctx.dir.join(format!("chromium-profile-{i}"));
        out.push(one_paint(&wd, &url, &profile)?);
        println!("    first contentful paint {:.0} ms", out[out.len() - 1]);
    }
    chromedriver.kill();
    drop(server);
    Ok(out)
}

fn wd_call(wd: &str, method: &str, path: &str, body: Value) -> Result<Value> {
    let (status, text) = bench_sys::http(method, wd, path, Some(&body.to_string()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("WebDriver said: {text}"))?;
    if status != 200 {
        bail!(
            "WebDriver {method} {path} answered {status}: {}",
            v["value"]["message"]
        );
    }
    Ok(v["value"].clone())
}

fn one_paint(wd: &str, url: &str, profile: &std::path::Path) -> Result<f64> {
    // TOOLCHAIN.md's flags; a fresh profile each time, so nothing is cached.
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,800",
    ];
    let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let session = wd_call(
        wd,
        "POST",
        "/session",
        json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}),
    )?;
    let id = session["sessionId"]
        .as_str()
        .context("WebDriver gave no session id")?
        .to_owned();
    let result = (|| {
        wd_call(
            wd,
            "POST",
            &format!("/session/{id}/url"),
            json!({"url": url}),
        )?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = wd_call(
                wd,
                "POST",
                &format!("/session/{id}/execute/sync"),
                json!({"script": "const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null;", "args": []}),
            )?;
            if let Some(ms) = v.as_f64() {
                return Ok(ms);
            }
            if Instant::now() > deadline {
                bail!("no first-contentful-paint entry within 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })();
    let _ = wd_call(wd, "DELETE", &format!("/session/{id}"), json!({}));
    result
}
