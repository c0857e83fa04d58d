//! The `viewers` load: K users, M WebSocket viewers each watching one of its user's pets,
//! and optionally a storm of S more viewers connecting all at once during the window.
//!
//! Every `pet` frame whose age moved on is a tick. Its latency is the receive time minus its
//! `at` (server and client share this machine's clock). A tick frame whose age jumps by more
//! than one means frames were lost; a viewer whose frames stop before the window ends is
//! charged the ticks it should have seen. Frames expected = received + missing.
//!
//! Each viewer gives up after `--connect-timeout-s` without its first frame and says why, and
//! the report waits for the viewers only until a deadline after the window: a run always
//! ends with its `RESULT`, however the server behaves.

use crate::report::{self, RunInfo};
use crate::setup;
use crate::stats::{now_ms, own_cpu_seconds, raise_fd_limit};
use crate::viewer::{self, Assignment, Env, Settings, Shared, ViewerStats};
use anyhow::{bail, Context as _};
use clap::Args;
use futures_util::StreamExt as _;
use livepet_shared::wire::{ActivePet, PetView};
use std::io::Write as _;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct ViewersArgs {
    /// The server, e.g. http://127.0.0.1:8080 (its WebSocket origin is derived from it).
    #[arg(long)]
    url: String,
    /// Users to sign up over HTTP; each adopts ceil(viewers / users) pets.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// WebSocket viewers; viewer i is user i % users and watches one pet of its own.
    #[arg(long, default_value_t = 1000)]
    viewers: usize,
    /// The server's tick, to charge a viewer whose frames stop for the ticks it missed.
    #[arg(long, default_value_t = 5000)]
    tick_ms: u64,
    /// Seconds after every viewer is watching before measuring starts.
    #[arg(long, default_value_t = 5.0)]
    warmup_s: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 60.0)]
    duration_s: f64,
    /// Share of viewers (0..=1) that feed their pet.
    #[arg(long, default_value_t = 0.1)]
    feed_share: f64,
    /// Seconds between two feeds of one feeder; a feed is skipped while hunger is 0 (it
    /// would change nothing, so no frame could show it).
    #[arg(long, default_value_t = 20.0)]
    feed_every_s: f64,
    /// Share of viewers (0..=1) that give treats to the next viewer's pet.
    #[arg(long, default_value_t = 0.01)]
    treat_share: f64,
    /// Seconds between two treats of one giver.
    #[arg(long, default_value_t = 30.0)]
    treat_every_s: f64,
    /// WebSocket handshakes in flight at once (not for the storm, which connects at once).
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Seconds a viewer may take from its first attempt to its first `pet` frame (TCP
    /// connect, upgrade, watch); then it gives up and counts as a failure (timeout).
    #[arg(long, default_value_t = 10.0)]
    connect_timeout_s: f64,
    /// Extra viewers (with users of their own) that connect all at once, `--storm-at-s`
    /// into the window, while the others are measured.
    #[arg(long, default_value_t = 0)]
    storm: usize,
    /// Seconds into the measured window when the storm starts.
    #[arg(long, default_value_t = 5.0)]
    storm_at_s: f64,
    /// Ask for the first page of the active list with this size right after connecting
    /// (0: no list). Without it, a session keeps the server's default page.
    #[arg(long)]
    active_page_limit: Option<u32>,
    /// Sign-ups in flight at once (each costs the server one argon2 hash).
    #[arg(long, default_value_t = 4)]
    signup_concurrency: usize,
    /// Client threads (each its own event loop with a share of the viewers).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Client threads of their own for the storm's viewers, so that its handshakes do not
    /// hold up the event loops of the viewers being measured.
    #[arg(long, default_value_t = 1)]
    storm_threads: usize,
    /// Password of the generated users (12 to 72 characters).
    #[arg(long, default_value = "load-generator-password")]
    password: String,
    /// Write every tick sample as `receive_ms latency_ms interval_ms pet_id` lines to this
    /// file.
    #[arg(long)]
    samples_out: Option<std::path::PathBuf>,
}

/// Users `first..first + count`, viewer j of the group is user `first + j % count` and watches
/// that user's pet number `j / count`.
struct Group {
    first: usize,
    count: usize,
}

pub fn run(args: ViewersArgs) -> anyhow::Result<()> {
    if args.users == 0 || args.viewers == 0 {
        bail!("--users and --viewers must be at least 1");
    }
    if args.connect_timeout_s.is_nan() || args.connect_timeout_s <= 0.0 {
        bail!("--connect-timeout-s must be positive");
    }
    let total = args.viewers + args.storm;
    let limit = raise_fd_limit(total as u64 + 256)?;
    eprintln!("open-files limit {limit}");
    let base = args.url.trim_end_matches('/').to_string();
    let t0 = Instant::now();
    let users = args.users.min(args.viewers);
    let per_user = args.viewers.div_ceil(users);
    // The storm's users hold as many pets each as the others.
    let storm_users = args.storm.div_ceil(per_user);
    let mut pets_per_user = vec![per_user; users];
    if storm_users > 0 {
        pets_per_user.extend(std::iter::repeat_n(
            args.storm.div_ceil(storm_users),
            storm_users,
        ));
    }
    let accounts =
        actix_rt::System::new().block_on(create_accounts(&args, &base, &pets_per_user))?;
    let setup_s = t0.elapsed().as_secs_f64();
    eprintln!(
        "{} users with {per_user} pet(s) each in {setup_s:.1} s",
        accounts.len()
    );

    let cookies: Vec<Arc<str>> = accounts.iter().map(|(c, _)| c.as_str().into()).collect();
    let pick = |g: &Group, j: usize| {
        let u = g.first + j % g.count;
        (cookies[u].clone(), accounts[u].1[j / g.count].id)
    };
    // What one entry of the old full list (every active pet, to every session) would cost
    // for this run's pets, with the separating comma.
    let entries: Vec<usize> = accounts
        .iter()
        .flat_map(|(_, pets)| pets)
        .map(|p| {
            let entry = ActivePet {
                id: p.id,
                name: p.name.clone(),
                species: p.species,
                owner_id: p.owner_id,
            };
            serde_json::to_string(&entry).map_or(0, |s| s.len() + 1)
        })
        .collect();
    let list_entry_bytes = entries.iter().sum::<usize>() as f64 / entries.len().max(1) as f64;
    let main = Group {
        first: 0,
        count: users,
    };
    let feeders = (args.feed_share.clamp(0.0, 1.0) * args.viewers as f64).round() as usize;
    let givers = (args.treat_share.clamp(0.0, 1.0) * args.viewers as f64).round() as usize;
    let mut plans: Vec<Assignment> = (0..args.viewers)
        .map(|i| {
            let (cookie, pet) = pick(&main, i);
            let treat_to =
                (i < givers && args.viewers > 1).then(|| pick(&main, (i + 1) % args.viewers).1);
            Assignment {
                index: i,
                cookie,
                pet,
                feed: i < feeders,
                treat_to,
                storm: false,
            }
        })
        .collect();
    if args.storm > 0 {
        let g = Group {
            first: users,
            count: storm_users,
        };
        // The storm only watches: what is measured is how the others fare while it comes.
        plans.extend((0..args.storm).map(|j| {
            let (cookie, pet) = pick(&g, j);
            Assignment {
                index: args.viewers + j,
                cookie,
                pet,
                feed: false,
                treat_to: None,
                storm: true,
            }
        }));
    }

    let settings = Settings {
        feed_every_s: args.feed_every_s,
        treat_every_s: args.treat_every_s,
        connect_timeout: Duration::from_secs_f64(args.connect_timeout_s),
        page_limit: args.active_page_limit,
    };
    let shared = Arc::new(Shared::new());
    let (done_tx, done_rx) = mpsc::channel::<ViewerStats>();
    let threads = args.threads.max(1);
    let connecting_ms = now_ms();
    println!("CONNECTING {connecting_ms}");
    let _ = std::io::stdout().flush();
    let connect_began = Instant::now();
    let storm_threads = if args.storm > 0 {
        args.storm_threads.max(1)
    } else {
        0
    };
    let mut per_thread: Vec<Vec<Assignment>> = vec![Vec::new(); threads + storm_threads];
    for p in plans {
        let t = if p.storm {
            threads + p.index % storm_threads
        } else {
            p.index % threads
        };
        per_thread[t].push(p);
    }
    for mine in per_thread {
        let (base, shared, done) = (base.clone(), shared.clone(), done_tx.clone());
        let concurrency = args.connect_concurrency.max(1);
        // Detached: the main thread waits for the viewers' reports, not for the threads, so
        // a thread stuck on a misbehaving socket cannot hold the result back.
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(run_thread(
                mine,
                base,
                settings,
                concurrency,
                shared,
                done,
            ))
        });
    }
    drop(done_tx);

    // Wait for every viewer to be watching or to have given up (each within its timeout
    // once its turn comes), then open the window.
    let mut last_report = Instant::now();
    // Every viewer settles within its timeout once its turn comes; should none settle for
    // far longer than that (a client thread died), measure whoever is watching.
    let stall = Duration::from_secs_f64(args.connect_timeout_s) + Duration::from_secs(30);
    let (mut settled, mut progress) = (0, Instant::now());
    loop {
        let (ready, failed) = (
            shared.ready.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
        );
        if ready + failed >= args.viewers {
            break;
        }
        if ready + failed != settled {
            (settled, progress) = (ready + failed, Instant::now());
        } else if progress.elapsed() > stall {
            eprintln!(
                "no viewer settled for {:.0} s: measuring the {ready} watching",
                stall.as_secs_f64()
            );
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("{ready} viewers watching, {failed} failed");
            last_report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let connect_s = connect_began.elapsed().as_secs_f64();
    eprintln!(
        "{} viewers watching, {} failed, in {connect_s:.1} s",
        shared.ready.load(Ordering::Relaxed),
        shared.failed.load(Ordering::Relaxed)
    );
    let start = now_ms() + (args.warmup_s * 1000.0) as i64;
    let end = start + (args.duration_s * 1000.0) as i64;
    let storm_start = if args.storm > 0 {
        start + (args.storm_at_s * 1000.0) as i64
    } else {
        0
    };
    println!("READY {}", now_ms());
    println!("WINDOW {start} {end}");
    if args.storm > 0 {
        println!("STORM {storm_start}");
    }
    let _ = std::io::stdout().flush();
    shared.window_end.store(end, Ordering::SeqCst);
    shared.window_start.store(start, Ordering::SeqCst);
    shared.storm_start.store(storm_start, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis((start - now_ms()).max(0) as u64));
    let cpu0 = own_cpu_seconds();
    if args.storm > 0 {
        std::thread::sleep(Duration::from_millis((storm_start - now_ms()).max(0) as u64));
        eprintln!("storm: {} viewers connecting at once", args.storm);
    }
    let mut storm_reported = false;
    while now_ms() < end {
        std::thread::sleep(Duration::from_millis(
            ((end - now_ms()).clamp(0, 1000)) as u64,
        ));
        let (ready, failed) = (
            shared.storm_ready.load(Ordering::Relaxed),
            shared.storm_failed.load(Ordering::Relaxed),
        );
        if args.storm > 0 && !storm_reported && ready + failed >= args.storm {
            eprintln!(
                "storm settled {:.1} s after it began: {ready} watching, {failed} failed",
                (now_ms() - storm_start) as f64 / 1000.0
            );
            storm_reported = true;
        }
    }
    let cpu1 = own_cpu_seconds();

    // Every viewer stops by the window's end plus a second, or its connect deadline, or a
    // send timeout after that; past this deadline the ones still missing are reported so.
    let last_start = storm_start.max(end);
    let deadline = Instant::now()
        + Duration::from_millis((last_start - now_ms()).max(0) as u64)
        + Duration::from_secs_f64(args.connect_timeout_s)
        + Duration::from_secs(15);
    let mut all = Vec::with_capacity(total);
    while all.len() < total {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(s) => all.push(s),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    let unfinished = total - all.len();
    if unfinished > 0 {
        eprintln!("{unfinished} viewer(s) had not finished by the deadline; reported as absent");
    }
    if let Some(path) = &args.samples_out {
        write_samples(path, &all);
    }
    let info = RunInfo {
        users: accounts.len(),
        viewers: args.viewers,
        storm: args.storm,
        tick_ms: args.tick_ms,
        connect_timeout_s: args.connect_timeout_s,
        setup_s,
        connect_s,
        connecting_ms,
        window: (start, end),
        storm_start,
        load_cpu_s: cpu1 - cpu0,
        unfinished,
        list_entry_bytes,
    };
    let report = report::summarize(&info, all);
    eprintln!(
        "frames {}/{} (missing {}), tick latency p50 {:.0} p99 {:.0} max {:.0} ms, feed rtt p99 {:.1} ms, connection failures {} {:?}",
        report.frames_received,
        report.frames_expected,
        report.frames_missing,
        report.tick_latency_ms.p50,
        report.tick_latency_ms.p99,
        report.tick_latency_ms.max,
        report.feed_rtt_ms.p99,
        report.connection_failures,
        report.connection_failure_kinds,
    );
    if let Some(s) = &report.storm {
        eprintln!(
            "storm: {} of {} watching (all after {:?} s), failures {:?}; its ticks p99 {:.0} ms",
            s.connected, s.viewers, s.all_connected_s, s.failure_kinds, s.tick_latency_ms.p99
        );
    }
    println!("RESULT {}", serde_json::to_string(&report)?);
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Signs up one user per entry of `pets_per_user` and adopts that many pets for each;
/// returns (cookie, pets) by user.
async fn create_accounts(
    args: &ViewersArgs,
    base: &str,
    pets_per_user: &[usize],
) -> anyhow::Result<Vec<(String, Vec<PetView>)>> {
    let client = setup::client();
    // Unique per run, so a reused database never answers "email taken".
    let run = format!("{:x}{:x}", std::process::id(), now_ms());
    let made = futures_util::stream::iter(pets_per_user.iter().copied().enumerate())
        .map(|(u, n)| {
            let (client, run) = (client.clone(), run.clone());
            async move {
                let email = format!("load-{run}-{u}@bench.livepet.local");
                let cookie = setup::sign_up(&client, base, &email, &args.password)
                    .await
                    .with_context(|| format!("signing up user {u}"))?;
                let mut pets = Vec::with_capacity(n);
                for p in 0..n {
                    let pet = setup::adopt(&client, base, &cookie, &format!("Load {u}-{p}"))
                        .await
                        .with_context(|| format!("adopting a pet for user {u}"))?;
                    pets.push(pet);
                }
                anyhow::Ok((u, cookie, pets))
            }
        })
        .buffer_unordered(args.signup_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut out: Vec<Option<(String, Vec<PetView>)>> = vec![None; pets_per_user.len()];
    for r in made {
        let (u, cookie, pets) = r?;
        out[u] = Some((cookie, pets));
    }
    out.into_iter()
        .map(|o| o.context("a user was not created"))
        .collect()
}

/// One client thread: its viewers now, its share of the storm when the storm starts.
async fn run_thread(
    plans: Vec<Assignment>,
    base: String,
    settings: Settings,
    concurrency: usize,
    shared: Arc<Shared>,
    done: mpsc::Sender<ViewerStats>,
) {
    let client = awc::Client::builder()
        // Above the connect timeout: the viewer's own deadline decides, not the client's.
        .timeout(settings.connect_timeout + Duration::from_secs(5))
        .max_http_version(awc::http::Version::HTTP_11)
        // Each WebSocket keeps its connection: no pool limit (awc's default is 100).
        .connector(
            awc::Connector::new()
                .limit(0)
                .timeout(settings.connect_timeout + Duration::from_secs(5)),
        )
        .finish();
    let env = Rc::new(Env {
        client,
        base: base.into(),
        settings,
        permits: Rc::new(tokio::sync::Semaphore::new(concurrency)),
        shared: shared.clone(),
        done,
    });
    let (storm, now): (Vec<_>, Vec<_>) = plans.into_iter().partition(|p| p.storm);
    let mut tasks: Vec<_> = now
        .into_iter()
        .map(|a| actix_rt::spawn(viewer::viewer(a, env.clone())))
        .collect();
    if !storm.is_empty() {
        let at = loop {
            let at = shared.storm_start.load(Ordering::Relaxed);
            if at != 0 {
                break at;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        tokio::time::sleep(Duration::from_millis((at - now_ms()).max(0) as u64)).await;
        tasks.extend(
            storm
                .into_iter()
                .map(|a| actix_rt::spawn(viewer::viewer(a, env.clone()))),
        );
    }
    for t in tasks {
        let _ = t.await;
    }
}

fn write_samples(path: &std::path::Path, stats: &[ViewerStats]) {
    // The measured viewers only: the storm's samples would blur what the others saw.
    let mut text = String::new();
    for s in stats.iter().filter(|s| !s.storm) {
        for (at, ms, interval) in &s.latencies {
            text.push_str(&format!("{at} {ms} {interval} {}\n", s.pet));
        }
    }
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("cannot write samples to {}: {e}", path.display());
    }
}
