//! The browser side of `cargo xtask`: building the web app with trunk, Chromium and
//! chromedriver for the browser tests, the web app's component tests in headless Chromium
//! (wasm-bindgen-test), and what the end-to-end tests (backend/tests/e2e) need to find.

use crate::proc::{self, step};
use crate::tools;
use anyhow::{bail, Context as _, Result};
use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where trunk writes the web app (Trunk.toml's `dist`), relative to the workspace root.
pub const DIST: &str = "frontend/dist";
/// The budget from DESIGN.md for the web app's module, gzipped (250 KB, counted in thousands
/// as BENCHMARKS.md counts it).
pub const WASM_GZIP_BUDGET: u64 = 250_000;
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The browser and its driver, ready.
#[derive(Debug, Clone)]
pub struct Browsers {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// Chromium and chromedriver from CHROMIUM / CHROMEDRIVER or Debian's paths, when both
/// are there.
pub fn find_chromium() -> Option<Browsers> {
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let found = Browsers {
        chromium: pick("CHROMIUM", CHROMIUM),
        chromedriver: pick("CHROMEDRIVER", CHROMEDRIVER),
    };
    (found.chromium.is_file() && found.chromedriver.is_file()).then_some(found)
}

/// Chromium and chromedriver, installed with apt-get when missing and we are root;
/// otherwise an error that says what to install.
pub fn ensure_chromium() -> Result<Browsers> {
    if let Some(found) = find_chromium() {
        return Ok(found);
    }
    let is_root = proc::probe({
        let mut id = proc::command("id");
        id.arg("-u");
        id
    })
    .is_some_and(|uid| uid.trim() == "0");
    if !is_root {
        bail!(
            "the browser tests need Chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER}); \
             install them with `sudo apt-get install -y chromium chromium-driver` (or point \
             CHROMIUM and CHROMEDRIVER at your own)"
        );
    }
    step("installing Chromium and chromedriver (apt-get, once)");
    let install = || {
        proc::run(
            proc::command("apt-get")
                .args([
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "chromium",
                    "chromium-driver",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    };
    if install().is_err() {
        // A fresh container has no package lists yet.
        proc::run(
            proc::command("apt-get")
                .arg("update")
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
        install()?;
    }
    find_chromium().with_context(|| {
        format!("apt-get finished but {CHROMIUM} or {CHROMEDRIVER} is still missing")
    })
}

/// Builds the web app into frontend/dist (trunk, release, offline) and reports the size of
/// its WASM module. Returns the dist folder.
pub fn build_frontend() -> Result<PathBuf> {
    step("checking tools (wasm32 target, trunk, wasm-bindgen, wasm-opt)");
    let web = tools::ensure_web_tools()?;
    // trunk runs with --offline so a tool mismatch fails here instead of trying a download
    // that cannot work on our machines; that also makes its cargo offline, so fetch first.
    step("fetching crates");
    proc::run(proc::cargo().arg("fetch"))?;
    step(format!(
        "building the web app into {DIST} (trunk build --release)"
    ));
    proc::run(
        proc::command("trunk")
            // frontend/index.html picks the wasm-release profile for release builds.
            .args(["build", "--release", "--offline"])
            .env("PATH", &web.path),
    )?;
    let dist = proc::root().join(DIST);
    report_wasm_size(&dist)?;
    Ok(dist)
}

/// Prints the size of every .wasm in `dist`, raw and gzipped (-9), against the budget.
pub fn report_wasm_size(dist: &Path) -> Result<()> {
    if !dist.join("index.html").is_file() {
        bail!(
            "{} has no index.html: the web app is not built",
            dist.display()
        );
    }
    let mut found = false;
    for entry in std::fs::read_dir(dist).with_context(|| format!("listing {}", dist.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        found = true;
        let raw = std::fs::metadata(&path)?.len();
        let gz = gzipped_size(&path)?;
        println!(
            "    {} {} KB raw, {} KB gzipped (budget {} KB){}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            raw / 1000,
            gz / 1000,
            WASM_GZIP_BUDGET / 1000,
            if gz > WASM_GZIP_BUDGET {
                "  !!! OVER BUDGET"
            } else {
                ""
            }
        );
    }
    if !found {
        bail!("{} has no .wasm file", dist.display());
    }
    Ok(())
}

/// `gzip -9 -c file | wc -c`, without a compression crate in xtask.
fn gzipped_size(path: &Path) -> Result<u64> {
    let mut child = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
        .context("running gzip to measure the web app")?;
    let mut out = child.stdout.take().context("gzip stdout")?;
    let mut total = 0u64;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = out.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("gzip failed on {}", path.display());
    }
    Ok(total)
}

/// The web app's component tests (frontend/tests/components.rs) in headless Chromium, run
/// by the wasm-bindgen-test-runner that `ensure_web_tools` installs with the wasm-bindgen
/// CLI at Cargo.lock's version.
pub fn component_tests(browsers: &Browsers) -> Result<()> {
    let web = tools::ensure_web_tools()?;
    step("web app component tests in headless Chromium (wasm-bindgen-test)");
    proc::run(
        proc::cargo()
            .args([
                "test",
                "-p",
                "livepet-web",
                "--target",
                tools::WASM_TARGET,
                "--test",
                "components",
            ])
            .env("PATH", &web.path)
            .env(
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                "wasm-bindgen-test-runner",
            )
            .env("CHROMEDRIVER", &browsers.chromedriver)
            // Debug builds of a Leptos app load slowly on a busy 2-core box.
            .env("WASM_BINDGEN_TEST_TIMEOUT", "120"),
    )
}

/// Environment for `cargo test` so the end-to-end browser tests (backend/tests/e2e) find
/// the browser and the built web app.
pub fn e2e_env(browsers: &Browsers, dist: &Path) -> Vec<(&'static str, OsString)> {
    vec![
        ("CHROMIUM", browsers.chromium.clone().into_os_string()),
        (
            "CHROMEDRIVER",
            browsers.chromedriver.clone().into_os_string(),
        ),
        ("LIVEPET_E2E_DIST", dist.as_os_str().to_os_string()),
    ]
}
