//! Small helpers around `std::process::Command`: where the workspace is, which `cargo` to
//! call, step banners, and running a child with its output going straight to the terminal.

use anyhow::{bail, Context as _, Result};
use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The workspace root (the folder holding the root Cargo.toml and Trunk.toml): the parent of
/// xtask/.
pub fn root() -> PathBuf {
    // `cargo run` tells us at run time where xtask/ is. Prefer that to the path baked in at
    // compile time: a binary shared through one target dir may come from another checkout.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    match manifest_dir.parent() {
        Some(parent) => parent.to_path_buf(),
        None => manifest_dir,
    }
}

/// Cargo's target directory (CARGO_TARGET_DIR if set, else `<root>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// A `cargo` command run from the workspace root.
pub fn cargo() -> Command {
    // `cargo run` sets CARGO to the cargo that started us: the same toolchain as the build.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root());
    cmd
}

/// Any other program, run from the workspace root.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    cmd
}

/// Prints a `==> what` banner, flushed so it lands before the child's output.
pub fn step(what: impl std::fmt::Display) {
    println!("==> {what}");
    let _ = std::io::stdout().flush();
}

/// A command as the user would type it, for messages.
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    if let Some(name) = Path::new(&s).file_name() {
        // CARGO is usually a full toolchain path; `cargo` reads better and means the same.
        s = name.to_string_lossy().into_owned();
    }
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains([' ', '\'', '"']) {
            s.push_str(&format!(" '{arg}'"));
        } else {
            s.push(' ');
            s.push_str(&arg);
        }
    }
    s
}

/// Starts `cmd`, turning "not found" into a message that names what is missing.
pub fn spawn(cmd: &mut Command) -> Result<std::process::Child> {
    cmd.spawn().map_err(|e| {
        let program = cmd.get_program().to_string_lossy().into_owned();
        // A missing working folder is reported as "not found" too; say which it is.
        if let Some(dir) = cmd.get_current_dir().filter(|d| !d.is_dir()) {
            anyhow::anyhow!(
                "cannot run `{}`: its working folder {} does not exist",
                display(cmd),
                dir.display()
            )
        } else if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "`{program}` was not found on PATH (needed for `{}`)",
                display(cmd)
            )
        } else {
            anyhow::anyhow!("could not start `{}`: {e}", display(cmd))
        }
    })
}

/// Runs `cmd` with inherited stdio and returns how it exited; fails only if it cannot run.
pub fn run_status(cmd: &mut Command) -> Result<ExitStatus> {
    println!("    $ {}", display(cmd));
    let _ = std::io::stdout().flush();
    spawn(cmd)?
        .wait()
        .with_context(|| format!("waiting for `{}`", display(cmd)))
}

/// Runs `cmd` with inherited stdio and fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = run_status(cmd)?;
    check(cmd, status)
}

/// Fails with the command line and exit status unless `status` is success.
pub fn check(cmd: &Command, status: ExitStatus) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    match status.code() {
        Some(code) => bail!("`{}` failed with exit code {code}", display(cmd)),
        None => bail!("`{}` was killed by a signal ({status})", display(cmd)),
    }
}

/// Runs `cmd` quietly and returns its stdout, or `None` if it cannot run or fails. For
/// probes like `trunk --version`, where "absent" and "broken" both mean "install it".
pub fn probe(mut cmd: Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// PATH with `dirs` in front, so tools we installed win over anything else found first
/// (above all a Debian wasm-opt, which produces broken wasm).
pub fn path_with(dirs: &[PathBuf]) -> Result<OsString> {
    let mut all: Vec<PathBuf> = dirs.to_vec();
    if let Some(path) = std::env::var_os("PATH") {
        all.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(all).context("a tool folder contains a character PATH cannot hold")
}

/// Where `cargo install` puts binaries.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home).join("bin"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cargo").join("bin"))
}
