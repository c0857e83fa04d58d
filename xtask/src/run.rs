//! `cargo xtask run`: tools and the web app build (shared with `cargo xtask test`), then
//! `livepet serve` on the fresh build (`--nodes N`: several, in run_cluster.rs).

use crate::proc::{self, step};
use anyhow::{Context as _, Result};
use clap::Args;
use std::process::Command;

const DEFAULT_BIND: &str = "127.0.0.1:8080";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Build the server without optimisations: compiles sooner, runs far slower. The web app
    /// is always an optimised build.
    #[arg(long)]
    debug: bool,

    /// Run N nodes as one world (default 1: a single `livepet serve`, as always). With N > 1:
    /// PostgreSQL from DATABASE_URL (default postgres://postgres@127.0.0.1:5432/livepet,
    /// created if missing; SQLite cannot be shared), the nats-server answering at
    /// 127.0.0.1:4222 or LIVEPET_NATS_URL, else one started for the run on a free port, and
    /// nodes node1..nodeN on consecutive ports from 8080 (or from the port of `--bind`). It
    /// prints each node's URLs once its /readyz answers 200; Ctrl-C stops every node
    /// gracefully (each hands its pets off and flushes), then the nats-server it started.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=32))]
    nodes: u16,

    /// Arguments for `livepet serve`, after `--` (see `cargo run -p livepet-server -- serve
    /// --help`), e.g. `-- --bind 127.0.0.1:9000 --tick-ms 1000`.
    #[arg(last = true, value_name = "SERVE_ARGS")]
    serve_args: Vec<String>,
}

pub fn run(args: RunArgs) -> Result<()> {
    if args.nodes > 1 {
        return crate::run_cluster::run(args.nodes, args.debug, args.serve_args);
    }
    crate::browser::build_frontend()?;

    let url = serve_url(
        &args.serve_args,
        std::env::var("LIVEPET_BIND").ok().as_deref(),
    );
    step(format!(
        "starting livepet serve ({} build); it will serve {url} once built and loaded; Ctrl-C stops it",
        if args.debug { "debug" } else { "release" }
    ));
    let mut cmd = proc::cargo();
    cmd.arg("run");
    if !args.debug {
        cmd.arg("--release");
    }
    cmd.args(["-p", "livepet-server", "--bin", "livepet", "--", "serve"]);
    if !has_flag(&args.serve_args, "--static-dir") {
        cmd.args(["--static-dir", crate::browser::DIST]);
    }
    cmd.args(&args.serve_args);
    println!("    $ {}", proc::display(&cmd));
    exec(cmd)
}

/// Replaces this process with the server, so Ctrl-C and SIGTERM reach it directly and it
/// can flush its pets before exiting, and its exit code becomes ours.
#[cfg(unix)]
fn exec(mut cmd: Command) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let err = cmd.exec();
    Err(err).with_context(|| format!("could not start `{}`", proc::display(&cmd)))
}

#[cfg(not(unix))]
fn exec(mut cmd: Command) -> Result<()> {
    let status = proc::spawn(&mut cmd)?.wait()?;
    proc::check(&cmd, status)
}

/// Whether `flag` appears as `--flag value` or `--flag=value`.
fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter()
        .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
}

/// The URL `livepet serve` will answer on: the last `--bind` in its arguments, else
/// LIVEPET_BIND, else the default. A wildcard host is shown as loopback, which is what a
/// browser on this machine should open.
pub fn serve_url(serve_args: &[String], env_bind: Option<&str>) -> String {
    let mut bind = None;
    let mut iter = serve_args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--bind" {
            bind = iter.next().map(String::as_str);
        } else if let Some(value) = arg.strip_prefix("--bind=") {
            bind = Some(value);
        }
    }
    let bind = bind
        .or(env_bind.filter(|b| !b.is_empty()))
        .unwrap_or(DEFAULT_BIND);
    let (host, port) = match bind.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => (bind, "8080"),
    };
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" => "[::1]",
        other => other,
    };
    if port == "0" {
        return format!("http://{host}:<a free port: see the log line `listening on`>");
    }
    format!("http://{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn serve_url_prefers_the_flag_then_the_env_then_the_default() {
        assert_eq!(serve_url(&[], None), "http://127.0.0.1:8080");
        assert_eq!(
            serve_url(&[], Some("0.0.0.0:9000")),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            serve_url(&args(&["--bind", "127.0.0.1:18181"]), Some("0.0.0.0:9000")),
            "http://127.0.0.1:18181"
        );
        assert_eq!(
            serve_url(&args(&["--tick-ms", "5", "--bind=[::]:81"]), None),
            "http://[::1]:81"
        );
        assert!(serve_url(&args(&["--bind", "127.0.0.1:0"]), None).contains("free port"));
    }

    #[test]
    fn finds_flags_in_both_spellings() {
        assert!(has_flag(&args(&["--static-dir", "x"]), "--static-dir"));
        assert!(has_flag(&args(&["--static-dir=x"]), "--static-dir"));
        assert!(!has_flag(&args(&["--static-directory"]), "--static-dir"));
    }
}
