//! BENCHMARKS.md: the header (machine, date, commit, command) and the one table, written
//! between markers so the notes a person writes around them survive the next run.

use crate::bench::{Http, Idle, Persist, Plan, Viewers};
use crate::bench_cluster::{self, Cluster};
use crate::bench_conn::{self, Active, Limits, Storm};
use crate::bench_sys::{self, Machine};
use crate::bench_web::Web;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const BEGIN: &str =
    "<!-- bench:begin (written by `cargo xtask bench`; edit outside the markers) -->";
const END: &str = "<!-- bench:end -->";

/// Design targets (DESIGN.md, "Performance targets"), at 1M pets and 10K viewers.
const TARGET_PETS: u64 = 1_000_000;
const TARGET_VIEWERS: usize = 10_000;
const TARGET_START_S: f64 = 10.0;
const TARGET_RSS_BYTES: f64 = 1.5e9;
const TARGET_TICK_CPU: f64 = 25.0;
const TARGET_FLUSH_SQLITE_S: f64 = 5.0;
const TARGET_FLUSH_PG_S: f64 = 10.0;
const TARGET_P99_MS: f64 = 100.0;
const TARGET_FEED_P99_MS: f64 = 50.0;
const TARGET_WASM_GZ: f64 = 250_000.0;
const TARGET_PAINT_MS: f64 = 1000.0;
/// Ten million pets in one process: alive within 30 s of the start, at most 1.1 × the bare
/// actor's memory per pet, a graceful stop within 30 s.
const TARGET_PETS_10M: u64 = 10_000_000;
const TARGET_10M_ALIVE_S: f64 = 30.0;
const TARGET_10M_MEMORY_RATIO: f64 = 1.1;
const TARGET_10M_STOP_S: f64 = 30.0;

pub struct Results {
    pub plan: Plan,
    pub date: String,
    pub commit: String,
    pub command: String,
    pub machine: String,
    pub load_before: String,
    pub idle: Vec<(u64, Idle)>,
    pub floor: Vec<(u64, Idle)>,
    pub persist_sqlite: Option<Persist>,
    pub persist_pg: Option<Persist>,
    pub viewers: Vec<(usize, Viewers)>,
    pub storm: Option<Storm>,
    pub limits: Vec<Limits>,
    pub active: Option<Active>,
    pub http: Option<Http>,
    pub web: Option<Web>,
    pub cluster: Option<Cluster>,
    pub notes: Vec<String>,
    pub seconds: f64,
}

impl Results {
    pub fn new(plan: &Plan, m: &Machine, command: &str) -> Results {
        let git = |args: &[&str]| {
            bench_sys::output(crate::proc::command("git").args(args)).unwrap_or_default()
        };
        let mut commit = git(&["rev-parse", "--short=12", "HEAD"]);
        let dirty = git(&[
            "status",
            "--porcelain",
            "--",
            "backend",
            "shared",
            "xtask",
            "Cargo.lock",
        ]);
        if !dirty.is_empty() {
            commit.push_str(" (with uncommitted changes)");
        }
        Results {
            plan: plan.clone(),
            date: bench_sys::output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
                .unwrap_or_default(),
            commit,
            command: command.to_owned(),
            machine: format!(
                "{} cores, {:.1} GiB memory, {}, Linux {}",
                m.cores,
                m.memory_bytes as f64 / (1u64 << 30) as f64,
                m.cpu_model,
                m.kernel
            ),
            load_before: m.load_average.clone(),
            idle: Vec::new(),
            floor: Vec::new(),
            persist_sqlite: None,
            persist_pg: None,
            viewers: Vec::new(),
            storm: None,
            limits: Vec::new(),
            active: None,
            http: None,
            web: None,
            cluster: None,
            notes: Vec::new(),
            seconds: 0.0,
        }
    }

    /// Everything measured, raw, for results.json.
    pub fn json(&self) -> Value {
        let idle = |v: &[(u64, Idle)]| -> Vec<Value> {
            v.iter()
                .map(|(n, r)| {
                    json!({"pets": n, "seed_s": r.seed_s, "alive_s": r.alive_s,
                        "alive_wall_s": r.alive_wall_s, "ticked_s": r.ticked_s,
                        "rss_bytes": r.rss_bytes, "rss_metrics_bytes": r.rss_metrics_bytes,
                        "cpu_percent": r.cpu_percent, "window_s": r.window_s,
                        "stop": r.stop.as_ref().map(|s| json!({"seconds": s.seconds,
                            "exit_code": s.exit_code, "timed_out": s.timed_out,
                            "flush_rows": s.flush_rows, "flush_s": s.flush_s}))})
                })
                .collect()
        };
        let persist = |p: &Option<Persist>| {
            p.as_ref().map(|p| {
                json!({"rows": p.rows, "seconds": p.seconds, "seed_s": p.seed_s, "viewers": p.viewers,
                    "latency_during": p.latency_during, "latency_outside": p.latency_outside, "lateness_during": p.lateness_during, "load": p.load})
            })
        };
        json!({
            "date": self.date, "commit": self.commit, "command": self.command, "machine": self.machine,
            "idle": idle(&self.idle), "floor": idle(&self.floor),
            "persist_sqlite": persist(&self.persist_sqlite), "persist_postgres": persist(&self.persist_pg),
            "viewers": self.viewers.iter().map(|(m, v)| json!({"viewers": m, "load": v.load,
                "server_cpu_percent": v.server_cpu_percent, "server_rss_bytes": v.server_rss_bytes,
                "pets_alive": v.pets_alive})).collect::<Vec<_>>(),
            "storm": self.storm.as_ref().map(Storm::json),
            "limits": self.limits.iter().map(Limits::json).collect::<Vec<_>>(),
            "active": self.active.as_ref().map(Active::json),
            "http": self.http.as_ref().map(|h| json!({"load": h.load, "server_cpu_percent": h.server_cpu_percent})),
            "web": self.web.as_ref().map(Web::json),
            "cluster": self.cluster.as_ref().map(Cluster::json),
            "notes": self.notes, "seconds": self.seconds,
        })
    }

    /// The harness works: every measure that ran produced its figures. Slow numbers are
    /// not failures; a measure that measured nothing is.
    pub fn check_harness(&self) -> Result<()> {
        let mut problems = Vec::new();
        for (n, r) in self.idle.iter().chain(&self.floor) {
            if r.rss_bytes == 0 || r.ticked_s <= 0.0 || r.window_s <= 0.0 {
                problems.push(format!("idle/floor at {n} pets measured nothing"));
            }
        }
        for (m, v) in &self.viewers {
            let l = &v.load;
            if num(l, "tick_latency_ms.count") == 0.0 {
                problems.push(format!("viewers {m}: no tick frames measured"));
            }
            if num(l, "connection_failures") > 0.0 {
                problems.push(format!(
                    "viewers {m}: {} connection failure(s): {}",
                    num(l, "connection_failures"),
                    l["connection_failure_reasons"]
                ));
            }
        }
        bench_conn::check(&self.storm, &self.limits, &self.active, &mut problems);
        bench_cluster::check(&self.cluster, &mut problems);
        if let Some(h) = &self.http {
            if num(&h.load, "requests") == 0.0 {
                problems.push("http: no successful request".into());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!(
                "the benchmark harness is broken:\n  {}",
                problems.join("\n  ")
            )
        }
    }
}

/// A number at a dotted path of a JSON value (0 when absent).
pub fn num(v: &Value, path: &str) -> f64 {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

pub fn int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn bytes(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else {
        format!("{:.0} KB", b / 1e3)
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "—".into()
    }
}

/// "met" or how far off, for a figure that must stay at or under `target`.
pub fn verdict(value: f64, target: f64, unit: &str) -> String {
    if value <= target {
        "**met**".into()
    } else {
        let over = value - target;
        format!(
            "**missed** by {over:.1}{unit} ({:.0} % over)",
            100.0 * over / target
        )
    }
}

fn ms(v: &Value, key: &str) -> String {
    format!("{:.0}", num(v, key))
}

pub fn render(r: &Results, out: &Path) -> Result<String> {
    let mut t = String::new();
    t.push_str(BEGIN);
    t.push('\n');
    t.push_str(&format!(
        "\n- **date** {}; **commit** `{}`; run took {:.0} s\n- **machine** {}; load average before the run: {}\n- **command** `{}`{}\n\n",
        r.date,
        r.commit,
        r.seconds,
        r.machine,
        r.load_before,
        r.command,
        if r.plan.quick {
            " — a **quick** run: small sizes and short windows, to check the harness, not the numbers"
        } else {
            ""
        }
    ));
    let mut notes = r.notes.clone();
    t.push_str("| measure | size | LivePet | floor (same run) | LivePet / floor | target (DESIGN.md) | verdict |\n");
    t.push_str("|---|---|---|---|---|---|---|\n");
    let floor_at = |n: u64| {
        r.floor
            .iter()
            .find(|(k, _)| *k == n)
            .map(|(_, f)| f.clone())
    };
    for (n, p) in &r.idle {
        let f = floor_at(*n);
        let at_target = *n == TARGET_PETS;
        let at_10m = *n == TARGET_PETS_10M;
        let size = format!("{} pets", int(*n));
        t.push_str(&format!(
            "| startup: seed the database (`livepet seed`) | {size} | {:.2} s | | | | |\n",
            p.seed_s
        ));
        t.push_str(&format!(
            "| startup: all pets alive (server's `livepet_startup_seconds`; process start → /metrics shows every pet alive) | {size} | {:.2} s ({} pets/s); from process start {:.2} s | {} | {} | {} | {} |\n",
            p.alive_s,
            int((*n as f64 / p.alive_s.max(1e-9)) as u64),
            p.alive_wall_s,
            f.as_ref().map(|f| format!("{:.2} s ({} actors/s)", f.alive_s, int((*n as f64 / f.alive_s.max(1e-9)) as u64))).unwrap_or_default(),
            f.as_ref().map(|f| ratio(p.alive_s, f.alive_s)).unwrap_or_default(),
            if at_10m { "alive ≤ 30 s after start" } else { "" },
            if at_10m { verdict(p.alive_wall_s, TARGET_10M_ALIVE_S, " s") } else { String::new() },
        ));
        t.push_str(&format!(
            "| startup: process start → every pet alive and ticked once | {size} | {:.2} s ({} pets/s) | {} | {} | {} | {} |\n",
            p.ticked_s,
            int((*n as f64 / p.ticked_s.max(1e-9)) as u64),
            f.as_ref().map(|f| format!("{:.2} s", f.ticked_s)).unwrap_or_default(),
            f.as_ref().map(|f| ratio(p.ticked_s, f.ticked_s)).unwrap_or_default(),
            if at_target { "≤ 10 s" } else { "" },
            if at_target { verdict(p.ticked_s, TARGET_START_S, " s") } else { String::new() },
        ));
        t.push_str(&format!(
            "| memory: resident (/proc; /metrics said {}) | {size} | {} ({} B/pet) | {} | {} | {} | {} |\n",
            bytes(p.rss_metrics_bytes as f64),
            bytes(p.rss_bytes as f64),
            int(p.rss_bytes / n.max(&1)),
            f.as_ref().map(|f| format!("{} ({} B/actor)", bytes(f.rss_bytes as f64), int(f.rss_bytes / n.max(&1)))).unwrap_or_default(),
            f.as_ref().map(|f| ratio(p.rss_bytes as f64, f.rss_bytes as f64)).unwrap_or_default(),
            if at_target { "≤ 1.5 GB" } else if at_10m { "≤ 1.1 × the bare-actor floor per pet" } else { "" },
            if at_target {
                verdict(p.rss_bytes as f64 / 1e9, TARGET_RSS_BYTES / 1e9, " GB")
            } else if at_10m {
                match &f {
                    Some(f) if f.rss_bytes > 0 => verdict(
                        p.rss_bytes as f64 / f.rss_bytes as f64,
                        TARGET_10M_MEMORY_RATIO,
                        "×",
                    ),
                    _ => "no floor measured at this size (run with floor)".into(),
                }
            } else {
                String::new()
            },
        ));
        t.push_str(&format!(
            "| tick CPU, nobody watching ({:.0} s window, /proc) | {size} | {:.1} % of one core | {} | {} | {} | {} |\n",
            p.window_s,
            p.cpu_percent,
            f.as_ref().map(|f| format!("{:.1} %", f.cpu_percent)).unwrap_or_default(),
            f.as_ref().map(|f| ratio(p.cpu_percent, f.cpu_percent)).unwrap_or_default(),
            if at_target { "≤ 25 %" } else { "" },
            if at_target { verdict(p.cpu_percent, TARGET_TICK_CPU, " points") } else { String::new() },
        ));
        if let Some(s) = &p.stop {
            let flush = match (s.flush_rows, s.flush_s) {
                (Some(rows), Some(secs)) => {
                    format!(
                        "; the log's final flush wrote {} pets in {secs:.2} s",
                        int(rows)
                    )
                }
                _ => "; no final flush line in the log".into(),
            };
            let code = match (s.timed_out, s.exit_code) {
                (true, _) => "had not exited, killed".to_string(),
                (false, Some(c)) => format!("exit code {c}"),
                (false, None) => "ended by a signal".to_string(),
            };
            let exit_ok = !s.timed_out && s.exit_code == Some(0);
            t.push_str(&format!(
                "| shutdown: SIGTERM → process exit (graceful stop after the CPU window) | {size} | {:.2} s, {code}{flush} | | | exit 0{} | {}{} |\n",
                s.seconds,
                if at_10m { "; graceful stop ≤ 30 s" } else { "" },
                if exit_ok { "exit **met**".to_string() } else { format!("exit **missed** ({code})") },
                if at_10m { format!("; time {}", verdict(s.seconds, TARGET_10M_STOP_S, " s")) } else { String::new() },
            ));
        }
    }
    if r.idle.is_empty() {
        for (n, f) in &r.floor {
            t.push_str(&format!(
                "| floor only | {} actors | | alive {:.2} s, ticked {:.2} s, {} ({} B/actor), {:.1} % CPU | | | |\n",
                int(*n), f.alive_s, f.ticked_s, bytes(f.rss_bytes as f64), int(f.rss_bytes / n.max(&1)), f.cpu_percent
            ));
        }
    }
    for (name, p, target) in [
        ("SQLite", &r.persist_sqlite, TARGET_FLUSH_SQLITE_S),
        ("PostgreSQL", &r.persist_pg, TARGET_FLUSH_PG_S),
    ] {
        let Some(p) = p else { continue };
        let at_target = r.plan.pets == TARGET_PETS;
        let during = num(&p.latency_during, "p99");
        t.push_str(&format!(
            "| persist: full flush on {name}, while ticking | {} dirty pets | {:.2} s ({} rows/s); tick→client latency during the flush p50/p99/max {}/{}/{} ms over {} frames (outside it p99 {} ms); ticks during it ran late by p99 {} ms, max {} ms; frames missing {} | | | ≤ {target:.0} s, ticks unaffected | {} |\n",
            int(p.rows),
            p.seconds,
            int((p.rows as f64 / p.seconds.max(1e-9)) as u64),
            ms(&p.latency_during, "p50"),
            ms(&p.latency_during, "p99"),
            ms(&p.latency_during, "max"),
            int(num(&p.latency_during, "count") as u64),
            ms(&p.latency_outside, "p99"),
            ms(&p.lateness_during, "p99"),
            ms(&p.lateness_during, "max"),
            int(num(&p.load, "frames_missing") as u64),
            if at_target {
                let mut v = verdict(p.seconds, target, " s");
                v.push_str(&format!("; ticks: {}", verdict(during, TARGET_P99_MS, " ms p99")));
                v
            } else {
                String::new()
            },
        ));
    }
    for (m, v) in &r.viewers {
        let l = &v.load;
        let at_target = *m == TARGET_VIEWERS && r.plan.pets == TARGET_PETS;
        let missing = num(l, "frames_missing");
        t.push_str(&format!(
            "| viewers: WebSocket, each watching its pet, tick {} s ({:.0} s window) | {} viewers, {} pets alive | tick→client p50/p90/p99/max {}/{}/{}/{} ms; frames {} of {} expected (missing {}); feed round trip p50/p99 {:.1}/{:.1} ms ({} feeds); errors {}; connection failures {}; server {} RSS, {:.0} % of one core; load generator {:.0} % | | | p99 ≤ 100 ms, none missing, feed p99 ≤ 50 ms | {} |\n",
            r.plan.tick_ms / 1000,
            num(l, "window_s"),
            int(*m as u64),
            int(v.pets_alive as u64),
            ms(l, "tick_latency_ms.p50"),
            ms(l, "tick_latency_ms.p90"),
            ms(l, "tick_latency_ms.p99"),
            ms(l, "tick_latency_ms.max"),
            int(num(l, "frames_received") as u64),
            int(num(l, "frames_expected") as u64),
            int(missing as u64),
            num(l, "feed_rtt_ms.p50"),
            num(l, "feed_rtt_ms.p99"),
            int(num(l, "feed_rtt_ms.count") as u64),
            compact(&l["errors_by_code"]),
            int(num(l, "connection_failures") as u64),
            bytes(v.server_rss_bytes as f64),
            v.server_cpu_percent,
            num(l, "load_cpu_percent"),
            if at_target {
                format!(
                    "latency {}; missing {}; feed {}",
                    verdict(num(l, "tick_latency_ms.p99"), TARGET_P99_MS, " ms"),
                    if missing == 0.0 { "**met** (0)".to_string() } else { format!("**missed** ({missing})") },
                    verdict(num(l, "feed_rtt_ms.p99"), TARGET_FEED_P99_MS, " ms"),
                )
            } else {
                String::new()
            },
        ));
    }
    if let Some(s) = &r.storm {
        t.push_str(&bench_conn::storm_row(s, &r.plan));
    }
    for l in &r.limits {
        t.push_str(&bench_conn::limits_row(l, &r.plan));
    }
    if let Some(a) = &r.active {
        t.push_str(&bench_conn::active_row(a, &r.plan));
    }
    if let Some(h) = &r.http {
        let l = &h.load;
        t.push_str(&format!(
            "| http: `GET /api/pets/{{id}}`, keep-alive | 64 clients, {} pets alive | {} requests/s; p50/p99/max {:.2}/{:.2}/{:.1} ms; non-200 {}; server {:.0} % of one core | | | | |\n",
            int(r.plan.pets),
            int(num(l, "requests_per_second") as u64),
            num(l, "latency_ms.p50"),
            num(l, "latency_ms.p99"),
            num(l, "latency_ms.max"),
            compact(&l["non_200"]),
            h.server_cpu_percent,
        ));
    }
    if let Some(w) = &r.web {
        t.push_str(&w.rows(TARGET_WASM_GZ, TARGET_PAINT_MS));
    }
    if let Some(c) = &r.cluster {
        t.push_str(&bench_cluster::rows(c, &r.plan));
        notes.extend(c.notes.iter().map(|n| format!("cluster: {n}")));
    }
    if !notes.is_empty() {
        t.push('\n');
        for n in &notes {
            t.push_str(&format!("- {n}\n"));
        }
    }
    t.push('\n');
    t.push_str(END);
    let previous = std::fs::read_to_string(out).unwrap_or_default();
    Ok(match (previous.find(BEGIN), previous.find(END)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{t}{}", &previous[..b], &previous[e + END.len()..])
        }
        _ => format!("# LivePet benchmarks\n\nWritten by `cargo xtask bench` (see the README). Everything between the markers is\nrewritten by each full run; what is outside them is kept.\n\n{t}\n"),
    })
}

pub fn compact(v: &Value) -> String {
    match v.as_object() {
        Some(o) if o.is_empty() => "none".into(),
        Some(o) => o
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        None => "none".into(),
    }
}

/// The generated part of a report, for the terminal.
pub fn table_only(text: &str) -> &str {
    match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if e > b => &text[b + BEGIN.len()..e],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{BenchArgs, Stop};

    fn ten_million() -> Plan {
        let mut args = BenchArgs::quick();
        args.quick = false;
        args.pets = Some(TARGET_PETS_10M);
        Plan::new(&args)
    }

    #[test]
    fn ten_million_pets_get_their_sizes_and_timeouts() {
        let plan = ten_million();
        assert_eq!(plan.pet_sizes, vec![100_000, TARGET_PETS_10M]);
        assert!(
            crate::bench::startup_timeout(TARGET_PETS_10M) >= std::time::Duration::from_secs(1_600)
        );
    }

    #[test]
    fn ten_million_rows_carry_their_targets_and_verdicts() {
        let plan = ten_million();
        let machine = Machine::describe();
        let mut r = Results::new(&plan, &machine, "test");
        let n = TARGET_PETS_10M;
        r.idle.push((
            n,
            Idle {
                seed_s: 41.0,
                alive_s: 25.0,
                alive_wall_s: 27.0,
                ticked_s: 32.0,
                rss_bytes: 12 * n,
                rss_metrics_bytes: 12 * n,
                cpu_percent: 50.0,
                window_s: 60.0,
                stop: Some(Stop {
                    seconds: 35.0,
                    exit_code: Some(0),
                    timed_out: false,
                    flush_rows: Some(n),
                    flush_s: Some(21.0),
                }),
            },
        ));
        r.floor.push((
            n,
            Idle {
                rss_bytes: 10 * n,
                ..Idle::default()
            },
        ));
        let out = std::env::temp_dir().join(format!("bench-report-test-{}.md", std::process::id()));
        let text = render(&r, &out).expect("renders");
        let row = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row starting {start:?} in\n{text}"))
                .to_owned()
        };
        let alive = row("| startup: all pets alive");
        assert!(
            alive.contains("alive ≤ 30 s after start") && alive.contains("**met**"),
            "{alive}"
        );
        let memory = row("| memory: resident");
        assert!(
            memory.contains("≤ 1.1 × the bare-actor floor") && memory.contains("**missed**"),
            "{memory}"
        );
        let stop = row("| shutdown: SIGTERM");
        assert!(stop.contains("35.00 s, exit code 0"), "{stop}");
        assert!(stop.contains("10,000,000 pets in 21.00 s"), "{stop}");
        assert!(stop.contains("exit **met**; time **missed**"), "{stop}");
    }
}
