//! `cargo xtask bench`: builds the release binaries, runs every measure in a fresh process
//! on a fresh database, and writes BENCHMARKS.md: the machine, the command, and one table
//! with the project's figures, the floor's (a bare actix actor, measured in the same run),
//! their ratio and DESIGN.md's targets.
//!
//! Measures: idle (startup, memory, tick CPU and graceful stop at each N), floor (the same
//! for bare actors), persist (a full flush on SQLite and PostgreSQL with tick latency during
//! it), viewers (WebSocket load at M viewers with N pets), storm (viewers measured while many
//! more connect at once), limits (a server with a low open-file limit: how the excess is
//! refused), active (every viewer's pet active: bytes per session and CPU), http
//! (GET /api/pets/{id}), web (wasm size and first paint), cluster (3 nodes: viewers of pets
//! on other nodes, then `kill -9` of one node and SIGTERM of another). The connection
//! measures live in bench_conn.rs, the cluster in bench_cluster.rs. `--quick` shrinks
//! everything to keep the harness honest in CI.

use crate::bench_report::{self, Results};
use crate::bench_sys::{self, now_ms, CpuMeter, Machine, Metrics, PgDb, Proc};
use crate::proc::{self, step};
use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const MEASURES: [&str; 10] = [
    "idle", "floor", "persist", "viewers", "storm", "limits", "active", "http", "web", "cluster",
];

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Small N and M and short windows (under two minutes once built): keeps the harness
    /// from rotting in CI. Writes target/bench/quick/BENCHMARKS.md, not the repository's.
    #[arg(long)]
    pub quick: bool,
    /// The largest pet count (also used for persist, viewers and http). Default 1,000,000.
    #[arg(long)]
    pub pets: Option<u64>,
    /// The largest viewer count. Default 10,000.
    #[arg(long)]
    pub viewers: Option<usize>,
    /// Run only these measures (comma-separated): idle, floor, persist, viewers, storm,
    /// limits, active, http, web, cluster.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Pets of the cluster measure (3 nodes on this box, PostgreSQL and a nats-server of
    /// its own). Default 100,000.
    #[arg(long)]
    pub cluster_pets: Option<u64>,
    /// Viewers of the cluster measure, a third on each node. Default 300.
    #[arg(long)]
    pub cluster_viewers: Option<usize>,
    /// Viewers of the storm measure that connect at once while 1,000 others are measured.
    /// Default 10,000, lowered to what the open-file hard limit allows both processes.
    #[arg(long)]
    pub storm: Option<usize>,
    /// Use the release binaries already in target/release instead of building them first
    /// (the report says so).
    #[arg(long)]
    pub no_build: bool,
    /// Where to write the report (default: BENCHMARKS.md for a full run, else under
    /// target/bench/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seconds of each CPU window (default 60; 5 with --quick).
    #[arg(long)]
    pub cpu_window_s: Option<f64>,
}

impl BenchArgs {
    /// `--quick` and nothing else: what `cargo xtask test` runs so the harness cannot rot.
    pub fn quick() -> BenchArgs {
        BenchArgs {
            quick: true,
            pets: None,
            viewers: None,
            only: Vec::new(),
            out: None,
            cpu_window_s: None,
            storm: None,
            no_build: false,
            cluster_pets: None,
            cluster_viewers: None,
        }
    }
}

/// Sizes and durations of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub pet_sizes: Vec<u64>,
    pub pets: u64,
    pub viewer_sizes: Vec<usize>,
    pub cpu_window_s: f64,
    pub tick_ms: u64,
    pub viewer_window_s: f64,
    pub persist_viewers: usize,
    pub http_window_s: f64,
    pub paint_runs: usize,
    /// Storm: the viewers measured, the ones connecting at once, when (seconds into the
    /// window) and the window.
    pub storm_base: usize,
    pub storm: usize,
    pub storm_at_s: f64,
    pub storm_window_s: f64,
    /// Limits: viewers against a server whose open-file limit is `limits_nofile`.
    pub limits_viewers: usize,
    pub limits_nofile: u64,
    pub limits_pets: u64,
    pub limits_window_s: f64,
    /// Active: viewers, each making its own pet active.
    pub active_viewers: usize,
    /// Seconds a viewer may take to connect and get its first frame before it counts as failed.
    pub connect_timeout_s: f64,
    /// Cluster: pets, viewers (a third per node), the steady window, and the window the
    /// viewers on the surviving node watch through `kill -9` and SIGTERM.
    pub cluster_pets: u64,
    pub cluster_viewers: usize,
    pub cluster_window_s: f64,
    pub cluster_fault_window_s: f64,
}

impl Plan {
    pub fn new(args: &BenchArgs) -> Plan {
        let quick = args.quick;
        let pets = args.pets.unwrap_or(if quick { 20_000 } else { 1_000_000 });
        let viewers = args.viewers.unwrap_or(if quick { 50 } else { 10_000 });
        // A quick run measures one size of each: it checks the harness, not the scaling.
        let mut pet_sizes = if quick {
            vec![pets]
        } else {
            vec![pets.min(100_000), pets]
        };
        pet_sizes.dedup();
        let mut viewer_sizes = if quick {
            vec![viewers]
        } else {
            vec![viewers.min(1_000), viewers]
        };
        viewer_sizes.dedup();
        Plan {
            quick,
            pet_sizes,
            pets,
            viewer_sizes,
            cpu_window_s: args.cpu_window_s.unwrap_or(if quick { 3.0 } else { 60.0 }),
            // The design's tick. With 10,000 viewers it yields 2,000 samples a second.
            tick_ms: if quick { 1_000 } else { 5_000 },
            viewer_window_s: if quick { 4.0 } else { 60.0 },
            persist_viewers: viewers.min(if quick { 20 } else { 1_000 }),
            http_window_s: if quick { 3.0 } else { 30.0 },
            paint_runs: if quick { 1 } else { 5 },
            storm_base: if quick { 20 } else { 1_000 },
            storm: args.storm.unwrap_or(if quick { 100 } else { 10_000 }),
            storm_at_s: if quick { 2.0 } else { 10.0 },
            storm_window_s: if quick { 6.0 } else { 60.0 },
            limits_viewers: if quick { 300 } else { 1_500 },
            limits_nofile: if quick { 256 } else { 1_024 },
            limits_pets: pets.min(if quick { 1_000 } else { 10_000 }),
            limits_window_s: if quick { 3.0 } else { 20.0 },
            active_viewers: viewers,
            connect_timeout_s: 10.0,
            cluster_pets: args
                .cluster_pets
                .unwrap_or(if quick { 5_000 } else { 100_000 }),
            cluster_viewers: args.cluster_viewers.unwrap_or(if quick { 30 } else { 300 }),
            cluster_window_s: if quick { 4.0 } else { 60.0 },
            cluster_fault_window_s: if quick { 30.0 } else { 60.0 },
        }
    }
}

/// Paths and binaries shared by the measures.
pub struct Ctx {
    pub plan: Plan,
    pub dir: PathBuf,
    pub livepet: PathBuf,
    pub load: PathBuf,
    pub floor: PathBuf,
    pub pg_admin: Option<String>,
    pub pg_note: Option<String>,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    for m in &args.only {
        if !MEASURES.contains(&m.as_str()) {
            bail!(
                "unknown measure `{m}` in --only; pick from {}",
                MEASURES.join(", ")
            );
        }
    }
    let plan = Plan::new(&args);
    let began = Instant::now();
    let command = std::iter::once("cargo xtask bench".to_string())
        .chain(std::env::args().skip(2))
        .collect::<Vec<_>>()
        .join(" ");
    let run_name = if plan.quick {
        "quick".to_string()
    } else {
        format!("run-{}", now_ms())
    };
    let dir = proc::target_dir().join("bench").join(run_name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let out = args.out.clone().unwrap_or_else(|| {
        if plan.quick || !args.only.is_empty() {
            dir.join("BENCHMARKS.md")
        } else {
            proc::root().join("BENCHMARKS.md")
        }
    });

    let bin = proc::target_dir().join("release");
    if !args.no_build {
        step(format!(
            "cargo xtask bench{}: building the release binaries (livepet, livepet-load, livepet-floor)",
            if plan.quick { " --quick" } else { "" }
        ));
        proc::run(proc::cargo().args(["build", "--release", "-p", "livepet-server", "--bins"]))?;
    }
    let (pg_admin, pg_note) = postgres();
    let ctx = Ctx {
        plan: plan.clone(),
        dir: dir.clone(),
        livepet: bin.join("livepet"),
        load: bin.join("livepet-load"),
        floor: bin.join("livepet-floor"),
        pg_admin,
        pg_note,
    };
    let machine = Machine::describe();
    let mut results = Results::new(&plan, &machine, &command);
    if args.no_build {
        let built = |name: &str| {
            bench_sys::output(Command::new("date").args([
                "-u",
                "+%Y-%m-%d %H:%M UTC",
                "-r",
                &bin.join(name).display().to_string(),
            ]))
            .unwrap_or_else(|| "?".into())
        };
        results.notes.push(format!(
            "--no-build: the binaries were not rebuilt for this run (livepet built {}, livepet-load {}), so the commit above may not be what ran",
            built("livepet"),
            built("livepet-load")
        ));
    }
    let wanted = |m: &str| args.only.is_empty() || args.only.iter().any(|o| o == m);

    if wanted("idle") {
        for &n in &plan.pet_sizes {
            step(format!(
                "idle world: startup, memory and tick CPU at {n} pets"
            ));
            results.idle.push((n, idle_world(&ctx, n)?));
        }
    }
    if wanted("floor") {
        for &n in &plan.pet_sizes {
            step(format!("floor: {n} bare actix actors"));
            results.floor.push((n, floor(&ctx, n)?));
        }
    }
    if wanted("persist") {
        step(format!(
            "persist: full flush of {} pets on SQLite",
            plan.pets
        ));
        results.persist_sqlite = Some(persist(&ctx, None)?);
        match &ctx.pg_admin {
            Some(admin) => {
                step(format!(
                    "persist: full flush of {} pets on PostgreSQL",
                    plan.pets
                ));
                results.persist_pg = Some(persist(&ctx, Some(admin))?);
            }
            None => results.notes.push(format!(
                "persist on PostgreSQL skipped: {}",
                ctx.pg_note.clone().unwrap_or_default()
            )),
        }
    }
    if wanted("viewers") {
        for &m in &plan.viewer_sizes {
            step(format!(
                "viewers: {m} WebSocket viewers with {} pets",
                plan.pets
            ));
            results.viewers.push((m, viewers(&ctx, m)?));
        }
    }
    if wanted("storm") {
        let (m, note) = crate::bench_conn::storm_size(&plan);
        if let Some(note) = note {
            results.notes.push(note);
        }
        step(format!(
            "storm: {m} viewers connect at once while {} are measured, {} pets",
            plan.storm_base, plan.pets
        ));
        results.storm = Some(crate::bench_conn::storm(&ctx, m)?);
    }
    if wanted("limits") {
        for hard_too in [false, true] {
            step(format!(
                "limits: {} viewers, server started with {} open-file limit {}",
                plan.limits_viewers,
                if hard_too { "soft and hard" } else { "soft" },
                plan.limits_nofile
            ));
            results
                .limits
                .push(crate::bench_conn::limits(&ctx, hard_too)?);
        }
    }
    if wanted("active") {
        step(format!(
            "active: {} viewers each making its pet active, {} pets",
            plan.active_viewers, plan.pets
        ));
        results.active = Some(crate::bench_conn::active(&ctx)?);
    }
    if wanted("http") {
        step("http: GET /api/pets/{id}, 64 keep-alive clients");
        results.http = Some(http(&ctx)?);
    }
    if wanted("web") {
        step("web: wasm size and first paint");
        results.web = Some(crate::bench_web::measure(&ctx)?);
    }
    if wanted("cluster") {
        match crate::bench_cluster::cannot_run(&ctx) {
            Some(why) => results.notes.push(format!("cluster skipped: {why}")),
            None => {
                step(format!(
                    "cluster: 3 nodes, {} pets, {} viewers; then kill -9 of one node and SIGTERM of another",
                    plan.cluster_pets, plan.cluster_viewers
                ));
                results.cluster = Some(crate::bench_cluster::measure(&ctx)?);
            }
        }
    }
    results.seconds = began.elapsed().as_secs_f64();
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results.json())?,
    )?;
    let text = bench_report::render(&results, &out)?;
    std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    println!("{}", bench_report::table_only(&text));
    step(format!(
        "wrote {} in {:.0} s (logs and raw results in {})",
        out.display(),
        results.seconds,
        dir.display()
    ));
    results.check_harness()
}

/// The PostgreSQL server for the persist measure, if one answers.
fn postgres() -> (Option<String>, Option<String>) {
    let url = std::env::var("LIVEPET_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("LIVEPET_TEST_POSTGRES_URL"))
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| crate::pgcheck::DEFAULT_URL.to_owned());
    if bench_sys::output(Command::new("psql").arg("--version")).is_none() {
        return (None, Some("psql is not installed".into()));
    }
    match crate::pgcheck::check_reachable(&url) {
        Ok(()) => (Some(url), None),
        Err(e) => (None, Some(format!("{url} is not usable: {e:#}"))),
    }
}

/// A fresh SQLite database path for one measure.
pub fn sqlite_url(ctx: &Ctx, tag: &str) -> String {
    format!("sqlite://{}", ctx.dir.join(format!("{tag}.db")).display())
}

/// `livepet seed --pets n`; returns seconds.
pub fn seed(ctx: &Ctx, db_url: &str, n: u64, tag: &str) -> Result<f64> {
    let t = Instant::now();
    let mut cmd = Command::new(&ctx.livepet);
    cmd.args(["seed", "--pets", &n.to_string(), "--database-url", db_url])
        .env("RUST_LOG", "warn");
    let mut p = Proc::spawn(
        "livepet seed",
        &cmd,
        &ctx.dir.join(format!("{tag}-seed.log")),
    )?;
    let status = p.child.wait()?;
    if !status.success() {
        bail!("livepet seed failed ({status}); {}", p.tail());
    }
    Ok(t.elapsed().as_secs_f64())
}

/// A running `livepet serve` and its address.
pub struct Server {
    pub proc: Proc,
    pub addr: String,
}

/// How long to wait for a world of `n` pets to load, start or tick once: generous, and
/// growing with N (10M pets: 1,600 s).
pub fn startup_timeout(n: u64) -> Duration {
    Duration::from_secs(600 + n / 10_000)
}

/// How long a graceful stop of `n` pets may take before the harness kills the server: the
/// server's own 30 s shutdown timeout plus a final flush (10M pets: 620 s).
fn stop_timeout(n: u64) -> Duration {
    Duration::from_secs(120 + n / 20_000)
}

/// Starts `livepet serve` on a free port and waits until it listens.
pub fn serve(ctx: &Ctx, db_url: &str, tag: &str, extra: &[&str]) -> Result<Server> {
    serve_with(ctx, db_url, tag, extra, None)
}

/// [`serve`], with the open-files limit set by the shell command `nofile` (e.g.
/// `ulimit -Sn 1024`) instead of raised to the hard limit.
pub fn serve_with(
    ctx: &Ctx,
    db_url: &str,
    tag: &str,
    extra: &[&str],
    nofile: Option<&str>,
) -> Result<Server> {
    serve_at(ctx, db_url, tag, ctx.plan.tick_ms, extra, nofile)
}

/// [`serve_with`] at a tick of `tick_ms`.
pub fn serve_at(
    ctx: &Ctx,
    db_url: &str,
    tag: &str,
    tick_ms: u64,
    extra: &[&str],
    nofile: Option<&str>,
) -> Result<Server> {
    let p = serve_spawn(ctx, db_url, tag, tick_ms, extra, nofile)?;
    listening(p, startup_timeout(ctx.plan.pets))
}

/// Starts `livepet serve` on a free port without waiting for it (the cluster measure starts
/// its nodes together, then waits for each; it also runs its own, shorter tick).
pub fn serve_spawn(
    ctx: &Ctx,
    db_url: &str,
    tag: &str,
    tick_ms: u64,
    extra: &[&str],
    nofile: Option<&str>,
) -> Result<Proc> {
    let mut cmd = Command::new(&ctx.livepet);
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--database-url", db_url])
        .args(["--tick-ms", &tick_ms.to_string()])
        // Sign-ups come from one address, far faster than the default 10 a minute.
        .args(["--auth-attempts-per-minute", "100000000"])
        // The load's users adopt and watch their pets in a burst; the per-user limits are
        // for people, not for what is being measured.
        .args(["--adoptions-per-minute", "100000000"])
        .args(["--max-watched-per-user", "100000000"])
        .args(["--max-sockets-per-user", "100000000"])
        .args(["--max-pets-per-user", "100000000"])
        .args(["--frames-per-user-per-second", "100000000"])
        .args(extra)
        .env("RUST_LOG", "info")
        .current_dir(proc::root());
    let log = ctx.dir.join(format!("{tag}-serve.log"));
    let name = format!("livepet serve ({tag})");
    match nofile {
        Some(limit) => Proc::spawn_with_limit(&name, &cmd, &log, limit),
        None => Proc::spawn(&name, &cmd, &log),
    }
}

/// Waits for a started `livepet serve` to log `listening on http://ADDR`.
pub fn listening(mut p: Proc, timeout: Duration) -> Result<Server> {
    let addr = p.wait_for(timeout, |l| {
        l.split_once("listening on http://")
            .map(|(_, a)| a.trim().to_owned())
    })?;
    Ok(Server { proc: p, addr })
}

/// Polls /metrics until `livepet_pets_alive` and `livepet_first_ticks_total` reach `n`;
/// returns seconds since the process started until every pet was alive, and until every
/// pet had ticked.
pub fn wait_all_ticked(server: &mut Server, n: u64, timeout: Duration) -> Result<(f64, f64)> {
    let deadline = Instant::now() + timeout;
    let mut alive_s = None;
    loop {
        server.proc.drain();
        server.proc.check_alive()?;
        let m = Metrics::scrape(&server.addr)?;
        let alive = m.need("livepet_pets_alive")?;
        let ticked = m.need("livepet_first_ticks_total")?;
        if alive >= n as f64 && alive_s.is_none() {
            alive_s = Some(server.proc.began.elapsed().as_secs_f64());
        }
        if alive >= n as f64 && ticked >= n as f64 {
            let ticked_s = server.proc.began.elapsed().as_secs_f64();
            return Ok((alive_s.unwrap_or(ticked_s), ticked_s));
        }
        if Instant::now() > deadline {
            bail!("after {timeout:?}: {alive} pets alive, {ticked} ticked once, of {n}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Startup, memory and tick CPU of one idle world.
#[derive(Debug, Clone, Default)]
pub struct Idle {
    pub seed_s: f64,
    pub alive_s: f64,
    /// Process start → /metrics shows every pet alive (polled); 0 for the floor.
    pub alive_wall_s: f64,
    pub ticked_s: f64,
    pub rss_bytes: u64,
    pub rss_metrics_bytes: u64,
    pub cpu_percent: f64,
    pub window_s: f64,
    /// SIGTERM → exit; None for the floor (killed).
    pub stop: Option<Stop>,
}

/// A graceful stop: SIGTERM → process exit, and what the server's log said of its final
/// flush.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub seconds: f64,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub flush_rows: Option<u64>,
    pub flush_s: Option<f64>,
}

/// Sends SIGTERM and times the graceful stop.
pub fn graceful_stop(server: &mut Server, n: u64) -> Result<Stop> {
    let s = server.proc.terminate(stop_timeout(n))?;
    // "stopped cleanly: final flush wrote 1001000 pet(s) in 2.345 s; …" (or the line the
    // final flush itself logs): the last one that names the final flush wins.
    let flush = s
        .lines
        .iter()
        .rev()
        .filter(|l| l.contains("final flush"))
        .find_map(|l| {
            let rest = &l[l.find("wrote ")? + "wrote ".len()..];
            let rows = rest
                .split_whitespace()
                .next()?
                .replace(',', "")
                .parse()
                .ok()?;
            let secs = rest
                .split_once(" in ")?
                .1
                .split_whitespace()
                .next()?
                .trim_end_matches(['s', ';', ','])
                .parse()
                .ok()?;
            Some((rows, secs))
        });
    Ok(Stop {
        seconds: s.seconds,
        exit_code: s.exit_code,
        timed_out: s.timed_out,
        flush_rows: flush.map(|f| f.0),
        flush_s: flush.map(|f| f.1),
    })
}

fn idle_world(ctx: &Ctx, n: u64) -> Result<Idle> {
    let tag = format!("idle-{n}");
    let db = sqlite_url(ctx, &tag);
    let seed_s = seed(ctx, &db, n, &tag)?;
    let mut server = serve(ctx, &db, &tag, &[])?;
    let (alive_wall_s, ticked_s) = wait_all_ticked(&mut server, n, startup_timeout(n))?;
    let m = Metrics::scrape(&server.addr)?;
    let alive_s = m.need("livepet_startup_seconds")?;
    let (cpu_percent, window_s) = idle_window(ctx, server.proc.pid(), &mut server.proc)?;
    let rss_bytes = bench_sys::rss_bytes(server.proc.pid())?;
    let rss_metrics_bytes =
        Metrics::scrape(&server.addr)?.need("process_resident_memory_bytes")? as u64;
    let stop = graceful_stop(&mut server, n)?;
    println!("    graceful stop: {stop:?}");
    let _ = std::fs::remove_file(ctx.dir.join(format!("{tag}.db")));
    let r = Idle {
        seed_s,
        alive_s,
        alive_wall_s,
        ticked_s,
        rss_bytes,
        rss_metrics_bytes,
        cpu_percent,
        window_s,
        stop: Some(stop),
    };
    println!("    {r:?}");
    Ok(r)
}

/// After one settling tick period, CPU % of one core over the window.
fn idle_window(ctx: &Ctx, pid: u32, p: &mut Proc) -> Result<(f64, f64)> {
    std::thread::sleep(Duration::from_millis(ctx.plan.tick_ms));
    let meter = CpuMeter::start(pid)?;
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < ctx.plan.cpu_window_s {
        std::thread::sleep(Duration::from_millis(200));
        p.drain();
        p.check_alive()?;
    }
    Ok((meter.percent()?, t.elapsed().as_secs_f64()))
}

fn floor(ctx: &Ctx, n: u64) -> Result<Idle> {
    let mut cmd = Command::new(&ctx.floor);
    cmd.args([
        "--actors",
        &n.to_string(),
        "--tick-ms",
        &ctx.plan.tick_ms.to_string(),
    ]);
    let mut p = Proc::spawn(
        "livepet-floor",
        &cmd,
        &ctx.dir.join(format!("floor-{n}.log")),
    )?;
    let secs = |l: &str, tag: &str| {
        l.strip_prefix(tag)
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|s| s.parse::<f64>().ok())
    };
    let alive_s = p.wait_for(startup_timeout(n), |l| secs(l, "STARTED "))?;
    let ticked_s = p.wait_for(startup_timeout(n), |l| secs(l, "TICKED "))?;
    let pid = p.pid();
    let (cpu_percent, window_s) = idle_window(ctx, pid, &mut p)?;
    let rss_bytes = bench_sys::rss_bytes(pid)?;
    p.kill();
    let r = Idle {
        seed_s: 0.0,
        alive_s,
        alive_wall_s: 0.0,
        ticked_s,
        rss_bytes,
        rss_metrics_bytes: 0,
        cpu_percent,
        window_s,
        stop: None,
    };
    println!("    {r:?}");
    Ok(r)
}

/// One full flush of N dirty pets, with the tick latency viewers saw during it.
#[derive(Debug, Clone, Default)]
pub struct Persist {
    pub rows: u64,
    pub seconds: f64,
    pub seed_s: f64,
    pub viewers: usize,
    pub latency_during: Value,
    pub latency_outside: Value,
    /// Interval between two ticks of a pet minus the period, for ticks during the flush.
    pub lateness_during: Value,
    pub load: Value,
}

fn persist(ctx: &Ctx, pg_admin: Option<&str>) -> Result<Persist> {
    let n = ctx.plan.pets;
    let (tag, pg) = match pg_admin {
        Some(admin) => (
            "persist-pg".to_string(),
            Some(PgDb::create(admin, "persist")?),
        ),
        None => ("persist-sqlite".to_string(), None),
    };
    let db = match &pg {
        Some(pg) => pg.url.clone(),
        None => sqlite_url(ctx, &tag),
    };
    let seed_s = seed(ctx, &db, n, &tag)?;
    // Flush every tick + 15 s: the first flush finds every pet dirty, and the viewers have
    // time to connect before it. Later flushes find every pet dirty again. Past 3.75M pets
    // the gap grows with N (10M: 40 s), so a flush can end before the next one is due.
    let persist_ms = ctx.plan.tick_ms
        + if ctx.plan.quick {
            2_000
        } else {
            15_000.max(n / 250)
        };
    let mut server = serve(ctx, &db, &tag, &["--persist-ms", &persist_ms.to_string()])?;
    let m = ctx.plan.persist_viewers;
    let samples = ctx.dir.join(format!("{tag}-samples.txt"));
    // Long enough to cover two flushes whatever the connection ramp took.
    let duration = (2 * persist_ms + ctx.plan.tick_ms) as f64 / 1000.0
        + if ctx.plan.quick { 1.0 } else { 10.0 };
    let mut load = load_viewers(ctx, &server, m, duration, 0.0, Some(&samples), &tag, &[])?;
    let (w_start, w_end) = load.proc.wait_for(Duration::from_secs(900), window_line)?;
    // Watch flushes; take the first one with every pet that began inside the window.
    let mut last_total = Metrics::scrape(&server.addr)?.need("livepet_persisted_total")?;
    let mut found = None;
    while now_ms() < w_end {
        std::thread::sleep(Duration::from_millis(50));
        server.proc.drain();
        server.proc.check_alive()?;
        let m = Metrics::scrape(&server.addr)?;
        let total = m.need("livepet_persisted_total")?;
        if total > last_total {
            last_total = total;
            let rows = m.need("livepet_persist_rows")?;
            let secs = m.need("livepet_persist_seconds")?;
            let end = now_ms();
            let start = end - (secs * 1000.0) as i64 - 50;
            if rows >= n as f64 && start >= w_start && found.is_none() {
                found = Some((rows as u64, secs, start, end));
            }
        }
    }
    let report = load.result()?;
    server.proc.kill();
    drop(pg);
    let Some((rows, seconds, f_start, f_end)) = found else {
        bail!(
            "no flush of {n} pets happened inside the measured window ({tag}); see {}",
            server.proc.log.display()
        );
    };
    let text = std::fs::read_to_string(&samples).unwrap_or_default();
    let (mut during, mut outside, mut late) = (Vec::new(), Vec::new(), Vec::new());
    let tick = ctx.plan.tick_ms as f64;
    for line in text.lines() {
        let mut it = line
            .split_whitespace()
            .filter_map(|v| v.parse::<f64>().ok());
        if let (Some(at), Some(ms), Some(interval)) = (it.next(), it.next(), it.next()) {
            let at = at as i64;
            if at >= f_start && at <= f_end {
                during.push(ms);
                if interval >= 0.0 {
                    late.push(interval - tick);
                }
            } else {
                outside.push(ms);
            }
        }
    }
    let r = Persist {
        rows,
        seconds,
        seed_s,
        viewers: m,
        latency_during: percentiles(during),
        latency_outside: percentiles(outside),
        lateness_during: percentiles(late),
        load: report,
    };
    println!(
        "    flush {} rows in {:.2} s; tick latency during p99 {} ms, outside p99 {} ms",
        r.rows, r.seconds, r.latency_during["p99"], r.latency_outside["p99"]
    );
    Ok(r)
}

fn window_line(l: &str) -> Option<(i64, i64)> {
    let mut it = l.strip_prefix("WINDOW ")?.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

pub fn percentiles(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return serde_json::json!({"count": 0});
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    serde_json::json!({"count": v.len(), "p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": v[v.len() - 1]})
}

/// A running load generator.
pub struct Load {
    pub proc: Proc,
}

impl Load {
    /// Waits for the line `<prefix> <ms>` and returns the number.
    pub fn wait_ms(&mut self, prefix: &str, timeout: Duration) -> Result<i64> {
        self.proc
            .wait_for(timeout, |l| l.strip_prefix(prefix)?.trim().parse().ok())
    }

    /// Waits for the `WINDOW <start_ms> <end_ms>` line.
    pub fn window(&mut self) -> Result<(i64, i64)> {
        self.proc.wait_for(Duration::from_secs(1800), window_line)
    }

    /// Waits for its RESULT line and parses it.
    pub fn result(&mut self) -> Result<Value> {
        let json = self.proc.wait_for(Duration::from_secs(1800), |l| {
            l.strip_prefix("RESULT ").map(str::to_owned)
        })?;
        let status = self.proc.child.wait()?;
        if !status.success() {
            bail!("livepet-load failed ({status}); {}", self.proc.tail());
        }
        serde_json::from_str(&json).context("parsing livepet-load's RESULT")
    }
}

/// Starts `livepet-load viewers` with M viewers (ten per user) and `extra` arguments.
#[allow(clippy::too_many_arguments)]
pub fn load_viewers(
    ctx: &Ctx,
    server: &Server,
    m: usize,
    duration_s: f64,
    warmup_s: f64,
    samples: Option<&Path>,
    tag: &str,
    extra: &[String],
) -> Result<Load> {
    let url = format!("http://{}", server.addr);
    let timing = LoadTiming {
        tick_ms: ctx.plan.tick_ms,
        duration_s,
        warmup_s,
    };
    load_viewers_at(ctx, &url, m, timing, samples, tag, extra)
}

/// The clock of one load run: the server's tick, the measured window and the warm-up.
#[derive(Debug, Clone, Copy)]
pub struct LoadTiming {
    pub tick_ms: u64,
    pub duration_s: f64,
    pub warmup_s: f64,
}

/// [`load_viewers`] against `url` (`http://host:port`) with its own timing.
pub fn load_viewers_at(
    ctx: &Ctx,
    url: &str,
    m: usize,
    timing: LoadTiming,
    samples: Option<&Path>,
    tag: &str,
    extra: &[String],
) -> Result<Load> {
    let LoadTiming {
        tick_ms,
        duration_s,
        warmup_s,
    } = timing;
    // Ten pets per user: 10,000 sign-ups would cost the server 10,000 argon2 hashes.
    let users = m.div_ceil(10).max(1);
    let mut cmd = Command::new(&ctx.load);
    cmd.arg("viewers")
        .args(["--url", url])
        .args(["--users", &users.to_string(), "--viewers", &m.to_string()])
        .args(["--tick-ms", &tick_ms.to_string()])
        .args(["--warmup-s", &warmup_s.to_string()])
        .args(["--duration-s", &duration_s.to_string()])
        .args([
            "--connect-timeout-s",
            &ctx.plan.connect_timeout_s.to_string(),
        ])
        .args(extra);
    if let Some(s) = samples {
        cmd.arg("--samples-out").arg(s);
    }
    let p = Proc::spawn(
        "livepet-load",
        &cmd,
        &ctx.dir.join(format!("{tag}-load.log")),
    )?;
    Ok(Load { proc: p })
}

/// M viewers on N pets: the load generator's report and the server's CPU and memory.
#[derive(Debug, Clone, Default)]
pub struct Viewers {
    pub load: Value,
    pub server_cpu_percent: f64,
    pub server_rss_bytes: u64,
    pub pets_alive: f64,
}

fn viewers(ctx: &Ctx, m: usize) -> Result<Viewers> {
    let n = ctx.plan.pets;
    let tag = format!("viewers-{m}");
    let db = sqlite_url(ctx, &tag);
    seed(ctx, &db, n, &tag)?;
    let mut server = serve(ctx, &db, &tag, &[])?;
    wait_all_ticked(&mut server, n, startup_timeout(n))?;
    let warmup = if ctx.plan.quick { 1.0 } else { 10.0 };
    // Every tick sample, kept beside the logs for a closer look at outliers.
    let samples = ctx.dir.join(format!("{tag}-samples.txt"));
    let mut load = load_viewers(
        ctx,
        &server,
        m,
        ctx.plan.viewer_window_s,
        warmup,
        Some(&samples),
        &tag,
        &[],
    )?;
    let (start, end) = load.window()?;
    let pid = server.proc.pid();
    while now_ms() < start {
        std::thread::sleep(Duration::from_millis(10));
    }
    let meter = CpuMeter::start(pid)?;
    let mut rss = 0;
    while now_ms() < end {
        std::thread::sleep(Duration::from_millis(250));
        rss = rss.max(bench_sys::rss_bytes(pid)?);
        server.proc.drain();
    }
    let server_cpu_percent = meter.percent()?;
    let pets_alive = Metrics::scrape(&server.addr)?.need("livepet_pets_alive")?;
    let report = load.result()?;
    server.proc.kill();
    let _ = std::fs::remove_file(ctx.dir.join(format!("{tag}.db")));
    let r = Viewers {
        load: report,
        server_cpu_percent,
        server_rss_bytes: rss,
        pets_alive,
    };
    println!(
        "    server CPU {:.0} %, RSS {} MB",
        r.server_cpu_percent,
        r.server_rss_bytes / 1_000_000
    );
    Ok(r)
}

/// GET /api/pets/{id} throughput with N pets alive.
#[derive(Debug, Clone, Default)]
pub struct Http {
    pub load: Value,
    pub server_cpu_percent: f64,
}

fn http(ctx: &Ctx) -> Result<Http> {
    let n = ctx.plan.pets;
    let tag = "http";
    let db = sqlite_url(ctx, tag);
    seed(ctx, &db, n, tag)?;
    let mut server = serve(ctx, &db, tag, &[])?;
    wait_all_ticked(&mut server, n, startup_timeout(n))?;
    let mut cmd = Command::new(&ctx.load);
    cmd.arg("http")
        .args(["--url", &format!("http://{}", server.addr)])
        .args(["--concurrency", "64"])
        .args(["--duration-s", &ctx.plan.http_window_s.to_string()]);
    let warmup = 2.0;
    cmd.args(["--warmup-s", &warmup.to_string()]);
    let mut load = Load {
        proc: Proc::spawn("livepet-load", &cmd, &ctx.dir.join("http-load.log"))?,
    };
    let (start, end) = load.proc.wait_for(Duration::from_secs(300), window_line)?;
    while now_ms() < start {
        std::thread::sleep(Duration::from_millis(5));
    }
    let meter = CpuMeter::start(server.proc.pid())?;
    while now_ms() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    let server_cpu_percent = meter.percent()?;
    let report = load.result()?;
    server.proc.kill();
    let _ = std::fs::remove_file(ctx.dir.join(format!("{tag}.db")));
    println!("    {report}");
    Ok(Http {
        load: report,
        server_cpu_percent,
    })
}
