//! The connection measures of `cargo xtask bench`: storm (viewers measured while many more
//! connect at once), limits (a server started with a low open-file limit: how many it
//! accepts and how it refuses the rest), and active (every viewer's pet active: bytes a
//! session receives and the server's CPU, against what the old full list would cost).

use crate::bench::{self, load_viewers, Ctx, Plan};
use crate::bench_report::{bytes, compact, int, num, verdict};
use crate::bench_sys::{self, now_ms, CpuMeter, Metrics};
use anyhow::Result;
use serde_json::{json, Value};
use std::time::Duration;

/// Design targets (DESIGN.md, "Performance targets" and "The active list is a window").
const TARGET_P99_MS: f64 = 100.0;
/// "coalesced to at most a few frames a second": `active_pets_changed` frames a session
/// receives in one second of the clock.
const TARGET_PRESENCE_PER_S: f64 = 5.0;
/// `ACTIVE_PAGE_MAX` in shared/src/wire.rs.
const ACTIVE_PAGE_MAX: f64 = 100.0;

/// Descriptors kept back from the storm for everything that is not a viewer's socket: the
/// server's own reserve (database, files, persister: about 700) and the load generator's.
const FD_RESERVE: u64 = 1_000;

/// The storm's size: what was asked for, lowered so that the measured viewers plus the storm
/// fit under the open-file hard limit in both the server and the load generator.
pub fn storm_size(plan: &Plan) -> (usize, Option<String>) {
    let Some(hard) = bench_sys::hard_open_files() else {
        return (plan.storm, None);
    };
    let fits = hard.saturating_sub(plan.storm_base as u64 + FD_RESERVE) as usize;
    if plan.storm <= fits {
        return (plan.storm, None);
    }
    (
        fits,
        Some(format!(
            "storm lowered from {} to {fits} viewers: the open-file hard limit is {hard}, and \
             the server and the load generator each hold one descriptor a viewer ({} measured \
             + the storm) plus about {FD_RESERVE} of their own",
            int(plan.storm as u64),
            int(plan.storm_base as u64)
        )),
    )
}

/// Server CPU (% of one core) and peak RSS over a window given in epoch ms.
fn watch_server(server: &mut bench::Server, start: i64, end: i64) -> Result<(f64, u64)> {
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
        server.proc.check_alive()?;
    }
    Ok((meter.percent()?, rss))
}

/// M viewers connecting at once while the others are measured.
#[derive(Debug, Clone, Default)]
pub struct Storm {
    pub base: usize,
    pub storm: usize,
    pub pets_alive: f64,
    pub load: Value,
    pub server_cpu_percent: f64,
    pub server_rss_before: u64,
    pub server_rss_peak: u64,
    pub refused_total: Option<f64>,
    /// CPU (% of one core) of the server and of the load generator over the storm's first
    /// `storm_s` seconds.
    pub storm_s: f64,
    pub storm_server_cpu: f64,
    pub storm_load_cpu: f64,
}

impl Storm {
    pub fn json(&self) -> Value {
        json!({"base": self.base, "storm": self.storm, "pets_alive": self.pets_alive,
            "load": self.load, "server_cpu_percent": self.server_cpu_percent,
            "server_rss_before": self.server_rss_before, "server_rss_peak": self.server_rss_peak,
            "connections_refused_total": self.refused_total, "storm_s": self.storm_s,
            "storm_server_cpu_percent": self.storm_server_cpu,
            "storm_load_cpu_percent": self.storm_load_cpu})
    }
}

pub fn storm(ctx: &Ctx, m: usize) -> Result<Storm> {
    let plan = &ctx.plan;
    let n = plan.pets;
    let tag = "storm";
    let db = bench::sqlite_url(ctx, tag);
    bench::seed(ctx, &db, n, tag)?;
    let mut server = bench::serve(ctx, &db, tag, &[])?;
    bench::wait_all_ticked(&mut server, n, bench::startup_timeout(n))?;
    let server_rss_before = bench_sys::rss_bytes(server.proc.pid())?;
    let warmup = if plan.quick { 1.0 } else { 10.0 };
    let samples = ctx.dir.join(format!("{tag}-samples.txt"));
    let extra = [
        "--storm".to_string(),
        m.to_string(),
        "--storm-at-s".into(),
        plan.storm_at_s.to_string(),
    ];
    let mut load = load_viewers(
        ctx,
        &server,
        plan.storm_base,
        plan.storm_window_s,
        warmup,
        Some(&samples),
        tag,
        &extra,
    )?;
    let (start, end) = load.window()?;
    let storm_at = load.wait_ms("STORM ", Duration::from_secs(60))?;
    // Both processes' CPU over the storm's first seconds (as long as a viewer may take to
    // connect): on two cores, whether the box itself was saturated.
    let storm_s = plan.connect_timeout_s;
    let storm_end = storm_at + (storm_s * 1000.0) as i64;
    let pid = server.proc.pid();
    while now_ms() < start {
        std::thread::sleep(Duration::from_millis(10));
    }
    let window = CpuMeter::start(pid)?;
    let mut server_rss_peak = 0;
    let mut during: Option<(CpuMeter, CpuMeter)> = None;
    let (mut storm_server_cpu, mut storm_load_cpu) = (0.0, 0.0);
    while now_ms() < end {
        std::thread::sleep(Duration::from_millis(100));
        let now = now_ms();
        if during.is_none() && now >= storm_at && now < storm_end {
            during = Some((CpuMeter::start(pid)?, CpuMeter::start(load.proc.pid())?));
        }
        if now >= storm_end {
            if let Some((s, l)) = during.take() {
                storm_server_cpu = s.percent()?;
                storm_load_cpu = l.percent()?;
            }
        }
        server_rss_peak = server_rss_peak.max(bench_sys::rss_bytes(pid)?);
        server.proc.drain();
        server.proc.check_alive()?;
    }
    let server_cpu_percent = window.percent()?;
    let metrics = Metrics::scrape(&server.addr)?;
    let pets_alive = metrics.need("livepet_pets_alive")?;
    let refused_total = metrics.get("livepet_connections_refused_total");
    let report = load.result()?;
    server.proc.kill();
    let _ = std::fs::remove_file(ctx.dir.join(format!("{tag}.db")));
    let r = Storm {
        base: plan.storm_base,
        storm: m,
        pets_alive,
        load: report,
        server_cpu_percent,
        server_rss_before,
        server_rss_peak,
        refused_total,
        storm_s,
        storm_server_cpu,
        storm_load_cpu,
    };
    println!(
        "    measured p99 {} ms, missing {}; storm {} of {} watching after {} s, failures {}",
        num(&r.load, "tick_latency_ms.p99"),
        num(&r.load, "frames_missing"),
        num(&r.load, "storm.connected"),
        m,
        r.load["storm"]["all_connected_s"],
        r.load["storm"]["failure_kinds"]
    );
    Ok(r)
}

/// Failures by kind as "timeout 0, 503 12, …".
fn kinds(v: &Value) -> String {
    [
        ("timeout", "timeout"),
        ("refused_503", "503"),
        ("refused_tcp", "TCP refused"),
        ("reset", "reset"),
        ("other", "other"),
    ]
    .iter()
    .map(|(k, label)| format!("{label} {}", int(num(v, k) as u64)))
    .collect::<Vec<_>>()
    .join(", ")
}

pub fn storm_row(r: &Storm, plan: &Plan) -> String {
    let l = &r.load;
    let s = &l["storm"];
    let missing = num(l, "frames_missing");
    let p99 = num(l, "tick_latency_ms.p99");
    let failures = num(s, "failures");
    let connected = match s["all_connected_s"].as_f64() {
        Some(t) => format!(
            "all {} watching {t:.1} s after it began",
            int(num(s, "viewers") as u64)
        ),
        None => format!(
            "{} of {} watching (the last {:.1} s after it began)",
            int(num(s, "connected") as u64),
            int(num(s, "viewers") as u64),
            num(s, "last_connected_s")
        ),
    };
    let verdict_text = if plan.quick {
        String::new()
    } else {
        format!(
            "latency {}; missing {}; storm {}",
            verdict(p99, TARGET_P99_MS, " ms"),
            if missing == 0.0 {
                "**met** (0)".to_string()
            } else {
                format!("**missed** ({})", int(missing as u64))
            },
            if failures == 0.0 {
                "**met** (every viewer connected)".to_string()
            } else {
                format!("**missed** ({} failed)", int(failures as u64))
            }
        )
    };
    format!(
        "| storm: {} viewers connect at once, {:.0} s into the window, while {} watching viewers are measured (tick {} s, {:.0} s window; a viewer gives up after {:.0} s) | {} + {} viewers, {} pets alive | measured viewers: tick→client p50/p99/max {:.0}/{:.0}/{:.0} ms, frames {} of {} (missing {}); storm: {}, connect p50/p99 {:.0}/{:.0} ms, failures {} ({}), its own ticks p99 {:.0} ms; server {} → {} RSS, {:.0} % of one core over the window, {:.0} % over the storm's first {:.0} s (load generator {:.0} % then, {:.0} % over the window) | | | p99 ≤ 100 ms and none missing, including while they all connect at once | {} |\n",
        int(r.storm as u64),
        num(s, "started_after_window_s"),
        int(r.base as u64),
        plan.tick_ms / 1000,
        num(l, "window_s"),
        num(l, "connect_timeout_s"),
        int(r.base as u64),
        int(r.storm as u64),
        int(r.pets_alive as u64),
        num(l, "tick_latency_ms.p50"),
        p99,
        num(l, "tick_latency_ms.max"),
        int(num(l, "frames_received") as u64),
        int(num(l, "frames_expected") as u64),
        int(missing as u64),
        connected,
        num(s, "connect_ms.p50"),
        num(s, "connect_ms.p99"),
        int(failures as u64),
        kinds(&s["failure_kinds"]),
        num(s, "tick_latency_ms.p99"),
        bytes(r.server_rss_before as f64),
        bytes(r.server_rss_peak as f64),
        r.server_cpu_percent,
        r.storm_server_cpu,
        r.storm_s,
        r.storm_load_cpu,
        num(l, "load_cpu_percent"),
        verdict_text,
    )
}

/// A server started with a low open-file limit, and more viewers than it can hold.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Soft and hard limit lowered (else the soft one only).
    pub hard_too: bool,
    pub nofile: u64,
    pub viewers: usize,
    /// "Max open files" of the running server, from /proc/PID/limits.
    pub proc_soft: String,
    pub proc_hard: String,
    /// What /metrics says (None: the metric is not there).
    pub metric_limit: Option<f64>,
    pub metric_max_connections: Option<f64>,
    pub metric_refused: Option<f64>,
    /// Lines of the server's log that say accepting a connection failed for want of
    /// descriptors (the limit it refuses at should leave room for that never to happen).
    pub accept_failures: Vec<String>,
    pub load: Value,
}

impl Limits {
    pub fn json(&self) -> Value {
        json!({"hard_too": self.hard_too, "nofile": self.nofile, "viewers": self.viewers,
            "proc_soft": self.proc_soft, "proc_hard": self.proc_hard,
            "metric_open_files_limit": self.metric_limit,
            "metric_max_connections": self.metric_max_connections,
            "metric_connections_refused_total": self.metric_refused,
            "accept_failures": self.accept_failures, "load": self.load})
    }
}

pub fn limits(ctx: &Ctx, hard_too: bool) -> Result<Limits> {
    let plan = &ctx.plan;
    let n = plan.limits_pets;
    let nofile = plan.limits_nofile;
    let tag = if hard_too {
        "limits-hard"
    } else {
        "limits-soft"
    };
    let limit_cmd = if hard_too {
        format!("ulimit -n {nofile}")
    } else {
        format!("ulimit -Sn {nofile}")
    };
    let db = bench::sqlite_url(ctx, tag);
    bench::seed(ctx, &db, n, tag)?;
    let mut server = bench::serve_with(ctx, &db, tag, &[], Some(&limit_cmd))?;
    bench::wait_all_ticked(&mut server, n, bench::startup_timeout(n))?;
    let (proc_soft, proc_hard) = bench_sys::open_files_limit(server.proc.pid())?;
    let before = Metrics::scrape(&server.addr)?;
    let warmup = if plan.quick { 1.0 } else { 2.0 };
    let mut load = load_viewers(
        ctx,
        &server,
        plan.limits_viewers,
        plan.limits_window_s,
        warmup,
        None,
        tag,
        &[],
    )?;
    let (start, end) = load.window()?;
    watch_server(&mut server, start, end)?;
    let report = load.result()?;
    let after = Metrics::scrape(&server.addr)?;
    server.proc.kill();
    let accept_failures = std::fs::read_to_string(&server.proc.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Too many open files") || l.contains("accept(s) failed"))
        .map(|l| l.chars().take(200).collect::<String>().replace('|', "/"))
        .collect();
    let _ = std::fs::remove_file(ctx.dir.join(format!("{tag}.db")));
    let r = Limits {
        hard_too,
        nofile,
        viewers: plan.limits_viewers,
        proc_soft,
        proc_hard,
        metric_limit: before.get("livepet_open_files_limit"),
        metric_max_connections: before.get("livepet_max_connections"),
        metric_refused: after.get("livepet_connections_refused_total"),
        accept_failures,
        load: report,
    };
    println!(
        "    /proc soft {} hard {}; {} of {} watching; failures {}",
        r.proc_soft,
        r.proc_hard,
        num(&r.load, "viewers_watching"),
        r.viewers,
        r.load["connection_failure_kinds"]
    );
    Ok(r)
}

pub fn limits_row(r: &Limits, plan: &Plan) -> String {
    let l = &r.load;
    let k = &l["connection_failure_kinds"];
    let watching = num(l, "viewers_watching");
    let refused = num(k, "refused_503");
    let bad = num(k, "timeout") + num(k, "refused_tcp") + num(k, "reset") + num(k, "other");
    let missing_open = num(l, "frames_missing_connected");
    let metric = |v: Option<f64>| v.map_or("absent".to_string(), |v| int(v as u64));
    let started = if r.hard_too {
        format!("soft and hard open-file limit {}", int(r.nofile))
    } else {
        format!(
            "soft open-file limit {} (hard left at {})",
            int(r.nofile),
            r.proc_hard
        )
    };
    let (target, verdict_text) = if r.hard_too {
        let ok = bad == 0.0 && missing_open == 0.0;
        (
            "past `--max-connections` a new socket is refused at once (HTTP 503), never left to time out; the open sessions carry on",
            format!(
                "{}: {} refused with 503 (the slowest after {:.0} ms), {} timed out or broken; open sessions missing {}",
                if ok { "**met**" } else { "**missed**" },
                int(refused as u64),
                num(l, "connection_failure_ms.max"),
                int(bad as u64),
                int(missing_open as u64)
            ),
        )
    } else {
        let raised = r.proc_soft == r.proc_hard;
        (
            "the server raises its open-file limit to the hard limit at start",
            format!(
                "{}: soft limit {} of hard {}",
                if raised { "**met**" } else { "**missed**" },
                r.proc_soft,
                r.proc_hard
            ),
        )
    };
    format!(
        "| limits: server started with {started}, {} viewers (tick {} s, {:.0} s window) | {} viewers, {} pets | limit it runs with (/proc) soft {} hard {}; /metrics: `livepet_open_files_limit` {}, `livepet_max_connections` {}, `livepet_connections_refused_total` {}; {} of {} viewers watching; failures {} ({}), refused after p50/p99 {:.0}/{:.0} ms; watching viewers' tick→client p99 {:.0} ms, missing {}; {} | | | {target} | {verdict_text} |\n",
        int(r.viewers as u64),
        plan.tick_ms / 1000,
        num(l, "window_s"),
        int(r.viewers as u64),
        int(plan.limits_pets),
        r.proc_soft,
        r.proc_hard,
        metric(r.metric_limit),
        metric(r.metric_max_connections),
        metric(r.metric_refused),
        int(watching as u64),
        int(r.viewers as u64),
        int(num(l, "connection_failures") as u64),
        kinds(k),
        num(l, "connection_failure_ms.p50"),
        num(l, "connection_failure_ms.p99"),
        num(l, "tick_latency_ms.p99"),
        int(missing_open as u64),
        if r.accept_failures.is_empty() {
            "the server's log shows no failed accept".to_string()
        } else {
            format!(
                "the server's log shows accepts failing for want of descriptors ({} line(s), e.g. \"{}\")",
                r.accept_failures.len(),
                r.accept_failures
                    .last()
                    .map(|l| l.split("] ").nth(1).unwrap_or(l))
                    .unwrap_or_default()
            )
        },
    )
}

/// Every viewer's pet active: what a session receives and what the server spends.
#[derive(Debug, Clone, Default)]
pub struct Active {
    pub viewers: usize,
    pub pets_alive: f64,
    pub active_pets: f64,
    pub load: Value,
    /// From the first viewer's connect to the last one watching.
    pub ramp_s: f64,
    pub ramp_cpu_percent: f64,
    pub window_cpu_percent: f64,
    pub rss_peak: u64,
}

impl Active {
    pub fn json(&self) -> Value {
        json!({"viewers": self.viewers, "pets_alive": self.pets_alive,
            "active_pets": self.active_pets, "load": self.load, "ramp_s": self.ramp_s,
            "ramp_cpu_percent": self.ramp_cpu_percent,
            "window_cpu_percent": self.window_cpu_percent, "rss_peak": self.rss_peak})
    }
}

pub fn active(ctx: &Ctx) -> Result<Active> {
    let plan = &ctx.plan;
    let n = plan.pets;
    let m = plan.active_viewers;
    let tag = "active";
    let db = bench::sqlite_url(ctx, tag);
    bench::seed(ctx, &db, n, tag)?;
    let mut server = bench::serve(ctx, &db, tag, &[])?;
    bench::wait_all_ticked(&mut server, n, bench::startup_timeout(n))?;
    let warmup = if plan.quick { 1.0 } else { 10.0 };
    let mut load = load_viewers(
        ctx,
        &server,
        m,
        plan.viewer_window_s,
        warmup,
        None,
        tag,
        &[],
    )?;
    let pid = server.proc.pid();
    // Sign-ups first (not measured), then the ramp: every viewer connects and watches.
    let connecting = load.wait_ms("CONNECTING ", Duration::from_secs(1800))?;
    let ramp = CpuMeter::start(pid)?;
    let ready = load.wait_ms("READY ", Duration::from_secs(1800))?;
    let ramp_cpu_percent = ramp.percent()?;
    let (start, end) = load.window()?;
    let (window_cpu_percent, rss_peak) = watch_server(&mut server, start, end)?;
    let metrics = Metrics::scrape(&server.addr)?;
    let pets_alive = metrics.need("livepet_pets_alive")?;
    let active_pets = metrics.get("livepet_active_pets").unwrap_or(0.0);
    let report = load.result()?;
    server.proc.kill();
    let _ = std::fs::remove_file(ctx.dir.join(format!("{tag}.db")));
    let r = Active {
        viewers: m,
        pets_alive,
        active_pets,
        load: report,
        ramp_s: (ready - connecting) as f64 / 1000.0,
        ramp_cpu_percent,
        window_cpu_percent,
        rss_peak,
    };
    println!(
        "    first frame p50 {} B; before the window {} B a session; window {} B/min a session; CPU ramp {:.0} %, window {:.0} %",
        num(&r.load, "traffic.first_active_pets_bytes.p50"),
        num(&r.load, "traffic.before_window_bytes_per_session.all"),
        num(&r.load, "traffic.window_bytes_per_session_per_minute.all"),
        r.ramp_cpu_percent,
        r.window_cpu_percent
    );
    Ok(r)
}

pub fn active_row(r: &Active, plan: &Plan) -> String {
    let l = &r.load;
    let t = &l["traffic"];
    // N: the pets in the list at the end (every watching viewer's own pet).
    let n = r.active_pets.max(num(l, "viewers_watching")).max(1.0);
    let entry = num(t, "list_entry_bytes");
    let list = |v: &Value| num(v, "active_pets") + num(v, "active_pets_changed");
    let before = &t["before_window_bytes_per_session"];
    let window = &t["window_bytes_per_session_per_minute"];
    let ramp_list = list(before);
    let old_first = n * entry;
    let old_session = (n - 1.0).max(0.0) * entry;
    let first_max = num(t, "first_active_pets_entries.max");
    let entries_max = num(t, "active_list_entries_max");
    let per_s_max = num(t, "presence_frames_max_per_second.max");
    let bounded = entries_max <= ACTIVE_PAGE_MAX && per_s_max <= TARGET_PRESENCE_PER_S;
    let verdict_text = format!(
        "{}: at most {entries_max:.0} pets in one active-list frame, at most {per_s_max:.0} `active_pets_changed` frames in a second",
        if bounded { "**met**" } else { "**missed**" },
    );
    format!(
        "| active list: every viewer watches its own pet, so every pet on screen is active; default page (tick {} s, {:.0} s window) | {} viewers, {} active pets, {} pets alive | per session: first `active_pets` frame p50/max {}/{} B ({:.0}/{:.0} entries); from connect to the window ({:.1} s, the ramp and warm-up) {} in all, {} of it the active list ({:.0} active-list frames, at most {:.0} changes in one second); in the window {} a minute ({} `pet`, {} active list); all sessions' active-list bytes over the ramp {}; server CPU {:.0} % of one core over the {:.1} s ramp, {:.0} % in the window, {} RSS | old full list, **computed** from N × entry size ({:.0} B an entry; the server has no flag for the old behaviour): first frame of a new tab {}; each session over the ramp ≥ {}; all sessions ≥ {} | {} (active-list bytes over the ramp, per session) | a session's cost is bounded by its page size (≤ 100 pets), whatever the number of active pets; changes coalesced to at most a few frames a second | {} |\n",
        plan.tick_ms / 1000,
        num(l, "window_s"),
        int(r.viewers as u64),
        int(n as u64),
        int(r.pets_alive as u64),
        int(num(t, "first_active_pets_bytes.p50") as u64),
        int(num(t, "first_active_pets_bytes.max") as u64),
        num(t, "first_active_pets_entries.p50"),
        first_max,
        num(t, "before_window_s"),
        bytes(num(before, "all")),
        bytes(ramp_list),
        list(&t["before_window_frames_per_session"]),
        per_s_max,
        bytes(num(window, "all")),
        bytes(num(window, "pet")),
        bytes(list(window)),
        bytes(ramp_list * n),
        r.ramp_cpu_percent,
        r.ramp_s,
        r.window_cpu_percent,
        bytes(r.rss_peak as f64),
        entry,
        bytes(old_first),
        bytes(old_session),
        bytes(old_session * n),
        if old_session > 0.0 {
            format!("{:.4}×", ramp_list / old_session)
        } else {
            "—".into()
        },
        verdict_text,
    )
}

/// The harness ran: each measure produced its figures.
pub fn check(
    storm: &Option<Storm>,
    limits: &[Limits],
    active: &Option<Active>,
    problems: &mut Vec<String>,
) {
    if let Some(s) = storm {
        if num(&s.load, "tick_latency_ms.count") == 0.0 {
            problems.push("storm: no tick frames measured".into());
        }
    }
    for l in limits {
        if num(&l.load, "viewers_watching") == 0.0 {
            problems.push(format!(
                "limits ({}): no viewer was accepted",
                if l.hard_too { "hard" } else { "soft" }
            ));
        }
    }
    if let Some(a) = active {
        if num(&a.load, "tick_latency_ms.count") == 0.0 {
            problems.push("active: no tick frames measured".into());
        }
        if num(&a.load, "connection_failures") > 0.0 {
            problems.push(format!(
                "active: {} connection failure(s): {}",
                num(&a.load, "connection_failures"),
                compact(&a.load["connection_failure_kinds"])
            ));
        }
    }
}
