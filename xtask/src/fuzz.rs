//! A short fuzzing pass over the shared decoders, so CI keeps the fuzz targets building and
//! catches the easy crashes. Longer runs are by hand: `cd fuzz && cargo fuzz run client_frame`.

use crate::proc::{self, step};
use anyhow::{bail, Context as _, Result};
use std::process::Stdio;

/// The targets in fuzz/Cargo.toml.
const TARGETS: [&str; 3] = ["client_frame", "server_frame", "api_bodies"];
/// Seconds each target runs in CI.
const SECONDS_EACH: u32 = 20;

pub fn fuzz_briefly() -> Result<()> {
    step(format!(
        "fuzzing the shared decoders ({SECONDS_EACH} s per target)"
    ));
    ensure_cargo_fuzz()?;
    let mut total = 0u64;
    for target in TARGETS {
        let mut cmd = proc::cargo();
        cmd.current_dir(proc::root().join("fuzz"))
            // No sanitizer: stable Rust cannot build them; coverage guidance still works.
            .args(["fuzz", "run", target, "-s", "none", "--"])
            .arg(format!("-max_total_time={SECONDS_EACH}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        println!("    $ {}", proc::display(&cmd));
        let out = cmd
            .output()
            .with_context(|| format!("running `{}`", proc::display(&cmd)))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            println!("{text}");
            bail!("fuzz target {target} found a failure (see above; input saved under fuzz/artifacts)");
        }
        let runs = executions(&text).unwrap_or(0);
        total += runs;
        println!("    {target}: {runs} executions, no failure");
    }
    println!(
        "==> fuzz: {total} executions over {} targets",
        TARGETS.len()
    );
    Ok(())
}

/// Reads libFuzzer's closing `Done N runs in S second(s)` line.
fn executions(output: &str) -> Option<u64> {
    output
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Done "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn ensure_cargo_fuzz() -> Result<()> {
    let mut probe = proc::cargo();
    probe.args(["fuzz", "--version"]);
    if proc::probe(probe).is_some() {
        return Ok(());
    }
    step("installing cargo-fuzz (about 2 min, once)");
    proc::run(proc::cargo().args(["install", "cargo-fuzz", "--locked"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_execution_count() {
        let out = "#2000\tDONE   cov: 190\nDone 123456 runs in 20 second(s)\n";
        assert_eq!(executions(out), Some(123456));
        assert_eq!(executions("nothing"), None);
    }
}
