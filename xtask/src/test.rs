//! `cargo xtask test`: everything CI checks, in the order that fails fastest: formatting,
//! lints, schema.rs against the migrations, the browser build of the web app, then every
//! test against SQLite and PostgreSQL.

use crate::proc::{self, step};
use crate::{browser, pgcheck, schema, tools};
use anyhow::{anyhow, bail, Context as _, Result};
use std::io::{BufRead as _, BufReader, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Instant;

/// What the test helpers print when they skip a PostgreSQL test for want of a server.
const SKIP_MARKER: &str = "SKIPPED(postgres)";

pub fn test() -> Result<()> {
    let began = Instant::now();
    let ci = is_ci();

    step("formatting (cargo fmt --check)");
    let mut fmt = proc::cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    if !proc::run_status(&mut fmt)?.success() {
        bail!("formatting differs (see above): run `cargo fmt --all`");
    }

    step("lints (cargo clippy, warnings are errors)");
    proc::run(proc::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;

    schema::check()?;

    step("web app compiles for the browser (wasm32)");
    tools::ensure_wasm_target()?;
    proc::run(proc::cargo().args(["check", "-p", "livepet-web", "--target", tools::WASM_TARGET]))?;

    step("PostgreSQL for the tests");
    let pg = postgres_env(ci)?;

    // The browser suites: the web app built as users get it, its component tests in
    // headless Chromium, and what the end-to-end tests need to find.
    step("Chromium and chromedriver for the browser tests");
    let browsers = match browser::ensure_chromium() {
        Ok(b) => Some(b),
        Err(e) if ci => return Err(e.context("CI must run the browser tests")),
        Err(e) => {
            let line = "!".repeat(78);
            println!("{line}\n!!! {e:#}\n!!! BROWSER TESTS WILL BE SKIPPED (CI never skips them).\n{line}");
            None
        }
    };
    let dist = browser::build_frontend()?;
    let mut browser_env = Vec::new();
    if let Some(b) = &browsers {
        browser::component_tests(b)?;
        browser_env = browser::e2e_env(b, &dist);
    }

    step("tests (cargo test --workspace)");
    let mut cmd = proc::cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"]);
    for (key, value) in &pg {
        cmd.env(key, value);
    }
    for (key, value) in &browser_env {
        cmd.env(key, value);
    }
    let (status, lines) = run_teed(&mut cmd)?;
    let summary = Summary::from_lines(&lines);
    let postgres_off = pg.iter().any(|(k, _)| *k == "LIVEPET_TEST_POSTGRES");
    summary.print(postgres_off);

    proc::check(&cmd, status).context("some tests failed (see above)")?;
    if ci && summary.skipped_postgres > 0 {
        bail!(
            "{} PostgreSQL test(s) were skipped, but CI must run them all",
            summary.skipped_postgres
        );
    }

    later_suites()?;

    println!(
        "==> all checks passed in {:.0} s{}",
        began.elapsed().as_secs_f64(),
        if postgres_off {
            " (PostgreSQL tests SKIPPED)"
        } else {
            ""
        }
    );
    Ok(())
}

/// The extension point for suites that come after the unit and integration tests: the
/// browser/end-to-end tests (chromium + chromedriver) and `cargo xtask bench --quick`.
/// Each should print its own `==> ` step line and return an error on failure.
fn later_suites() -> Result<()> {
    crate::fuzz::fuzz_briefly()?;
    crate::bench::bench(crate::bench::BenchArgs::quick())?;
    Ok(())
}

/// CI=true (or any value but empty, "0" or "false") means "nothing may be skipped".
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Finds the PostgreSQL server and returns the variables that tell the tests about it.
fn postgres_env(ci: bool) -> Result<Vec<(&'static str, String)>> {
    let url = pgcheck::test_url();
    match pgcheck::check_reachable(&url) {
        Ok(()) => {
            println!("    using {url}");
            Ok(vec![("LIVEPET_TEST_POSTGRES_URL", url)])
        }
        Err(e) if ci => Err(e.context(format!(
            "PostgreSQL is required under CI but {url} is not usable \
             (set LIVEPET_TEST_POSTGRES_URL to a server the tests may create databases on)"
        ))),
        Err(e) => {
            let line = "!".repeat(78);
            println!("{line}");
            println!("!!! PostgreSQL at {url} is not usable: {e:#}");
            println!("!!! PostgreSQL TESTS WILL BE SKIPPED. Start a server or set");
            println!("!!! LIVEPET_TEST_POSTGRES_URL to run them (CI never skips them).");
            println!("{line}");
            Ok(vec![("LIVEPET_TEST_POSTGRES", "off".to_owned())])
        }
    }
}

/// Runs `cmd`, copying its stdout and stderr to ours as they come, and returns every line.
fn run_teed(cmd: &mut Command) -> Result<(ExitStatus, Vec<String>)> {
    println!("    $ {}", proc::display(cmd));
    let _ = std::io::stdout().flush();
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = proc::spawn(cmd)?;
    let out = child.stdout.take().context("child stdout was not piped")?;
    let err = child.stderr.take().context("child stderr was not piped")?;
    let out = thread::spawn(move || tee(out, std::io::stdout()));
    let err = thread::spawn(move || tee(err, std::io::stderr()));
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{}`", proc::display(cmd)))?;
    let mut lines = out
        .join()
        .map_err(|_| anyhow!("the stdout copier panicked"))??;
    lines.extend(
        err.join()
            .map_err(|_| anyhow!("the stderr copier panicked"))??,
    );
    Ok((status, lines))
}

fn tee(from: impl Read, mut to: impl Write) -> Result<Vec<String>> {
    let mut reader = BufReader::new(from);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Bytes, not String: a test may print invalid UTF-8 and must not stop the copy.
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(lines);
        }
        to.write_all(&buf)?;
        to.flush()?;
        lines.push(String::from_utf8_lossy(&buf).trim_end().to_owned());
    }
}

/// Counts read off `cargo test` output.
#[derive(Debug, Default, PartialEq)]
struct Summary {
    passed: u64,
    failed: u64,
    ignored: u64,
    sqlite_passed: u64,
    postgres_passed: u64,
    skipped_postgres: u64,
}

impl Summary {
    fn from_lines(lines: &[String]) -> Summary {
        let mut s = Summary::default();
        for line in lines {
            if line.contains(SKIP_MARKER) {
                s.skipped_postgres += 1;
            }
            if let Some(rest) = line.trim_start().strip_prefix("test result:") {
                // `ok. 7 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; …`
                let words: Vec<&str> = rest.split_whitespace().collect();
                for pair in words.windows(2) {
                    let Ok(n) = pair[0].parse::<u64>() else {
                        continue;
                    };
                    match pair[1].trim_end_matches([';', ',', '.']) {
                        "passed" => s.passed += n,
                        "failed" => s.failed += n,
                        "ignored" => s.ignored += n,
                        _ => {}
                    }
                }
            } else if let Some(name) = line
                .strip_prefix("test ")
                .and_then(|l| l.strip_suffix(" ... ok"))
            {
                let name = name.to_ascii_lowercase();
                if name.contains("sqlite") {
                    s.sqlite_passed += 1;
                }
                if name.contains("postgres") {
                    s.postgres_passed += 1;
                }
            }
        }
        s
    }

    fn print(&self, postgres_off: bool) {
        println!(
            "==> SQLite tests passed: {}, PostgreSQL tests passed: {}",
            self.sqlite_passed, self.postgres_passed
        );
        if postgres_off {
            println!(
                "==> !!! PostgreSQL was OFF: the PostgreSQL tests counted above skipped \
                 themselves and checked nothing"
            );
        }
        if self.skipped_postgres > 0 {
            // Only markers written past libtest's capture (straight to stderr) show up here.
            println!(
                "==> !!! {} test(s) reported {SKIP_MARKER}",
                self.skipped_postgres
            );
        }
        // The last line in the plain `N passed, N failed` shape that test-report readers know.
        println!(
            "xtask: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.ignored
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_results_and_counts_database_tests() {
        let out = "\
running 3 tests
test persistence::round_trip_sqlite ... ok
test persistence::round_trip_postgres ... ok
test persistence::Death_Is_Written_Postgres ... FAILED
test rules::hunger_caps ... ok
test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
SKIPPED(postgres): persistence::other_postgres
test result: ok. 5 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 1.20s
";
        let lines: Vec<String> = out.lines().map(str::to_owned).collect();
        assert_eq!(
            Summary::from_lines(&lines),
            Summary {
                passed: 7,
                failed: 1,
                ignored: 2,
                sqlite_passed: 1,
                postgres_passed: 1,
                skipped_postgres: 1,
            }
        );
    }
}
