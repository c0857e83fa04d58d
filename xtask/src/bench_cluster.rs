//! The `cluster` measure of `cargo xtask bench`: three `livepet serve` nodes on this box, one
//! fresh PostgreSQL database and a nats-server of its own, with short cluster settings.
//!
//! 1. **Steady**: a third of the viewers connect to each node; each watches its own pet,
//!    wherever that pet lives, so about two thirds of the watches cross nodes. Tick→client
//!    latency of remote watches against local ones in the same run, frames missing, feed
//!    round trips.
//! 2. **`kill -9` of node3** while viewers on node1 watch: seconds until the survivors hold
//!    every pet alive again and every one of node3's pets has ticked again (their /metrics:
//!    `livepet_pets_alive`, `livepet_first_ticks_total`), and ticks lost per pet, read from
//!    the database (each row holds the state's age and the time it was produced).
//! 3. **SIGTERM of node2**: its exit, its `handed off N shard(s) (P pet(s)) in X s` line, the
//!    seconds until node1 ticks every one of its pets, and ticks lost per pet the same way.
//!
//! Ticks lost, from the database: a seeded pet (nobody feeds it) gains exactly one year a
//! tick, and its row's `updated_at` is the time of the tick that produced the stored age. So
//! between a row read before an event and one read after it, the pet is short of the clock
//! by `round(Δupdated_at / tick) − Δage` ticks: the ticks it made that were never stored
//! (a `kill -9`'s rollback, at most one persist interval), plus the tick slots that fell
//! while no node ran it (the outage or the move itself). The first part is also read
//! directly for a kill: how far the stored state was behind the pet at the kill.
//!
//! What livepet-load cannot tell yet is used when it can (see `LoadFeatures`): pet ids in
//! its samples (local against remote), ages going back as viewers see them (the exact
//! rollback), and viewers reconnecting to another node after theirs died.

use crate::bench::{self, Ctx, LoadTiming, Plan, Server};
use crate::bench_report::{compact, int, num, verdict};
use crate::bench_sys::{self, now_ms, Metrics, PgDb};
use crate::cluster::{self, SHARDS};
use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: usize = 3;
/// Short cluster settings, so that a lease runs out and a flush happens within seconds.
const TICK_MS: u64 = 1_000;
const PERSIST_MS: u64 = 2_000;
const LEASE_TTL_MS: u64 = 3_000;
const HEARTBEAT_MS: u64 = 500;
/// The seeded pets' owner (`livepet seed --owner`'s default).
const SEED_OWNER: &str = "seed@livepet.local";

/// DESIGN.md, "Performance targets", several nodes.
const TARGET_REMOTE_P99_MS: f64 = 100.0;
const TARGET_RECOVERY_S: f64 = 20.0;

/// Past these, a step is reported as not done instead of waited for any longer.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(120);
const TERM_DEADLINE: Duration = Duration::from_secs(180);
const FLUSHED_DEADLINE: Duration = Duration::from_secs(60);

/// Why the measure cannot run here, if it cannot.
pub fn cannot_run(ctx: &Ctx) -> Option<String> {
    if ctx.pg_admin.is_none() {
        return Some(format!(
            "it needs PostgreSQL: {}",
            ctx.pg_note.clone().unwrap_or_default()
        ));
    }
    // Until the server has cluster mode (it is being built), this measure skips instead of
    // failing `cargo xtask test`, which runs `bench --quick`.
    let help = bench_sys::output(Command::new(&ctx.livepet).args(["serve", "--help"]));
    if !help.is_some_and(|h| h.contains("--nats-url")) {
        return Some(format!(
            "{} has no `serve --nats-url` (cluster mode not built in)",
            ctx.livepet.display()
        ));
    }
    if cluster::nats_server_binary().is_none() {
        return Some(format!(
            "nats-server is not installed; {}",
            cluster::NATS_INSTALL_HINT
        ));
    }
    None
}

/// What this build of livepet-load can do beyond one `--url` and its samples.
#[derive(Debug, Clone, Copy, Default)]
struct LoadFeatures {
    /// `--url` repeated and `--reconnect`: a viewer whose node goes away reconnects to the
    /// next URL and watches again; RESULT has `reconnects`.
    reconnect: bool,
    /// `--rollbacks-out FILE`: a line `receive_ms pet_id from_age to_age` for every `pet`
    /// frame whose age is below the highest the viewer had seen.
    rollbacks_out: bool,
}

impl LoadFeatures {
    fn probe(load: &Path) -> LoadFeatures {
        let help =
            bench_sys::output(Command::new(load).args(["viewers", "--help"])).unwrap_or_default();
        LoadFeatures {
            reconnect: help.contains("--reconnect"),
            rollbacks_out: help.contains("--rollbacks-out"),
        }
    }
}

/// Everything the measure found; `None` fields are steps that did not complete.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub pets: u64,
    pub viewers: usize,
    /// Spawn → every node ready, all shards owned, every pet alive.
    pub ready_s: f64,
    pub pets_per_node: Vec<u64>,
    pub shards_per_node: Vec<u64>,
    pub steady: Steady,
    pub kill: Option<Kill>,
    pub term: Option<Term>,
    /// RESULTs of the loads that watched through the two failures.
    pub fault_loads: Vec<Value>,
    pub notes: Vec<String>,
}

/// Viewers in steady state, one load generator per node.
#[derive(Debug, Clone, Default)]
pub struct Steady {
    pub loads: Vec<Value>,
    /// Whether the samples named their pets, so local and remote could be told apart.
    pub split: bool,
    pub local: Value,
    pub remote: Value,
    pub all: Value,
    /// Samples left out because their pet's shard changed owner during the window.
    pub moved: usize,
}

/// Per-pet tick accounting from two reads of the database.
#[derive(Debug, Clone, Default)]
pub struct TickLoss {
    /// Seeded pets compared.
    pub pets: usize,
    /// Ticks short of the clock between the two reads.
    pub short: Value,
    /// Kill only: ticks the stored state was behind the pet at the kill.
    pub behind: Value,
    /// Tick slots an outage or move of this length can account for (ceil(gap / tick)).
    pub gap_slots: i64,
    /// Pets whose shortfall the stored state and the gap do not explain (more lost, or
    /// more gained than the clock allows: ticked on two nodes).
    pub unexplained: usize,
    /// Pets left out: a row written after the event already, or none afterwards.
    pub excluded: usize,
}

/// What viewers on the surviving node saw during one failure (from their samples).
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub latency: Value,
    /// The longest time between two consecutive tick frames of one pet.
    pub longest_gap_ms: f64,
    /// Ages going back, when livepet-load reports them: (frames, most ticks back).
    pub rollbacks: Option<(u64, i64)>,
    /// The reconnect report of the viewers on the failed node, when livepet-load reconnects.
    pub reconnects: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct Kill {
    pub node: String,
    /// When the signal went (epoch ms).
    pub at_ms: i64,
    pub pets: u64,
    pub shards: usize,
    pub alive_s: Option<f64>,
    pub ticked_s: Option<f64>,
    pub owned_s: Option<f64>,
    pub ticks: Option<TickLoss>,
    pub seen: Seen,
}

#[derive(Debug, Clone, Default)]
pub struct Term {
    pub node: String,
    /// When the signal went (epoch ms).
    pub at_ms: i64,
    pub pets: u64,
    pub shards: usize,
    pub exit_s: Option<f64>,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// From its log: shards, pets, seconds.
    pub handed_off: Option<(u64, u64, f64)>,
    pub ticked_s: Option<f64>,
    pub ticks: Option<TickLoss>,
    pub seen: Seen,
}

impl Cluster {
    pub fn json(&self) -> Value {
        let ticks = |t: &Option<TickLoss>| {
            t.as_ref().map(|t| {
                json!({"pets": t.pets, "short": t.short, "behind": t.behind,
                    "gap_slots": t.gap_slots, "unexplained": t.unexplained, "excluded": t.excluded})
            })
        };
        let seen = |s: &Seen| {
            json!({"latency": s.latency, "longest_gap_ms": s.longest_gap_ms,
                "rollbacks": s.rollbacks, "reconnects": s.reconnects})
        };
        json!({
            "pets": self.pets, "viewers": self.viewers, "ready_s": self.ready_s,
            "pets_per_node": self.pets_per_node, "shards_per_node": self.shards_per_node,
            "steady": {"loads": self.steady.loads, "split": self.steady.split,
                "local": self.steady.local, "remote": self.steady.remote,
                "all": self.steady.all, "moved": self.steady.moved},
            "kill": self.kill.as_ref().map(|k| json!({"node": k.node, "pets": k.pets,
                "shards": k.shards, "alive_s": k.alive_s, "ticked_s": k.ticked_s,
                "owned_s": k.owned_s, "ticks": ticks(&k.ticks), "seen": seen(&k.seen)})),
            "term": self.term.as_ref().map(|t| json!({"node": t.node, "pets": t.pets,
                "shards": t.shards, "exit_s": t.exit_s, "exit_code": t.exit_code,
                "timed_out": t.timed_out, "handed_off": t.handed_off, "ticked_s": t.ticked_s,
                "ticks": ticks(&t.ticks), "seen": seen(&t.seen)})),
            "fault_loads": self.fault_loads, "notes": self.notes,
        })
    }
}

/// The three nodes; a node that was killed or stopped is `None`.
struct Nodes {
    servers: Vec<Option<Server>>,
    names: Vec<String>,
}

impl Nodes {
    fn addr(&self, i: usize) -> Result<&str> {
        self.servers[i]
            .as_ref()
            .map(|s| s.addr.as_str())
            .with_context(|| format!("{} is not running", self.names[i]))
    }

    fn url(&self, i: usize) -> Result<String> {
        Ok(format!("http://{}", self.addr(i)?))
    }

    /// Keeps the running nodes' output moving and fails if one of them died.
    fn tend(&mut self) -> Result<()> {
        for s in self.servers.iter_mut().flatten() {
            s.proc.drain();
            s.proc.check_alive()?;
        }
        Ok(())
    }

    /// Waits until `until_ms` (epoch ms), tending the nodes.
    fn idle_until(&mut self, until_ms: i64) -> Result<()> {
        while now_ms() < until_ms {
            self.tend()?;
            std::thread::sleep(Duration::from_millis(
                (until_ms - now_ms()).clamp(0, 200) as u64
            ));
        }
        Ok(())
    }

    /// One gauge or counter summed over the running nodes in `which`.
    fn sum(&self, which: &[usize], name: &str) -> Result<f64> {
        let mut total = 0.0;
        for &i in which {
            total += Metrics::scrape(self.addr(i)?)?.need(name)?;
        }
        Ok(total)
    }
}

pub fn measure(ctx: &Ctx) -> Result<Cluster> {
    let plan = &ctx.plan;
    let admin = ctx
        .pg_admin
        .as_deref()
        .context("the cluster measure needs PostgreSQL")?;
    let nats_bin = cluster::nats_server_binary().context("nats-server is not installed")?;
    let features = LoadFeatures::probe(&ctx.load);
    let n = plan.cluster_pets;
    let mut out = Cluster {
        pets: n,
        viewers: plan.cluster_viewers,
        ..Cluster::default()
    };
    if !features.reconnect {
        out.notes.push("viewers' reconnect time not measured: this livepet-load has no `--reconnect` (viewers on a node that goes away just stop)".into());
    }

    let nats = cluster::start_nats(&nats_bin, &ctx.dir.join("cluster-nats.log"))?;
    println!("    nats-server at {}", nats.url);
    let db = PgDb::create(admin, "cluster")?;
    bench::seed(ctx, &db.url, n, "cluster")?;
    let owner = seed_owner(&db.url)?;

    // All three start together, as after a deploy.
    let began = Instant::now();
    let names: Vec<String> = (1..=NODES).map(|i| format!("node{i}")).collect();
    let mut procs = Vec::new();
    for name in &names {
        let extra = [
            "--nats-url",
            &nats.url,
            "--node-name",
            name,
            "--persist-ms",
            &PERSIST_MS.to_string(),
            "--lease-ttl-ms",
            &LEASE_TTL_MS.to_string(),
            "--heartbeat-ms",
            &HEARTBEAT_MS.to_string(),
        ];
        let tag = format!("cluster-{name}");
        procs.push(bench::serve_spawn(
            ctx, &db.url, &tag, TICK_MS, &extra, None,
        )?);
    }
    let mut servers = Vec::new();
    for p in procs {
        servers.push(Some(bench::listening(p, bench::startup_timeout(n))?));
    }
    let mut nodes = Nodes { servers, names };
    let all: Vec<usize> = (0..NODES).collect();
    wait_cluster_ready(&mut nodes, n, bench::startup_timeout(n))?;
    out.ready_s = began.elapsed().as_secs_f64();
    for i in 0..NODES {
        let m = Metrics::scrape(nodes.addr(i)?)?;
        out.pets_per_node
            .push(m.get("livepet_pets_alive").unwrap_or(0.0) as u64);
        out.shards_per_node
            .push(m.get("livepet_owned_shards").unwrap_or(0.0) as u64);
    }
    println!(
        "    every node ready after {:.1} s; pets per node {:?}, shards {:?}",
        out.ready_s, out.pets_per_node, out.shards_per_node
    );

    out.steady = steady(ctx, &mut nodes, &db.url)?;

    // The failures, watched by viewers on node1, which survives both (and, when the load
    // generator can reconnect, by viewers on the two nodes that go away).
    let per_node = plan.cluster_viewers.div_ceil(NODES).max(1);
    let timing = LoadTiming {
        tick_ms: TICK_MS,
        duration_s: plan.cluster_fault_window_s,
        warmup_s: if plan.quick { 1.0 } else { 2.0 },
    };
    let watchers: Vec<usize> = if features.reconnect {
        all.clone()
    } else {
        vec![0]
    };
    let mut loads = Vec::new();
    for &i in &watchers {
        let tag = format!("cluster-faults-{}", nodes.names[i]);
        let samples = ctx.dir.join(format!("{tag}-samples.txt"));
        let rollbacks = ctx.dir.join(format!("{tag}-rollbacks.txt"));
        let mut extra = Vec::new();
        if features.reconnect && i != 0 {
            extra.extend(["--url".to_string(), nodes.url(0)?, "--reconnect".into()]);
        }
        if features.rollbacks_out {
            extra.extend([
                "--rollbacks-out".to_string(),
                rollbacks.display().to_string(),
            ]);
        }
        let load = bench::load_viewers_at(
            ctx,
            &nodes.url(i)?,
            per_node,
            timing,
            Some(&samples),
            &tag,
            &extra,
        )?;
        loads.push((i, load, samples, rollbacks));
    }
    let mut window = (0i64, 0i64);
    for (_, load, _, _) in &mut loads {
        let (s, e) = load.window()?;
        window = (window.0.max(s), window.1.max(e));
    }
    let kill_at = window.0 + if plan.quick { 2_000 } else { 5_000 };
    nodes.idle_until(kill_at)?;

    let kill = kill_node(&mut nodes, &db.url, owner, 2, &[0, 1])?;
    let recovered = kill.ticked_s.is_some();
    let t_kill_ms = kill.at_ms;
    out.kill = Some(kill);
    let mut term_began = i64::MAX;
    if recovered {
        let term = term_node(&mut nodes, &db.url, owner, 1, 0)?;
        term_began = term.at_ms;
        out.term = Some(term);
    } else {
        out.notes.push(
            "SIGTERM step skipped: the survivors did not recover from the kill in time".into(),
        );
    }
    let term_ended = now_ms();
    if term_ended > window.1 {
        out.notes.push(format!(
            "the failures outlasted the viewers' {:.0} s window by {:.1} s: what the viewers saw covers only part of them",
            plan.cluster_fault_window_s,
            (term_ended - window.1) as f64 / 1000.0
        ));
    }
    nodes.idle_until(window.1)?;
    let mut seen_by: HashMap<usize, (Vec<Sample>, Vec<Rollback>)> = HashMap::new();
    for (i, mut load, samples, rollbacks) in loads {
        // A load whose node went away without reconnecting ends early; its report still
        // comes (the viewers report closing early).
        let result = load.result()?;
        out.fault_loads.push(result);
        seen_by.insert(i, (read_samples(&samples), read_rollbacks(&rollbacks)));
    }
    let phase = |from: i64, to: i64| -> Seen {
        let (samples, rollbacks) = seen_by.get(&0).cloned().unwrap_or_default();
        seen_in(&samples, &rollbacks, from, to, features.rollbacks_out)
    };
    if let Some(k) = &mut out.kill {
        k.seen = phase(t_kill_ms, term_began);
        if features.reconnect {
            k.seen.reconnects = out
                .fault_loads
                .get(watchers.iter().position(|&i| i == 2).unwrap_or(usize::MAX))
                .map(|r| r["reconnects"].clone());
        }
    }
    if let Some(t) = &mut out.term {
        t.seen = phase(term_began, i64::MAX);
        if features.reconnect {
            t.seen.reconnects = out
                .fault_loads
                .get(watchers.iter().position(|&i| i == 1).unwrap_or(usize::MAX))
                .map(|r| r["reconnects"].clone());
        }
    }

    // What is left: node1 stops gracefully; the database and nats-server go with their
    // guards.
    for s in nodes.servers.iter_mut().flatten() {
        let _ = s.proc.terminate(Duration::from_secs(120));
    }
    drop(nats);
    drop(db);
    println!("    {}", summary(&out));
    Ok(out)
}

/// Every node answers 200 on /readyz, they own the 1,024 shards between them and hold
/// every pet alive (`n`, plus any adopted since).
fn wait_cluster_ready(nodes: &mut Nodes, n: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        nodes.tend()?;
        let mut ready = 0;
        let (mut owned, mut alive) = (0.0, 0.0);
        let mut states = Vec::new();
        for i in 0..NODES {
            let addr = nodes.addr(i)?.to_owned();
            match cluster::readyz(&addr) {
                Ok(r) => {
                    ready += usize::from(r.ready());
                    states.push(format!("{} {}", nodes.names[i], r.describe()));
                }
                Err(e) => states.push(format!("{} /readyz: {e:#}", nodes.names[i])),
            }
            if let Ok(m) = Metrics::scrape(&addr) {
                owned += m.get("livepet_owned_shards").unwrap_or(0.0);
                alive += m.get("livepet_pets_alive").unwrap_or(0.0);
            }
        }
        if ready == NODES && owned as u64 == SHARDS && alive >= n as f64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the cluster was not ready within {timeout:?}: {}; {owned} of {SHARDS} shards owned, {alive} of {n} pets alive",
                states.join("; ")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A third of the viewers on each node, all measured over the same stretch of time.
fn steady(ctx: &Ctx, nodes: &mut Nodes, db_url: &str) -> Result<Steady> {
    let plan = &ctx.plan;
    let per_node = plan.cluster_viewers.div_ceil(NODES).max(1);
    let timing = LoadTiming {
        tick_ms: TICK_MS,
        duration_s: plan.cluster_window_s,
        warmup_s: if plan.quick { 1.0 } else { 10.0 },
    };
    let mut loads = Vec::new();
    for i in 0..NODES {
        let tag = format!("cluster-steady-{}", nodes.names[i]);
        let samples = ctx.dir.join(format!("{tag}-samples.txt"));
        let load = bench::load_viewers_at(
            ctx,
            &nodes.url(i)?,
            per_node,
            timing,
            Some(&samples),
            &tag,
            &[],
        )?;
        loads.push((i, load, samples));
    }
    let mut end = 0;
    for (_, load, _) in &mut loads {
        end = end.max(load.window()?.1);
    }
    let owners_before = shard_owners(db_url)?;
    nodes.idle_until(end)?;
    let mut out = Steady::default();
    let mut by_node = Vec::new();
    for (i, mut load, samples) in loads {
        out.loads.push(load.result()?);
        by_node.push((i, read_samples(&samples)));
    }
    let owners_after = shard_owners(db_url)?;
    let (mut local, mut remote, mut all) = (Vec::new(), Vec::new(), Vec::new());
    out.split = by_node
        .iter()
        .all(|(_, s)| !s.is_empty() && s.iter().all(|x| x.pet.is_some()));
    for (i, samples) in &by_node {
        for s in samples {
            all.push(s.ms);
            let Some(pet) = s.pet else { continue };
            let shard = pet.rem_euclid(SHARDS as i64);
            match (owners_before.get(&shard), owners_after.get(&shard)) {
                (Some(a), Some(b)) if a == b => {
                    if *a == nodes.names[*i] {
                        local.push(s.ms);
                    } else {
                        remote.push(s.ms);
                    }
                }
                _ => out.moved += 1,
            }
        }
    }
    out.local = bench::percentiles(local);
    out.remote = bench::percentiles(remote);
    out.all = bench::percentiles(all);
    println!(
        "    steady: remote p99 {} ms, local p99 {} ms, all p99 {} ms ({})",
        out.remote["p99"],
        out.local["p99"],
        out.all["p99"],
        if out.split {
            "samples named their pets"
        } else {
            "samples name no pet: local and remote not told apart"
        }
    );
    Ok(out)
}

/// `kill -9` of node `victim`; the survivors must start its pets.
fn kill_node(
    nodes: &mut Nodes,
    db_url: &str,
    owner: i64,
    victim: usize,
    survivors: &[usize],
) -> Result<Kill> {
    let name = nodes.names[victim].clone();
    let everyone: Vec<usize> = (0..NODES).filter(|i| nodes.servers[*i].is_some()).collect();
    let total = nodes.sum(&everyone, "livepet_pets_alive")?;
    let pets = nodes.sum(&[victim], "livepet_pets_alive")?;
    let first_before = nodes.sum(survivors, "livepet_first_ticks_total")?;
    let shards = leased_shards(db_url, &name)?;
    step_line(&format!(
        "kill -9 of {name} ({} pets, {} shards)",
        pets,
        shards.len()
    ));
    let t_kill = now_ms();
    let began = Instant::now();
    if let Some(mut s) = nodes.servers[victim].take() {
        s.proc.kill();
    }
    // What the survivors will load: nothing can write these rows until one of them holds
    // the lease, at least a lease TTL from now.
    let before = seeded_rows(db_url, owner, &shards)?;
    let mut k = Kill {
        node: name,
        at_ms: t_kill,
        pets: pets as u64,
        shards: shards.len(),
        ..Kill::default()
    };
    while began.elapsed() < RECOVERY_DEADLINE {
        nodes.tend()?;
        let alive = nodes.sum(survivors, "livepet_pets_alive")?;
        let first = nodes.sum(survivors, "livepet_first_ticks_total")?;
        let owned = nodes.sum(survivors, "livepet_owned_shards")?;
        let t = began.elapsed().as_secs_f64();
        if k.alive_s.is_none() && alive >= total {
            k.alive_s = Some(t);
        }
        if k.owned_s.is_none() && owned as u64 >= SHARDS {
            k.owned_s = Some(t);
        }
        if alive >= total && first - first_before >= pets {
            k.ticked_s = Some(t);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(ticked_s) = k.ticked_s else {
        println!(
            "    not every pet of {} ticked again within {} s",
            k.node,
            RECOVERY_DEADLINE.as_secs()
        );
        return Ok(k);
    };
    let recovered_at = t_kill + (ticked_s * 1000.0) as i64;
    let after = rows_after(nodes, db_url, owner, &shards, recovered_at)?;
    k.ticks = Some(tick_loss(&before, &after, t_kill, Some(t_kill), ticked_s));
    println!(
        "    alive again after {:?} s, ticked after {ticked_s:.2} s; ticks short {}",
        k.alive_s,
        k.ticks
            .as_ref()
            .map(|t| t.short.clone())
            .unwrap_or_default()
    );
    Ok(k)
}

/// SIGTERM of node `victim`; `heir` must tick its pets.
fn term_node(
    nodes: &mut Nodes,
    db_url: &str,
    owner: i64,
    victim: usize,
    heir: usize,
) -> Result<Term> {
    let name = nodes.names[victim].clone();
    let total = nodes.sum(&[victim, heir], "livepet_pets_alive")?;
    let pets = nodes.sum(&[victim], "livepet_pets_alive")?;
    let first_before = nodes.sum(&[heir], "livepet_first_ticks_total")?;
    let shards = leased_shards(db_url, &name)?;
    let before = seeded_rows(db_url, owner, &shards)?;
    step_line(&format!(
        "SIGTERM of {name} ({} pets, {} shards)",
        pets,
        shards.len()
    ));
    let t_term = now_ms();
    let began = Instant::now();
    let mut t = Term {
        node: name,
        at_ms: t_term,
        pets: pets as u64,
        shards: shards.len(),
        ..Term::default()
    };
    let mut server = nodes.servers[victim]
        .take()
        .context("the node to stop is not running")?;
    server.proc.signal("TERM")?;
    loop {
        for line in server.proc.drain() {
            if let Some(h) = handed_off(&line) {
                t.handed_off = Some(h);
            }
        }
        if t.exit_s.is_none() {
            if let Some(status) = server.proc.child.try_wait()? {
                t.exit_s = Some(began.elapsed().as_secs_f64());
                t.exit_code = status.code();
            }
        }
        nodes.tend()?;
        if t.ticked_s.is_none() {
            let alive = nodes.sum(&[heir], "livepet_pets_alive")?;
            let first = nodes.sum(&[heir], "livepet_first_ticks_total")?;
            if alive >= total && first - first_before >= pets {
                t.ticked_s = Some(began.elapsed().as_secs_f64());
            }
        }
        if t.exit_s.is_some() && t.ticked_s.is_some() {
            break;
        }
        if began.elapsed() > TERM_DEADLINE {
            if t.exit_s.is_none() {
                t.timed_out = true;
                server.proc.kill();
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last lines, written just before it exited.
    for line in server.proc.drain_to_end(Duration::from_secs(2)) {
        if let Some(h) = handed_off(&line) {
            t.handed_off = Some(h);
        }
    }
    if let Some(ticked_s) = t.ticked_s {
        let moved_at = t_term + (ticked_s * 1000.0) as i64;
        let after = rows_after(nodes, db_url, owner, &shards, moved_at)?;
        t.ticks = Some(tick_loss(&before, &after, t_term, None, ticked_s));
    }
    println!(
        "    exit {:?} after {:?} s; handed off {:?}; ticking on the heir after {:?} s; ticks short {}",
        t.exit_code,
        t.exit_s,
        t.handed_off,
        t.ticked_s,
        t.ticks.as_ref().map(|x| x.short.clone()).unwrap_or_default()
    );
    Ok(t)
}

fn step_line(what: &str) {
    println!("    {what}");
}

/// `(shards, pets, seconds)` from `… handed off 341 shard(s) (33,412 pet(s)) in 0.42 s`.
fn handed_off(line: &str) -> Option<(u64, u64, f64)> {
    let rest = &line[line.find("handed off ")? + "handed off ".len()..];
    let (shards, rest) = rest.split_once(" shard")?;
    let pets = rest.split_once(" (")?.1.split_once(" pet")?.0;
    let secs = rest.split_once(" in ")?.1.split_whitespace().next()?;
    Some((
        shards.trim().replace(',', "").parse().ok()?,
        pets.trim().replace(',', "").parse().ok()?,
        secs.trim_end_matches('s').parse().ok()?,
    ))
}

/// A seeded pet's row: (id, age, updated_at in epoch ms).
type Row = (i64, i64, i64);

fn seed_owner(db_url: &str) -> Result<i64> {
    let rows = bench_sys::psql_rows(
        db_url,
        &format!("SELECT id FROM users WHERE email = '{SEED_OWNER}'"),
    )?;
    rows.first()
        .and_then(|r| r.parse().ok())
        .with_context(|| format!("no user {SEED_OWNER} after `livepet seed`"))
}

/// PostgreSQL's clock in epoch ms, as the leases are written.
const PG_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Shard → owner, of the leases that have not run out.
fn shard_owners(db_url: &str) -> Result<HashMap<i64, String>> {
    let rows = bench_sys::psql_rows(
        db_url,
        &format!("SELECT shard, node FROM shard_leases WHERE expires_at > {PG_NOW_MS}"),
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let (shard, node) = r.split_once(' ')?;
            Some((shard.parse().ok()?, node.to_owned()))
        })
        .collect())
}

fn leased_shards(db_url: &str, node: &str) -> Result<Vec<i64>> {
    Ok(shard_owners(db_url)?
        .into_iter()
        .filter(|(_, n)| n == node)
        .map(|(s, _)| s)
        .collect())
}

fn in_shards(shards: &[i64]) -> String {
    let list = shards
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!("id % {SHARDS} = ANY('{{{list}}}'::bigint[])")
}

fn seeded_rows(db_url: &str, owner: i64, shards: &[i64]) -> Result<Vec<Row>> {
    let rows = bench_sys::psql_rows(
        db_url,
        &format!(
            "SELECT id, age, updated_at FROM pets WHERE is_alive AND user_id = {owner} AND {}",
            in_shards(shards)
        ),
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let mut it = r.split(' ').map(|v| v.parse::<i64>().ok());
            Some((it.next()??, it.next()??, it.next()??))
        })
        .collect())
}

/// The rows again once every one of them was written after `since_ms` (a flush by the
/// new owner), polled with a deadline; whatever is there then.
fn rows_after(
    nodes: &mut Nodes,
    db_url: &str,
    owner: i64,
    shards: &[i64],
    since_ms: i64,
) -> Result<HashMap<i64, (i64, i64)>> {
    let deadline = Instant::now() + FLUSHED_DEADLINE;
    loop {
        nodes.tend()?;
        let left = bench_sys::psql_rows(
            db_url,
            &format!(
                "SELECT count(*) FROM pets WHERE is_alive AND user_id = {owner} AND {} AND updated_at <= {since_ms}",
                in_shards(shards)
            ),
        )?;
        let left: u64 = left.first().and_then(|v| v.parse().ok()).unwrap_or(0);
        if left == 0 || Instant::now() > deadline {
            if left > 0 {
                println!(
                    "    {left} pet row(s) not rewritten by their new owner within {} s",
                    FLUSHED_DEADLINE.as_secs()
                );
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(seeded_rows(db_url, owner, shards)?
        .into_iter()
        .map(|(id, age, at)| (id, (age, at)))
        .collect())
}

/// Per-pet accounting between the rows read around an event at `event_ms` (see the module
/// comment). `kill_ms`: a kill, whose stored states' lag is read too. `gap_s`: from the
/// event until every pet ticked elsewhere.
fn tick_loss(
    before: &[Row],
    after: &HashMap<i64, (i64, i64)>,
    event_ms: i64,
    kill_ms: Option<i64>,
    gap_s: f64,
) -> TickLoss {
    let tick = TICK_MS as i64;
    let gap_slots = ((gap_s * 1000.0) / TICK_MS as f64).ceil() as i64;
    let persist_slots = (PERSIST_MS as i64).div_euclid(tick) + 1;
    let (mut short, mut behind) = (Vec::new(), Vec::new());
    let (mut unexplained, mut excluded) = (0, 0);
    for &(id, age_a, at_a) in before {
        let Some(&(age_b, at_b)) = after.get(&id) else {
            excluded += 1;
            continue;
        };
        if at_a > event_ms || at_b <= at_a {
            excluded += 1;
            continue;
        }
        let slots = ((at_b - at_a) as f64 / tick as f64).round() as i64;
        let lost = slots - (age_b - age_a);
        short.push(lost as f64);
        // One slot either way: the new owner's tick grid need not line up with the old one's.
        let mut explained_by = gap_slots + 1;
        if let Some(k) = kill_ms {
            let lag = (k - at_a).div_euclid(tick);
            behind.push(lag as f64);
            explained_by += lag.min(persist_slots);
        }
        if lost > explained_by || lost < -1 {
            unexplained += 1;
        }
    }
    TickLoss {
        pets: short.len(),
        short: bench::percentiles(short),
        behind: bench::percentiles(behind),
        gap_slots,
        unexplained,
        excluded,
    }
}

/// One line of livepet-load's `--samples-out`: `receive_ms latency_ms interval_ms`, and the
/// pet id as a fourth column when it writes one.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: i64,
    ms: f64,
    interval: i64,
    pet: Option<i64>,
}

fn read_samples(path: &Path) -> Vec<Sample> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some(Sample {
                at: it.next()?.parse::<f64>().ok()? as i64,
                ms: it.next()?.parse().ok()?,
                interval: it.next()?.parse::<f64>().ok()? as i64,
                pet: it.next().and_then(|p| p.parse().ok()),
            })
        })
        .collect()
}

/// A line of `--rollbacks-out`: `receive_ms pet_id from_age to_age`.
#[derive(Debug, Clone, Copy)]
struct Rollback {
    at: i64,
    ticks: i64,
}

fn read_rollbacks(path: &Path) -> Vec<Rollback> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let v: Vec<i64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() >= 4).then(|| Rollback {
                at: v[0],
                ticks: v[2] - v[3],
            })
        })
        .collect()
}

fn seen_in(
    samples: &[Sample],
    rollbacks: &[Rollback],
    from: i64,
    to: i64,
    rollbacks_known: bool,
) -> Seen {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .collect();
    let back: Vec<&Rollback> = rollbacks
        .iter()
        .filter(|r| r.at >= from && r.at < to)
        .collect();
    Seen {
        latency: bench::percentiles(inside.iter().map(|s| s.ms).collect()),
        longest_gap_ms: inside.iter().map(|s| s.interval as f64).fold(0.0, f64::max),
        rollbacks: rollbacks_known.then(|| {
            (
                back.len() as u64,
                back.iter().map(|r| r.ticks).max().unwrap_or(0),
            )
        }),
        reconnects: None,
    }
}

fn summary(c: &Cluster) -> String {
    format!(
        "cluster: ready {:.1} s; remote p99 {} ms; kill recovered in {:?} s; SIGTERM exit {:?}",
        c.ready_s,
        c.steady.remote["p99"],
        c.kill.as_ref().and_then(|k| k.ticked_s),
        c.term.as_ref().and_then(|t| t.exit_code)
    )
}

fn secs(v: Option<f64>) -> String {
    v.map_or("not within the deadline".into(), |s| format!("{s:.2} s"))
}

fn pct(v: &Value, key: &str) -> String {
    format!("{:.0}", num(v, key))
}

/// The rows of BENCHMARKS.md.
pub fn rows(c: &Cluster, plan: &Plan) -> String {
    let judge = !plan.quick;
    let all_shards = int(SHARDS);
    let settings = format!(
        "tick {} s, persist {} s, lease {} s, heartbeat {} s",
        TICK_MS as f64 / 1000.0,
        PERSIST_MS as f64 / 1000.0,
        LEASE_TTL_MS as f64 / 1000.0,
        HEARTBEAT_MS as f64 / 1000.0
    );
    let mut t = String::new();
    let list = |v: &[u64]| v.iter().map(|x| int(*x)).collect::<Vec<_>>().join(" / ");
    t.push_str(&format!(
        "| cluster: {NODES} nodes on this box start together ({settings}; one PostgreSQL database, one nats-server) | {} pets | every node ready (/readyz 200, all {all_shards} shards owned, every pet alive) {:.1} s after the start; pets per node {}, shards {} | | | | |\n",
        int(c.pets),
        c.ready_s,
        list(&c.pets_per_node),
        list(&c.shards_per_node),
    ));

    // Steady viewers.
    let s = &c.steady;
    let sum = |key: &str| s.loads.iter().map(|l| num(l, key)).sum::<f64>();
    let missing = sum("frames_missing");
    let feeds: Vec<String> = s
        .loads
        .iter()
        .map(|l| format!("{:.1}", num(l, "feed_rtt_ms.p99")))
        .collect();
    let mut errors = serde_json::Map::new();
    for l in &s.loads {
        for (code, n) in l["errors_by_code"].as_object().into_iter().flatten() {
            let sum = errors.get(code).and_then(Value::as_f64).unwrap_or(0.0);
            errors.insert(code.clone(), json!(sum + n.as_f64().unwrap_or(0.0)));
        }
    }
    let errors = compact(&Value::Object(errors));
    let window = s.loads.first().map_or(0.0, |l| num(l, "window_s"));
    let latency = if s.split {
        format!(
            "**remote watches** (the pet on another node) tick→client p50/p99/max {}/{}/{} ms over {} frames; local watches {}/{}/{} ms over {} frames",
            pct(&s.remote, "p50"),
            pct(&s.remote, "p99"),
            pct(&s.remote, "max"),
            int(num(&s.remote, "count") as u64),
            pct(&s.local, "p50"),
            pct(&s.local, "p99"),
            pct(&s.local, "max"),
            int(num(&s.local, "count") as u64),
        )
    } else {
        format!(
            "all watches (about two thirds remote; not told apart: livepet-load's samples name no pet) tick→client p50/p99/max {}/{}/{} ms over {} frames",
            pct(&s.all, "p50"),
            pct(&s.all, "p99"),
            pct(&s.all, "max"),
            int(num(&s.all, "count") as u64),
        )
    };
    let steady_verdict = if !judge {
        String::new()
    } else if s.split {
        format!(
            "remote {}; missing {}",
            verdict(num(&s.remote, "p99"), TARGET_REMOTE_P99_MS, " ms"),
            if missing == 0.0 {
                "**met** (0)".to_string()
            } else {
                format!("**missed** ({})", int(missing as u64))
            }
        )
    } else {
        "not judged: remote watches not told apart".into()
    };
    t.push_str(&format!(
        "| cluster: viewers, a third connected to each node, each watching its own pet wherever it lives (tick {} s, {window:.0} s window) | {} viewers, {} pets, {NODES} nodes | {latency}{}; frames {} of {} expected (missing {}); feed round trip p99 by node {} ms ({} feeds); errors {errors}; connection failures {} | | | a viewer watching a pet on another node: p99 ≤ 100 ms, none missing | {steady_verdict} |\n",
        TICK_MS / 1000,
        int(c.viewers as u64),
        int(c.pets),
        if s.moved > 0 { format!(" ({} frames left out: their shard moved)", int(s.moved as u64)) } else { String::new() },
        int(sum("frames_received") as u64),
        int(sum("frames_expected") as u64),
        int(missing as u64),
        feeds.join(" / "),
        int(sum("feed_rtt_ms.count") as u64),
        int(sum("connection_failures") as u64),
    ));

    let watch = c.fault_loads.first();
    let watched = |seen: &Seen| {
        let mut v = format!(
            "viewers on node1 meanwhile: tick→client p99 {} ms over {} frames, longest wait between two tick frames of one pet {:.1} s",
            pct(&seen.latency, "p99"),
            int(num(&seen.latency, "count") as u64),
            seen.longest_gap_ms / 1000.0
        );
        v.push_str(&match seen.rollbacks {
            Some((n, max)) => format!(", ages going back {n} time(s) (at most {max} ticks)"),
            None => ", ages going back: not counted by this livepet-load".into(),
        });
        v.push_str(&match &seen.reconnects {
            Some(r) if r.is_object() => format!(
                "; viewers on the node that went away reconnected to node1 in p50/p99/max {}/{}/{} ms ({} failed)",
                pct(r, "ms.p50"),
                pct(r, "ms.p99"),
                pct(r, "ms.max"),
                int(num(r, "failures") as u64)
            ),
            _ => "; viewers' reconnect: not measured (livepet-load cannot reconnect)".into(),
        });
        v
    };
    if let Some(k) = &c.kill {
        let ticks = match &k.ticks {
            Some(x) => format!(
                "ticks lost per pet (the stored state behind the pet at the kill, from the database) p50/max {}/{} over {} seeded pets; short of the clock from before the kill to after p50/max {}/{}, the outage accounting for up to {} slot(s); pets this does not explain {}{}",
                pct(&x.behind, "p50"),
                pct(&x.behind, "max"),
                int(x.pets as u64),
                pct(&x.short, "p50"),
                pct(&x.short, "max"),
                x.gap_slots,
                int(x.unexplained as u64),
                if x.excluded > 0 { format!(" ({} left out)", int(x.excluded as u64)) } else { String::new() },
            ),
            None => "ticks lost: not measured (no recovery)".into(),
        };
        let bound = PERSIST_MS / TICK_MS + 1;
        let v = if !judge {
            String::new()
        } else {
            let rec = match k.ticked_s {
                Some(s) => verdict(s, TARGET_RECOVERY_S, " s"),
                None => format!("**missed** (not within {} s)", RECOVERY_DEADLINE.as_secs()),
            };
            let ticks = match &k.ticks {
                Some(x) if x.unexplained == 0 && num(&x.behind, "max") <= bound as f64 => {
                    "**met**".to_string()
                }
                Some(x) => format!(
                    "**missed** (behind at most {}, unexplained {})",
                    pct(&x.behind, "max"),
                    x.unexplained
                ),
                None => "not measured".into(),
            };
            format!("recovery {rec}; ticks {ticks}")
        };
        t.push_str(&format!(
            "| cluster: `kill -9` of {} while viewers watch ({settings}) | {} pets on it, {} shards | the survivors had every pet alive again after {}, every one of its pets ticked again after **{}**, all {all_shards} shards owned after {}; {ticks}; {} | | | every pet ticks again within 20 s; at most one persist interval of ticking lost ({bound} ticks here, the tick in progress included) | {v} |\n",
            k.node,
            int(k.pets),
            k.shards,
            secs(k.alive_s),
            secs(k.ticked_s),
            secs(k.owned_s),
            watched(&k.seen),
        ));
    }
    if let Some(x) = &c.term {
        let code = match (x.timed_out, x.exit_code) {
            (true, _) => "had not exited, killed".to_string(),
            (false, Some(c)) => format!("exit code {c}"),
            (false, None) => "ended by a signal".into(),
        };
        let log = match x.handed_off {
            Some((s, p, secs)) => format!(
                "its log: handed off {} shard(s) ({} pet(s)) in **{secs:.2} s**",
                int(s),
                int(p)
            ),
            None => "no `handed off` line in its log".into(),
        };
        let ticks = match &x.ticks {
            Some(l) => format!(
                "per pet, ticks short of the clock across the move (database) p50/max {}/{} over {} seeded pets, the move itself accounting for up to {} slot(s); pets short by more {}{}",
                pct(&l.short, "p50"),
                pct(&l.short, "max"),
                int(l.pets as u64),
                l.gap_slots,
                int(l.unexplained as u64),
                if l.excluded > 0 { format!(" ({} left out)", int(l.excluded as u64)) } else { String::new() },
            ),
            None => "ticks lost: not measured".into(),
        };
        let v = if !judge {
            String::new()
        } else {
            let exit = if !x.timed_out && x.exit_code == Some(0) {
                "exit **met**".to_string()
            } else {
                format!("exit **missed** ({code})")
            };
            let ticks = match (&x.seen.rollbacks, &x.ticks) {
                (Some((0, _)), Some(l)) if l.unexplained == 0 => "**met** (0, as viewers saw it)".to_string(),
                (Some((n, max)), _) if *n > 0 => format!("**missed** (viewers saw ages go back {n} time(s), up to {max} ticks)"),
                (_, Some(l)) if l.unexplained == 0 => format!(
                    "**met** within the move's own {} slot(s) (exact count needs livepet-load to report ages going back)",
                    l.gap_slots
                ),
                (_, Some(l)) => format!("**missed** ({} pets short by more than the move explains)", l.unexplained),
                _ => "not measured".into(),
            };
            format!("{exit}; ticks lost {ticks}")
        };
        t.push_str(&format!(
            "| cluster: SIGTERM of {} after the kill, so node1 takes every pet | {} pets on it, {} shards | {code} {} after the signal; {log}; every one of its pets ticking on node1 {} after the signal; {ticks}; {} | | | no tick lost; exit 0 | {v} |\n",
            x.node,
            int(x.pets),
            x.shards,
            secs(x.exit_s),
            secs(x.ticked_s),
            watched(&x.seen),
        ));
    }
    if let Some(l) = watch {
        t.push_str(&format!(
            "| cluster: the viewers on node1 over both failures ({:.0} s window) | {} viewers | frames {} of {} expected (missing {}), closed early {}, connection failures {}; errors {} | | | none missing | {} |\n",
            num(l, "window_s"),
            int(num(l, "viewers") as u64),
            int(num(l, "frames_received") as u64),
            int(num(l, "frames_expected") as u64),
            int(num(l, "frames_missing") as u64),
            int(num(l, "closed_early") as u64),
            int(num(l, "connection_failures") as u64),
            compact(&l["errors_by_code"]),
            if !judge {
                String::new()
            } else if num(l, "frames_missing") == 0.0 {
                "**met** (0)".to_string()
            } else {
                format!("**missed** ({})", int(num(l, "frames_missing") as u64))
            },
        ));
    }
    t
}

/// The harness ran: the measure produced its figures.
pub fn check(c: &Option<Cluster>, problems: &mut Vec<String>) {
    let Some(c) = c else { return };
    if num(&c.steady.all, "count") == 0.0 {
        problems.push("cluster: no tick frames measured in steady state".into());
    }
    // A kill the cluster did not recover from is a finding (its row says so), not a broken
    // harness; the SIGTERM step is skipped then, with a note.
    if c.kill.is_none() {
        problems.push("cluster: the kill -9 step did not run".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hand_off_line() {
        let line = "[2026-12-06T10:00:00Z INFO  livepet_server::cluster] handed off 341 shard(s) (33,412 pet(s)) in 0.42 s";
        assert_eq!(handed_off(line), Some((341, 33_412, 0.42)));
        assert_eq!(handed_off("handed off nothing"), None);
    }

    #[test]
    fn counts_ticks_short_of_the_clock() {
        // Ticks every second. Pet 1 was stored at age 10 at t=10 s, killed at 11.5 s (one
        // tick never stored), back at 14 s from age 10: at t=20 s it is 16, short by 4.
        let before = vec![(1, 10, 10_000), (2, 10, 11_000), (3, 10, 12_000)];
        let after: HashMap<i64, (i64, i64)> =
            [(1, (16, 20_000)), (2, (20, 21_000))].into_iter().collect();
        let l = tick_loss(&before, &after, 11_500, Some(11_500), 2.5);
        assert_eq!(l.pets, 2);
        assert_eq!(l.excluded, 1, "pet 3's row was written after the kill");
        assert_eq!(num(&l.short, "max"), 4.0);
        assert_eq!(num(&l.behind, "max"), 1.0);
        assert_eq!(l.gap_slots, 3);
        assert_eq!(l.unexplained, 0);
        // Short by 9 is more than one persist interval and the outage explain.
        let worse: HashMap<i64, (i64, i64)> = [(1, (11, 20_000))].into_iter().collect();
        assert_eq!(
            tick_loss(&before, &worse, 11_500, Some(11_500), 2.5).unexplained,
            1
        );
    }

    fn plan() -> Plan {
        let mut args = crate::bench::BenchArgs::quick();
        args.quick = false;
        Plan::new(&args)
    }

    fn load(p99: f64, missing: f64) -> Value {
        json!({"window_s": 60.0, "frames_received": 6000.0, "frames_expected": 6000.0 + missing,
            "frames_missing": missing, "feed_rtt_ms": {"p99": 3.0}, "errors_by_code": {},
            "connection_failures": 0.0, "viewers": 100.0, "closed_early": 0.0,
            "tick_latency_ms": {"p99": p99}})
    }

    #[test]
    fn rows_carry_targets_and_verdicts() {
        let pcts = |p99: f64| json!({"count": 100, "p50": 2.0, "p99": p99, "max": p99 + 1.0});
        let mut c = Cluster {
            pets: 100_000,
            viewers: 300,
            ready_s: 4.2,
            pets_per_node: vec![33_000, 33_500, 33_600],
            shards_per_node: vec![341, 341, 342],
            steady: Steady {
                loads: vec![load(9.0, 0.0); 3],
                split: true,
                local: pcts(5.0),
                remote: pcts(140.0),
                all: pcts(120.0),
                moved: 0,
            },
            kill: Some(Kill {
                node: "node3".into(),
                pets: 33_600,
                shards: 342,
                alive_s: Some(4.0),
                ticked_s: Some(5.5),
                owned_s: Some(3.9),
                ticks: Some(TickLoss {
                    pets: 33_000,
                    short: pcts(7.0),
                    behind: pcts(2.0),
                    gap_slots: 6,
                    ..TickLoss::default()
                }),
                ..Kill::default()
            }),
            term: Some(Term {
                node: "node2".into(),
                pets: 50_000,
                shards: 512,
                exit_s: Some(1.2),
                exit_code: Some(0),
                handed_off: Some((512, 50_000, 0.8)),
                ticked_s: Some(0.9),
                ticks: Some(TickLoss {
                    pets: 50_000,
                    short: pcts(1.0),
                    gap_slots: 1,
                    ..TickLoss::default()
                }),
                ..Term::default()
            }),
            fault_loads: vec![load(20.0, 0.0)],
            notes: Vec::new(),
        };
        let text = rows(&c, &plan());
        let row = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no row {start:?} in\n{text}"))
                .to_owned()
        };
        let steady = row("| cluster: viewers");
        assert!(steady.contains("remote **missed** by 40.0 ms"), "{steady}");
        let kill = row("| cluster: `kill -9` of node3");
        assert!(kill.contains("recovery **met**; ticks **met**"), "{kill}");
        let term = row("| cluster: SIGTERM of node2");
        assert!(
            term.contains("in **0.80 s**")
                && term.contains("exit **met**; ticks lost **met** within"),
            "{term}"
        );
        assert!(row("| cluster: the viewers on node1").contains("**met** (0)"));
        // Without pet ids in the samples nothing is judged on remote latency.
        c.steady.split = false;
        assert!(rows(&c, &plan()).contains("not judged: remote watches not told apart"));
        assert!(c.json()["kill"]["ticks"]["gap_slots"] == 6);
    }

    #[test]
    fn reads_samples_with_and_without_pet_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.txt");
        std::fs::write(&path, "1000 3 1000\n2000 4.5 -1 77\nbad\n").expect("write");
        let s = read_samples(&path);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].pet, None);
        assert_eq!((s[1].at, s[1].ms, s[1].pet), (2000, 4.5, Some(77)));
        let seen = seen_in(&s, &[], 0, 1500, false);
        assert_eq!(num(&seen.latency, "count"), 1.0);
        assert_eq!(seen.longest_gap_ms, 1000.0);
        assert!(seen.rollbacks.is_none());
    }
}
