//! Installs the tools the web build needs, each only when missing or at the wrong version,
//! so the first `cargo xtask run` pays for them once and later runs start at once.
//!
//! Versions are pinned because the pieces must agree: the wasm-bindgen CLI must equal the
//! `wasm-bindgen` crate in Cargo.lock byte for byte, trunk 0.22 needs a newer rustc than
//! ours, and only binaryen from npm (132) writes wasm that loads; Debian's (108) does not.

use crate::proc::{self, step};
use anyhow::{bail, Context as _, Result};
use std::ffi::OsString;
use std::path::PathBuf;

pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
pub const TRUNK_VERSION: &str = "0.21.14";
/// The npm package that provides a working `wasm-opt`; Trunk.toml pins `version_132` to match.
pub const BINARYEN_NPM: &str = "binaryen@132.0.0";
const BINARYEN_VERSION_TEXT: &str = "version 132";

/// Everything `trunk build` needs, ready; `path` is the PATH to run trunk with.
pub struct WebTools {
    pub path: OsString,
}

/// Ensures the wasm target, trunk, wasm-bindgen and wasm-opt, installing what is missing.
pub fn ensure_web_tools() -> Result<WebTools> {
    ensure_wasm_target()?;
    let cargo_bin = proc::cargo_bin_dir();
    // Tools we install land in cargo's bin folder, which is not always on PATH (a fresh
    // container, a CI shell): put it first so we find what we just installed.
    let base_path = proc::path_with(&cargo_bin.iter().cloned().collect::<Vec<_>>())?;
    ensure_trunk(&base_path)?;
    ensure_wasm_bindgen(&base_path)?;
    let binaryen_bin = ensure_wasm_opt()?;
    let mut dirs = vec![binaryen_bin];
    dirs.extend(cargo_bin);
    Ok(WebTools {
        path: proc::path_with(&dirs)?,
    })
}

/// `rustup target add wasm32-unknown-unknown`, unless it is already installed.
pub fn ensure_wasm_target() -> Result<()> {
    let mut list = proc::command("rustup");
    list.args(["target", "list", "--installed"]);
    let installed = proc::probe(list).with_context(|| {
        format!("`rustup target list --installed` failed: is rustup installed? The web app needs the {WASM_TARGET} target")
    })?;
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    step(format!("installing the Rust target {WASM_TARGET} (once)"));
    proc::run(proc::command("rustup").args(["target", "add", WASM_TARGET]))
}

fn ensure_trunk(path: &OsString) -> Result<()> {
    let mut version = proc::command("trunk");
    version.arg("--version").env("PATH", path);
    let found = proc::probe(version);
    let wanted = format!("trunk {TRUNK_VERSION}");
    if found.as_deref().map(str::trim) == Some(wanted.as_str()) {
        return Ok(());
    }
    step(format!(
        "installing trunk {TRUNK_VERSION} (about 6 min, once){}",
        found
            .map(|v| format!("; found `{}` instead", v.trim()))
            .unwrap_or_default()
    ));
    proc::run(proc::cargo().args(["install", "trunk", "--version", TRUNK_VERSION, "--locked"]))
}

fn ensure_wasm_bindgen(path: &OsString) -> Result<()> {
    let lock_path = proc::root().join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("reading {}", lock_path.display()))?;
    let wanted = lockfile_version(&lock, "wasm-bindgen").with_context(|| {
        format!(
            "{} has no `wasm-bindgen` package: is the web app (frontend/) in the workspace?",
            lock_path.display()
        )
    })?;
    let mut version = proc::command("wasm-bindgen");
    version.arg("--version").env("PATH", path);
    let found = proc::probe(version);
    // `wasm-bindgen 0.2.130` (newer CLIs may append a commit hash in parentheses).
    if found
        .as_deref()
        .and_then(|v| v.split_whitespace().nth(1))
        .is_some_and(|v| v == wanted)
    {
        return Ok(());
    }
    step(format!(
        "installing wasm-bindgen-cli {wanted} to match Cargo.lock (about 2 min, once){}",
        found
            .map(|v| format!("; found `{}` instead", v.trim()))
            .unwrap_or_default()
    ));
    // No --locked on purpose: the CLI's own lock file names a webpki-roots version that
    // crates.io no longer has, so a locked install cannot resolve.
    proc::run(
        proc::cargo()
            .args(["install", "wasm-bindgen-cli", "--version"])
            .arg(&wanted),
    )
}

/// Installs npm's binaryen into target/tools/binaryen unless it is there; returns the folder
/// holding its `wasm-opt`.
fn ensure_wasm_opt() -> Result<PathBuf> {
    let prefix = proc::target_dir().join("tools").join("binaryen");
    let bin = prefix.join("node_modules").join(".bin");
    let wasm_opt = bin.join("wasm-opt");
    let mut version = proc::command(&wasm_opt);
    version.arg("--version");
    if proc::probe(version).is_some_and(|v| v.contains(BINARYEN_VERSION_TEXT)) {
        return Ok(bin);
    }
    step(format!(
        "installing wasm-opt ({BINARYEN_NPM} from npm) into {} (once)",
        prefix.display()
    ));
    std::fs::create_dir_all(&prefix).with_context(|| format!("creating {}", prefix.display()))?;
    proc::run(
        proc::command("npm")
            .arg("install")
            .arg("--prefix")
            .arg(&prefix)
            .args(["--no-audit", "--no-fund", BINARYEN_NPM]),
    )
    .context("installing binaryen with npm (is Node.js with npm installed?)")?;
    let mut version = proc::command(&wasm_opt);
    version.arg("--version");
    match proc::probe(version) {
        Some(v) if v.contains(BINARYEN_VERSION_TEXT) => Ok(bin),
        Some(v) => bail!(
            "{} reports `{}`, expected {BINARYEN_VERSION_TEXT}",
            wasm_opt.display(),
            v.trim()
        ),
        None => bail!("{} does not run after installing", wasm_opt.display()),
    }
}

/// The version of package `name` in a Cargo.lock, if it appears once or more (the first).
pub fn lockfile_version(lock: &str, name: &str) -> Option<String> {
    // A tiny reader for `[[package]]` blocks, enough for Cargo.lock's fixed layout; it keeps
    // xtask free of a TOML parser.
    let mut in_package = false;
    let mut current_name: Option<&str> = None;
    for line in lock.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[[package]]";
            current_name = None;
            continue;
        }
        if !in_package {
            continue;
        }
        if let Some(v) = toml_string(line, "name") {
            current_name = Some(v);
        } else if let Some(v) = toml_string(line, "version") {
            if current_name == Some(name) {
                return Some(v.to_owned());
            }
        }
    }
    None
}

/// `key = "value"` → `value`.
fn toml_string<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?;
    rest.trim().strip_prefix('"')?.strip_suffix('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4

[[package]]
name = "wasm-bindgen-backend"
version = "0.2.99"

[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = [
 "cfg-if",
]

[[package]]
name = "zzz"
version = "1.0.0"
"#;

    #[test]
    fn finds_the_exact_package_in_cargo_lock() {
        assert_eq!(
            lockfile_version(LOCK, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(
            lockfile_version(LOCK, "wasm-bindgen-backend").as_deref(),
            Some("0.2.99")
        );
        assert_eq!(lockfile_version(LOCK, "wasm"), None);
    }

    #[test]
    fn reads_the_real_lock_file() {
        let lock = std::fs::read_to_string(proc::root().join("Cargo.lock"));
        let version = lock.ok().and_then(|l| lockfile_version(&l, "wasm-bindgen"));
        assert!(version.is_some_and(|v| v.starts_with("0.")));
    }
}
