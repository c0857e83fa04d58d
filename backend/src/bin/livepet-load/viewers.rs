//! The `viewers` load: K users, M WebSocket viewers each watching one of its user's pets.
//!
//! Every `pet` frame whose age moved on is a tick. Its latency is the receive time minus its
//! `at` (server and client share this machine's clock). A tick frame whose age jumps by more
//! than one means frames were lost; a viewer whose frames stop before the window ends is
//! charged the ticks it should have seen. Frames expected = received + missing.

use crate::setup;
use crate::stats::{now_ms, own_cpu_seconds, raise_fd_limit, Percentiles};
use actix_codec::Framed;
use anyhow::{bail, Context as _};
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use clap::Args;
use futures_util::{SinkExt as _, StreamExt as _};
use livepet_shared::wire::ServerMsg;
use livepet_shared::PetId;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
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
    /// WebSocket handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Sign-ups in flight at once (each costs the server one argon2 hash).
    #[arg(long, default_value_t = 4)]
    signup_concurrency: usize,
    /// Client threads (each its own event loop with a share of the viewers).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Password of the generated users (12 to 72 characters).
    #[arg(long, default_value = "load-generator-password")]
    password: String,
    /// Write every tick sample as `receive_ms latency_ms` lines to this file.
    #[arg(long)]
    samples_out: Option<std::path::PathBuf>,
}

/// One viewer's assignment.
#[derive(Debug, Clone)]
struct Plan {
    index: usize,
    cookie: Rc<str>,
    pet: PetId,
    feed: bool,
    treat_to: Option<PetId>,
}

/// Shared between the main thread and the client threads.
struct Shared {
    ready: AtomicUsize,
    failed: AtomicUsize,
    /// 0 until every viewer is watching; then the measured window in epoch ms.
    window_start: AtomicI64,
    window_end: AtomicI64,
}

/// What one viewer saw.
#[derive(Debug, Default)]
struct ViewerStats {
    connected: bool,
    connect_error: Option<String>,
    closed_early: bool,
    ticks_received: u64,
    ticks_missing: u64,
    /// (receive ms, tick→client latency ms, ms since the previous tick's `at` or -1).
    latencies: Vec<(i64, f64, i64)>,
    feed_rtts: Vec<f64>,
    feeds_sent: u64,
    feeds_skipped: u64,
    feeds_lost: u64,
    treat_rtts: Vec<f64>,
    treats_sent: u64,
    errors: BTreeMap<String, u64>,
    frames_total: u64,
    bytes_total: u64,
    presence_frames: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    kind: &'static str,
    users: usize,
    viewers: usize,
    viewers_watching: usize,
    connection_failures: usize,
    connection_failure_reasons: BTreeMap<String, usize>,
    closed_early: usize,
    window_s: f64,
    tick_ms: u64,
    frames_received: u64,
    frames_expected: u64,
    frames_missing: u64,
    tick_latency_ms: Percentiles,
    /// Time between two ticks of a pet minus the tick period: how late ticks run.
    tick_lateness_ms: Percentiles,
    feed_rtt_ms: Percentiles,
    feeds_sent: u64,
    feeds_skipped_hunger_zero: u64,
    feeds_unanswered: u64,
    treat_rtt_ms: Percentiles,
    treats_sent: u64,
    errors_by_code: BTreeMap<String, u64>,
    frames_total: u64,
    bytes_total: u64,
    presence_frames: u64,
    setup_s: f64,
    connect_s: f64,
    load_cpu_percent: f64,
}

pub fn run(args: ViewersArgs) -> anyhow::Result<()> {
    if args.users == 0 || args.viewers == 0 {
        bail!("--users and --viewers must be at least 1");
    }
    let limit = raise_fd_limit(args.viewers as u64 + 256)?;
    eprintln!("open-files limit {limit}");
    let base = args.url.trim_end_matches('/').to_string();
    let t0 = Instant::now();
    let users = args.users.min(args.viewers);
    let per_user = args.viewers.div_ceil(users);
    let accounts =
        actix_rt::System::new().block_on(create_accounts(&args, &base, users, per_user))?;
    let setup_s = t0.elapsed().as_secs_f64();
    eprintln!("{users} users with {per_user} pet(s) each in {setup_s:.1} s");

    // Viewer i: user i % users, that user's pet number i / users.
    let pet_of = |i: usize| accounts[i % users].1[i / users];
    let feeders = (args.feed_share.clamp(0.0, 1.0) * args.viewers as f64).round() as usize;
    let givers = (args.treat_share.clamp(0.0, 1.0) * args.viewers as f64).round() as usize;
    let plans: Vec<(usize, String, PetId, bool, Option<PetId>)> = (0..args.viewers)
        .map(|i| {
            let treat_to = (i < givers && args.viewers > 1).then(|| pet_of((i + 1) % args.viewers));
            (
                i,
                accounts[i % users].0.clone(),
                pet_of(i),
                i < feeders,
                treat_to,
            )
        })
        .collect();

    let shared = Arc::new(Shared {
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        window_start: AtomicI64::new(0),
        window_end: AtomicI64::new(0),
    });
    let threads = args.threads.max(1);
    let connect_began = Instant::now();
    let mut handles = Vec::new();
    for t in 0..threads {
        let mine: Vec<_> = plans
            .iter()
            .filter(|p| p.0 % threads == t)
            .cloned()
            .collect();
        let (args, base, shared) = (args.clone(), base.clone(), shared.clone());
        handles.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(run_thread(args, base, mine, shared))
        }));
    }

    // Wait for every viewer to be watching (or to have failed), then open the window.
    let mut last_report = Instant::now();
    loop {
        let (ready, failed) = (
            shared.ready.load(Ordering::Relaxed),
            shared.failed.load(Ordering::Relaxed),
        );
        if ready + failed >= args.viewers {
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
    println!("READY {}", now_ms());
    println!("WINDOW {start} {end}");
    let _ = std::io::stdout().flush();
    shared.window_end.store(end, Ordering::SeqCst);
    shared.window_start.store(start, Ordering::SeqCst);
    let wait = (start - now_ms()).max(0) as u64;
    std::thread::sleep(Duration::from_millis(wait));
    let cpu0 = own_cpu_seconds();
    std::thread::sleep(Duration::from_millis((end - now_ms()).max(0) as u64));
    let cpu1 = own_cpu_seconds();

    let mut all = Vec::new();
    for h in handles {
        match h.join() {
            Ok(v) => all.extend(v),
            Err(_) => bail!("a client thread panicked"),
        }
    }
    let report = summarize(
        &args,
        users,
        setup_s,
        connect_s,
        all,
        end - start,
        cpu1 - cpu0,
    )?;
    eprintln!(
        "frames {}/{} (missing {}), tick latency p50 {:.0} p99 {:.0} max {:.0} ms, feed rtt p99 {:.1} ms, {} connection failures",
        report.frames_received,
        report.frames_expected,
        report.frames_missing,
        report.tick_latency_ms.p50,
        report.tick_latency_ms.p99,
        report.tick_latency_ms.max,
        report.feed_rtt_ms.p99,
        report.connection_failures
    );
    println!("RESULT {}", serde_json::to_string(&report)?);
    Ok(())
}

/// Signs up `users` users and adopts `per_user` pets for each; returns (cookie, pets).
async fn create_accounts(
    args: &ViewersArgs,
    base: &str,
    users: usize,
    per_user: usize,
) -> anyhow::Result<Vec<(String, Vec<PetId>)>> {
    let client = setup::client();
    // Unique per run, so a reused database never answers "email taken".
    let run = format!("{:x}{:x}", std::process::id(), now_ms());
    let made = futures_util::stream::iter(0..users)
        .map(|u| {
            let (client, run) = (client.clone(), run.clone());
            async move {
                let email = format!("load-{run}-{u}@bench.livepet.local");
                let cookie = setup::sign_up(&client, base, &email, &args.password)
                    .await
                    .with_context(|| format!("signing up user {u}"))?;
                let mut pets = Vec::with_capacity(per_user);
                for p in 0..per_user {
                    let pet = setup::adopt(&client, base, &cookie, &format!("Load {u}-{p}"))
                        .await
                        .with_context(|| format!("adopting a pet for user {u}"))?;
                    pets.push(pet.id);
                }
                anyhow::Ok((u, cookie, pets))
            }
        })
        .buffer_unordered(args.signup_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let mut out: Vec<Option<(String, Vec<PetId>)>> = vec![None; users];
    for r in made {
        let (u, cookie, pets) = r?;
        out[u] = Some((cookie, pets));
    }
    out.into_iter()
        .map(|o| o.context("a user was not created"))
        .collect()
}

async fn run_thread(
    args: ViewersArgs,
    base: String,
    plans: Vec<(usize, String, PetId, bool, Option<PetId>)>,
    shared: Arc<Shared>,
) -> Vec<ViewerStats> {
    let permits = Rc::new(tokio::sync::Semaphore::new(args.connect_concurrency.max(1)));
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .max_http_version(awc::http::Version::HTTP_11)
        // Each WebSocket keeps its connection: no pool limit (awc's default is 100).
        .connector(awc::Connector::new().limit(0))
        .finish();
    let args = Rc::new(args);
    let base: Rc<str> = base.into();
    let mut cookies: BTreeMap<String, Rc<str>> = BTreeMap::new();
    let mut tasks = Vec::with_capacity(plans.len());
    for (index, cookie, pet, feed, treat_to) in plans {
        let cookie = cookies
            .entry(cookie.clone())
            .or_insert_with(|| cookie.into())
            .clone();
        let plan = Plan {
            index,
            cookie,
            pet,
            feed,
            treat_to,
        };
        tasks.push(actix_rt::spawn(viewer(
            plan,
            client.clone(),
            base.clone(),
            args.clone(),
            permits.clone(),
            shared.clone(),
        )));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(s) = t.await {
            out.push(s);
        }
    }
    if let Some(path) = &args.samples_out {
        write_samples(path, &out);
    }
    out
}

fn write_samples(path: &std::path::Path, stats: &[ViewerStats]) {
    // Threads append; each writes its lines in one call.
    let mut text = String::new();
    for s in stats {
        for (at, ms, interval) in &s.latencies {
            text.push_str(&format!("{at} {ms} {interval}\n"));
        }
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Err(e) = file.and_then(|mut f| f.write_all(text.as_bytes())) {
        eprintln!("cannot write samples to {}: {e}", path.display());
    }
}

async fn connect(
    client: &awc::Client,
    base: &str,
    cookie: &str,
) -> Result<Framed<BoxedSocket, Codec>, String> {
    let url = format!("{}/ws", base.replacen("http", "ws", 1));
    let (res, framed) = client
        .ws(url)
        .origin(base)
        .cookie(awc::cookie::Cookie::new(setup::COOKIE, cookie.to_string()))
        // The first frame lists every active pet: large with thousands of viewers.
        .max_frame_size(64 << 20)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    if res.status().as_u16() != 101 {
        return Err(format!("status {}", res.status()));
    }
    Ok(framed)
}

async fn viewer(
    plan: Plan,
    client: awc::Client,
    base: Rc<str>,
    args: Rc<ViewersArgs>,
    permits: Rc<tokio::sync::Semaphore>,
    shared: Arc<Shared>,
) -> ViewerStats {
    let mut st = ViewerStats::default();
    let permit = permits.acquire().await;
    let mut ws = match connect(&client, &base, &plan.cookie).await {
        Ok(ws) => ws,
        Err(e) => {
            st.connect_error = Some(e);
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return st;
        }
    };
    let watch = format!(r#"{{"type":"watch","pet_id":{}}}"#, plan.pet.0);
    if ws.send(Message::Text(watch.into())).await.is_err() {
        st.connect_error = Some("could not send watch".into());
        shared.failed.fetch_add(1, Ordering::Relaxed);
        return st;
    }
    let mut ready = false;
    let mut last: Option<(u32, u32)> = None; // (age, hunger) of the newest pet frame
    let mut last_tick_ms = 0i64;
    let mut last_at = 0i64;
    // Offsets spread feeds and treats over their period so they do not come in waves.
    let spread = |every: f64| {
        let frac = (plan.index as f64 * 0.618_033_988_75).fract();
        Duration::from_secs_f64(every.max(0.001) * frac)
    };
    let mut next_feed = Instant::now() + spread(args.feed_every_s);
    let mut next_treat = Instant::now() + spread(args.treat_every_s);
    let mut pending_feed: Option<(Instant, u32)> = None;
    let mut pending_treat: Option<Instant> = None;
    let mut permit = Some(permit);
    loop {
        let now = now_ms();
        let end = shared.window_end.load(Ordering::Relaxed);
        let start = shared.window_start.load(Ordering::Relaxed);
        let in_window = start != 0 && now >= start && now <= end;
        // A grace of one second lets the last frames of the window arrive.
        if start != 0 && now > end + 1000 {
            break;
        }
        let wake = tokio::time::sleep(Duration::from_millis(200));
        let frame = tokio::select! {
            f = ws.next() => Some(f),
            _ = wake => None,
        };
        let now = now_ms();
        match frame {
            None => {}
            Some(None) | Some(Some(Err(_))) => {
                st.closed_early = true;
                break;
            }
            Some(Some(Ok(Frame::Ping(p)))) => {
                let _ = ws.send(Message::Pong(p)).await;
            }
            Some(Some(Ok(Frame::Close(_)))) => {
                st.closed_early = true;
                break;
            }
            Some(Some(Ok(Frame::Text(bytes)))) => {
                st.frames_total += 1;
                st.bytes_total += bytes.len() as u64;
                match serde_json::from_slice::<ServerMsg>(&bytes) {
                    Ok(ServerMsg::Pet { pet }) if pet.id == plan.pet => {
                        if let Some((age, _)) = last {
                            if pet.age > age {
                                if in_window {
                                    st.ticks_received += 1;
                                    st.ticks_missing += u64::from(pet.age - age - 1);
                                    let interval = if pet.age == age + 1 && last_at > 0 {
                                        pet.at - last_at
                                    } else {
                                        -1
                                    };
                                    st.latencies.push((
                                        now,
                                        (now - pet.at).max(0) as f64,
                                        interval,
                                    ));
                                }
                                last_tick_ms = now;
                                last_at = pet.at;
                            }
                        } else {
                            last_tick_ms = now;
                        }
                        if let Some((sent, hunger)) = pending_feed {
                            if pet.hunger < hunger {
                                if in_window {
                                    st.feed_rtts.push(sent.elapsed().as_secs_f64() * 1000.0);
                                }
                                pending_feed = None;
                            }
                        }
                        last = Some((pet.age, pet.hunger));
                        if !ready {
                            ready = true;
                            st.connected = true;
                            drop(permit.take());
                            shared.ready.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(ServerMsg::Pet { .. }) => {}
                    Ok(ServerMsg::Treats { .. }) => {
                        if let Some(sent) = pending_treat.take() {
                            if in_window {
                                st.treat_rtts.push(sent.elapsed().as_secs_f64() * 1000.0);
                            }
                        }
                    }
                    Ok(ServerMsg::Error { code, .. }) => {
                        *st.errors.entry(code.as_str().to_string()).or_default() += 1;
                        pending_treat = None;
                        if !ready {
                            st.connect_error = Some(format!("error frame {}", code.as_str()));
                            shared.failed.fetch_add(1, Ordering::Relaxed);
                            return st;
                        }
                    }
                    Ok(ServerMsg::ActivePets { .. } | ServerMsg::ActivePetsChanged { .. }) => {
                        st.presence_frames += 1;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        *st.errors.entry("unparsable_frame".into()).or_default() += 1;
                    }
                }
            }
            Some(Some(Ok(_))) => {}
        }
        if !ready {
            continue;
        }
        let now_i = Instant::now();
        if let Some((sent, _)) = pending_feed {
            if sent.elapsed() > Duration::from_secs(10) {
                st.feeds_lost += 1;
                pending_feed = None;
            }
        }
        if plan.feed && pending_feed.is_none() && now_i >= next_feed {
            next_feed = now_i + Duration::from_secs_f64(args.feed_every_s.max(0.001));
            match last {
                Some((_, hunger)) if hunger > 0 => {
                    let msg = format!(r#"{{"type":"feed","pet_id":{}}}"#, plan.pet.0);
                    if ws.send(Message::Text(msg.into())).await.is_err() {
                        st.closed_early = true;
                        break;
                    }
                    pending_feed = Some((Instant::now(), hunger));
                    if in_window {
                        st.feeds_sent += 1;
                    }
                }
                _ => st.feeds_skipped += u64::from(in_window),
            }
        }
        if let Some(target) = plan.treat_to {
            if pending_treat.is_none() && now_i >= next_treat {
                next_treat = now_i + Duration::from_secs_f64(args.treat_every_s.max(0.001));
                let msg = format!(r#"{{"type":"give_treat","pet_id":{}}}"#, target.0);
                if ws.send(Message::Text(msg.into())).await.is_err() {
                    st.closed_early = true;
                    break;
                }
                pending_treat = Some(Instant::now());
                if in_window {
                    st.treats_sent += 1;
                }
            }
        }
    }
    if !ready {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        st.connect_error
            .get_or_insert_with(|| "closed before the first pet frame".into());
        return st;
    }
    // Charge the ticks a viewer should have seen after its frames stopped.
    let start = shared.window_start.load(Ordering::Relaxed);
    let end = shared.window_end.load(Ordering::Relaxed);
    let tick = args.tick_ms.max(1) as i64;
    let silent_from = last_tick_ms.max(start);
    if end - silent_from > tick + tick / 2 {
        st.ticks_missing += ((end - silent_from) / tick) as u64;
    }
    let _ = ws.send(Message::Close(None)).await;
    st
}

fn summarize(
    args: &ViewersArgs,
    users: usize,
    setup_s: f64,
    connect_s: f64,
    all: Vec<ViewerStats>,
    window_ms: i64,
    cpu: f64,
) -> anyhow::Result<Report> {
    let mut lat = Vec::new();
    let mut late = Vec::new();
    let mut feed = Vec::new();
    let mut treat = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut r = Report {
        kind: "viewers",
        users,
        viewers: args.viewers,
        viewers_watching: 0,
        connection_failures: 0,
        connection_failure_reasons: BTreeMap::new(),
        closed_early: 0,
        window_s: window_ms as f64 / 1000.0,
        tick_ms: args.tick_ms,
        frames_received: 0,
        frames_expected: 0,
        frames_missing: 0,
        tick_latency_ms: Percentiles::default(),
        tick_lateness_ms: Percentiles::default(),
        feed_rtt_ms: Percentiles::default(),
        feeds_sent: 0,
        feeds_skipped_hunger_zero: 0,
        feeds_unanswered: 0,
        treat_rtt_ms: Percentiles::default(),
        treats_sent: 0,
        errors_by_code: BTreeMap::new(),
        frames_total: 0,
        bytes_total: 0,
        presence_frames: 0,
        setup_s,
        connect_s,
        load_cpu_percent: 100.0 * cpu / (window_ms as f64 / 1000.0).max(1e-9),
    };
    for s in all {
        if let Some(e) = s.connect_error {
            r.connection_failures += 1;
            // Keep reasons short and few: the first words name the failure.
            let key: String = e.chars().take(80).collect();
            *reasons.entry(key).or_default() += 1;
        }
        if s.connected {
            r.viewers_watching += 1;
        }
        r.closed_early += usize::from(s.closed_early);
        r.frames_received += s.ticks_received;
        r.frames_missing += s.ticks_missing;
        r.feeds_sent += s.feeds_sent;
        r.feeds_skipped_hunger_zero += s.feeds_skipped;
        r.feeds_unanswered += s.feeds_lost;
        r.treats_sent += s.treats_sent;
        r.frames_total += s.frames_total;
        r.bytes_total += s.bytes_total;
        r.presence_frames += s.presence_frames;
        lat.extend(s.latencies.iter().map(|(_, ms, _)| *ms));
        late.extend(
            s.latencies
                .iter()
                .filter(|(_, _, i)| *i >= 0)
                .map(|(_, _, i)| (*i - args.tick_ms as i64) as f64),
        );
        feed.extend(s.feed_rtts);
        treat.extend(s.treat_rtts);
        for (k, v) in s.errors {
            *errors.entry(k).or_default() += v;
        }
    }
    // A viewer that never connected was expected to see every tick of the window.
    let per_viewer = (window_ms / args.tick_ms.max(1) as i64).max(0) as u64;
    r.frames_missing += r.connection_failures as u64 * per_viewer;
    r.frames_expected = r.frames_received + r.frames_missing;
    r.tick_latency_ms = Percentiles::of(lat);
    r.tick_lateness_ms = Percentiles::of(late);
    r.feed_rtt_ms = Percentiles::of(feed);
    r.treat_rtt_ms = Percentiles::of(treat);
    r.errors_by_code = errors;
    r.connection_failure_reasons = reasons;
    Ok(r)
}
