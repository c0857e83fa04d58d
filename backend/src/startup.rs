//! Startup and shutdown: take the database's lock, open, migrate and check the database,
//! start the arbiters, the persister and the treat refresher, bring every stored live pet to
//! life, and serve HTTP. `Application` binds before it loads, so a taken port fails fast, and
//! reports the real port (tests bind 0).

use crate::actors::persister::{FinalFlush, Flush, FlushReport, Persister};
use crate::actors::presence::{Presence, Shutdown};
use crate::actors::treat_refresher::TreatRefresher;
use crate::api::connections::{self, ConnectionGate};
use crate::api::headers::SecurityHeaders;
use crate::cluster::Cluster;
use crate::config::ServeArgs;
use crate::db;
use crate::db::lock::DbLock;
use crate::metrics::Metrics;
use crate::services::accounts::Accounts;
use crate::services::limits::UserLimits;
use crate::services::mail::{self, Links, Mailer};
use crate::services::sockets::LiveSockets;
use crate::services::sockets::Revocation;
use crate::services::Services;
use crate::state::{split_origin, AppState, EdgeSettings};
use crate::world::fence::SHARDS;
use crate::world::{loader, DirtyPets, Fence, PetRegistry, World};
use actix::{Actor, Addr, SyncArbiter};
use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use livepet_shared::Rules;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running server.
pub struct Application {
    port: u16,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The /metrics server on `--metrics-bind`, if there is one, and its port.
    metrics_server: Option<MetricsServer>,
    world: Arc<World>,
    presence: Addr<Presence>,
    shutdown_timeout: Duration,
    started_pets: usize,
    state: web::Data<AppState>,
    /// Held until the final flush is done: no other server may use the database before. A
    /// cluster's nodes share their database (fenced by shard leases instead): `None`.
    lock: Option<DbLock>,
    cluster: Option<Arc<Cluster>>,
}

impl Application {
    /// Starts everything and returns once every stored live pet is ticking and the server is
    /// accepting. Must run inside an actix System.
    pub async fn build(cfg: ServeArgs) -> anyhow::Result<Application> {
        let began = Instant::now();
        let url = cfg.db.database_url.clone();
        let files = connections::raise_open_file_limit();
        // A cluster setting that cannot work is refused before anything is touched.
        let clustered = cfg.cluster(0)?.is_some();

        // First of all: a second server on this database stops here, before it touches it.
        let lock = if clustered {
            None
        } else {
            let lock_url = url.clone();
            Some(
                actix_web::rt::task::spawn_blocking(move || DbLock::acquire(&lock_url))
                    .await
                    .context("database lock task failed")??,
            )
        };

        let listener = TcpListener::bind(&cfg.bind)
            .with_context(|| format!("cannot listen on {}", cfg.bind))?;
        let addr = listener.local_addr()?;
        if let Some(lock) = &lock {
            lock.record_holder(&addr.to_string());
        }
        let cluster_cfg = cfg.cluster(addr.port())?;

        let migrate_url = url.clone();
        actix_web::rt::task::spawn_blocking(move || {
            let mut conn = db::connect_and_migrate(&migrate_url)?;
            db::check_writable(&mut conn, &migrate_url)
        })
        .await
        .context("migration task failed")??;
        let pool = db::pool(&url, 8)?;
        let rules = Rules {
            death_age: cfg.death_age,
            ..Rules::default()
        };
        // Before any pet starts: hashing the dummy password takes a moment.
        let accounts = actix_web::rt::task::spawn_blocking({
            let (per_minute, short, long) = (
                cfg.auth_attempts_per_minute,
                cfg.session_ttl,
                cfg.remember_ttl,
            );
            move || Accounts::new(per_minute, short, long, rules.max_treats)
        })
        .await
        .context("account setup task failed")?
        .map_err(|e| anyhow::anyhow!("account setup failed: {e}"))?;

        let threads = cfg.arbiter_count();
        let metrics = Arc::new(Metrics::new());
        let gate = ConnectionGate::new(connection_budget(&cfg, files), metrics.clone());
        metrics
            .open_files_limit
            .set(i64::try_from(files.soft).unwrap_or(i64::MAX));
        let dirty = Arc::new(DirtyPets::new(threads));
        let fence = cluster_cfg
            .as_ref()
            .map(|c| Arc::new(Fence::new(c.node.clone())));
        let persister = {
            let (url, dirty, metrics, fence) =
                (url.clone(), dirty.clone(), metrics.clone(), fence.clone());
            SyncArbiter::start(1, move || {
                Persister::new(url.clone(), dirty.clone(), metrics.clone(), fence.clone())
            })
        };
        let world = Arc::new(World {
            rules,
            tick: cfg.tick(),
            registry: PetRegistry::new(threads),
            dirty,
            metrics: metrics.clone(),
            persister: persister.clone(),
            fence: fence.clone(),
        });

        let started_pets = if cluster_cfg.is_some() {
            // A node loads the pets of the shards it takes, as it takes them.
            0
        } else {
            metrics.cluster_nodes.set(1);
            metrics.owned_shards.set(SHARDS as i64);
            log::info!(
                "loading live pets from {url} onto {threads} arbiter(s), tick {} ms",
                cfg.tick_ms
            );
            let loader_world = world.clone();
            let load_url = url.clone();
            let started_pets = actix_web::rt::task::spawn_blocking(move || {
                loader::load_pets(&load_url, &loader_world)
            })
            .await
            .context("pet loader task failed")??;
            let secs = began.elapsed().as_secs_f64();
            metrics.startup_seconds.set(secs);
            log::info!(
                "{started_pets} pets ticking {secs:.2} s after start ({:.0} pets/s)",
                started_pets as f64 / secs.max(1e-9)
            );
            started_pets
        };

        let presence = Presence::new(metrics.clone()).start();
        let cluster = match (cluster_cfg, &fence) {
            (Some(cc), Some(fence)) => {
                let heartbeat = cc.heartbeat;
                let cluster = Cluster::start(
                    cc,
                    fence.clone(),
                    world.clone(),
                    url.clone(),
                    pool.clone(),
                    presence.clone(),
                    addr.to_string(),
                )
                .await?;
                Some((cluster, heartbeat))
            }
            _ => None,
        };
        let refresher = TreatRefresher::new(
            pool.clone(),
            Duration::from_millis(cfg.treat_refresh_ms),
            rules.max_treats,
            presence.clone(),
        );
        match &cluster {
            Some((c, heartbeat)) => {
                let c = c.clone();
                refresher
                    .taking_turns(Box::new(move || c.runs_chores()), *heartbeat * 4)
                    .start()
            }
            None => refresher.start(),
        };
        let cluster = cluster.map(|(c, _)| c);
        actix_web::rt::spawn(persist_loop(persister, cfg.persist_every()));

        let static_dir = cfg
            .static_dir
            .join("index.html")
            .is_file()
            .then(|| cfg.static_dir.clone());
        if static_dir.is_none() {
            log::warn!(
                "{} has no index.html: the web app is not served (build it with `cargo xtask run`)",
                cfg.static_dir.display()
            );
        }
        let mailer = Mailer::start(cfg.mail_config()).await?;
        let links = Links::new(cfg.public_url.as_deref(), addr)
            .map_err(|e| anyhow::anyhow!("--public-url (LIVEPET_PUBLIC_URL): {e}"))?;
        let state = web::Data::new(AppState {
            services: Services {
                world: world.clone(),
                pool,
                presence: presence.clone(),
                accounts,
                live: LiveSockets::default(),
                limits: UserLimits::new(cfg.limits()),
                mailer,
                links,
                cluster: cluster.clone(),
            },
            settings: EdgeSettings {
                allowed_origins: cfg.allowed_origins.clone(),
                public_origin: cfg.public_url.as_deref().and_then(split_origin),
                secure_cookies: cfg.served_over_tls(),
                trusted_proxies: cfg.trusted_proxies.clone(),
                dashboard: !cfg.no_dashboard,
                ws_frames_per_second: cfg.ws_frames_per_second,
                ws_timeout: cfg.ws_timeout(),
            },
            started: began,
        });
        if let Some(c) = &cluster {
            // Revocations reach the sockets on every node.
            let to_others = c.clone();
            state
                .services
                .live
                .tell_elsewhere(Box::new(move |user, revocation| {
                    if let Ok(v) = serde_json::to_value(revocation) {
                        to_others.sessions_ended(user, v);
                    }
                }));
            let here = state.clone();
            c.on_sessions_ended(Box::new(move |user, v| {
                match serde_json::from_value::<Revocation>(v) {
                    Ok(r) => {
                        here.services.live.end_here(user, r.ending());
                    }
                    Err(e) => log::warn!("cluster: a revocation that does not parse: {e}"),
                }
            }));
        }
        actix_web::rt::spawn(housekeeping(state.clone()));
        actix_web::rt::spawn(watch_accept_errors(metrics.clone()));
        let app_state = state.clone();
        let body_timeout = cfg.body_timeout();
        let index_html = static_dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("index.html")).ok());
        let headers = Arc::new(SecurityHeaders::new(
            index_html.as_deref(),
            cfg.served_over_tls(),
        ));
        let metrics_server = match &cfg.metrics_bind {
            Some(bind) => Some(serve_metrics(bind, state.clone())?),
            None => None,
        };
        let public_metrics = metrics_server.is_none();
        let max_connections = gate.max();
        let server = HttpServer::new(move || {
            let static_dir = static_dir.clone();
            let headers = headers.clone();
            App::new()
                .wrap(from_fn(connections::refuse_over_capacity))
                .wrap(from_fn(move |req, next| {
                    crate::api::body_deadline::enforce(body_timeout, req, next)
                }))
                .wrap(from_fn(move |req, next| {
                    crate::api::headers::add(headers.clone(), req, next)
                }))
                .app_data(state.clone())
                .configure(|c| crate::api::configure(c, static_dir, public_metrics))
        })
        .on_connect(move |_, ext| gate.on_connect(ext))
        // Our gate answers past `max_connections`; actix's own per-worker cap would instead
        // stop accepting and leave the rest waiting in the backlog, so it sits above ours.
        .max_connections(
            usize::try_from(max_connections)
                .unwrap_or(usize::MAX)
                .saturating_add(1024),
        )
        // A reconnect storm arrives faster than one accept loop takes it; the kernel caps
        // this at net.core.somaxconn.
        .backlog(4096)
        .disable_signals()
        .shutdown_timeout(cfg.shutdown_timeout_s)
        .listen(listener)
        .with_context(|| format!("cannot serve on {addr}"))?
        .run();
        let handle = server.handle();
        let server = actix_web::rt::spawn(server);
        log::info!("listening on http://{addr}");
        Ok(Application {
            port: addr.port(),
            handle,
            server,
            metrics_server,
            world,
            presence,
            shutdown_timeout: Duration::from_secs(cfg.shutdown_timeout_s),
            started_pets,
            state: app_state,
            lock,
            cluster,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate /metrics address (`--metrics-bind`), if there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|m| m.port)
    }

    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// The operations the edges use, for tests that drive a step of one directly.
    pub fn services(&self) -> &Services {
        &self.state.services
    }

    /// How many stored pets were brought to life at startup.
    pub fn started_pets(&self) -> usize {
        self.started_pets
    }

    /// Writes every dirty pet now and waits until it is durable.
    pub async fn flush(&self) -> anyhow::Result<FlushReport> {
        Ok(self.world.persister.send(Flush).await??)
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully.
    pub async fn run_until_signal(self, mut signals: StopSignals) -> anyhow::Result<()> {
        signals.recv().await;
        log::info!("stop requested: no new connections, finishing requests");
        self.shutdown().await.map(|_| ())
    }

    /// Graceful stop, in an order that loses nothing: stop accepting; stop every pet (no
    /// state changes after this); let each WebSocket send what is queued and close with
    /// "going away", so the last frame a viewer saw is the pet's final state; then write every
    /// pet while in-flight requests finish (bounded by the shutdown timeout, and each request
    /// body by the body timeout), instead of one after the other.
    pub async fn shutdown(self) -> anyhow::Result<FlushReport> {
        let Application {
            handle,
            server,
            metrics_server,
            world,
            presence,
            shutdown_timeout,
            lock,
            state,
            cluster,
            ..
        } = self;
        handle.pause().await;
        if let Some(c) = &cluster {
            // Before the pets stop here: each shard's pets are written and started by their
            // next owner, with no tick lost.
            let (shards, pets) = c.leave().await;
            log::info!("cluster: left; {shards} shard(s) and {pets} pet(s) went to other nodes");
        }
        log::info!("stopping {} pet(s)", world.registry.len());
        let stopping = world.clone();
        actix_web::rt::task::spawn_blocking(move || stopping.registry.stop_all())
            .await
            .context("stopping arbiters")?;
        match presence.send(Shutdown).await {
            Ok(n) if n > 0 => log::info!("closing {n} WebSocket session(s)"),
            _ => {}
        }

        // No pet changes any more: the final flush need not wait for the requests.
        let flushing = actix_web::rt::spawn(final_flush(world.clone()));
        log::info!(
            "finishing in-flight requests (at most {} s)",
            shutdown_timeout.as_secs()
        );
        let draining = Instant::now();
        handle.stop(true).await;
        let _ = server.await;
        let drained = draining.elapsed();
        if drained >= shutdown_timeout {
            log::warn!(
                "in-flight requests cut after the shutdown timeout ({} s)",
                shutdown_timeout.as_secs()
            );
        } else {
            log::info!(
                "in-flight requests finished in {:.1} s",
                drained.as_secs_f64()
            );
        }
        if let Some(m) = metrics_server {
            m.handle.stop(true).await;
            let _ = m.server.await;
        }
        // After the requests: a reset asked for during the drain still gets its chance.
        state.services.mailer.stop(mail::STOP_WAIT).await;
        let mut report = flushing
            .await
            .context("final flush task failed")?
            .context("final flush failed; unsaved pet states are lost")?;
        // Nothing a request does changes a pet today; if something ever does, it is not lost.
        if !world.dirty.is_empty() {
            let rest = world
                .persister
                .send(Flush)
                .await
                .context("persister is gone")?
                .context("final flush failed; unsaved pet states are lost")?;
            report.rows += rest.rows;
            report.seconds += rest.seconds;
        }
        log::info!(
            "stopped cleanly: final flush wrote {} pet(s) in {:.3} s; ticks_total={}",
            report.rows,
            report.seconds,
            world.metrics.ticks_total.get()
        );
        if let Some(lock) = lock {
            actix_web::rt::task::spawn_blocking(move || lock.release())
                .await
                .context("releasing the database lock")?;
        }
        Ok(report)
    }
}

/// The final flush, logging when it starts and ends (the persister logs its progress on a
/// long one).
async fn final_flush(world: Arc<World>) -> anyhow::Result<FlushReport> {
    let pending = world.dirty.len();
    log::info!("final flush: writing {pending} changed pet(s) while requests finish");
    let report = world
        .persister
        .send(FinalFlush)
        .await
        .context("persister is gone")??;
    log::info!(
        "final flush: wrote {} pet(s) in {:.3} s",
        report.rows,
        report.seconds
    );
    Ok(report)
}

/// SIGTERM and SIGINT, caught from the moment the process starts serving: installed before
/// the database is opened, so a stop requested while pets are still loading (or the instant
/// "listening on" is logged) is a graceful stop once startup is done, never a kill.
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Must run inside the runtime that will wait on them.
    pub fn install() -> anyhow::Result<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("installing SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing SIGINT handler")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => log::info!("SIGTERM received"),
            _ = self.int.recv() => log::info!("SIGINT received"),
        }
    }
}

/// The /metrics server on an address of its own.
struct MetricsServer {
    port: u16,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serves /metrics (and /healthz) on `bind` with one worker, so operators can keep the
/// figures on a private address while the app's port is public.
fn serve_metrics(bind: &str, state: web::Data<AppState>) -> anyhow::Result<MetricsServer> {
    let listener =
        TcpListener::bind(bind).with_context(|| format!("cannot listen on {bind} for /metrics"))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(crate::api::configure_metrics)
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .with_context(|| format!("cannot serve /metrics on {addr}"))?
    .run();
    let handle = server.handle();
    let server = actix_web::rt::spawn(server);
    log::info!("metrics on http://{addr}/metrics (not on the app's address)");
    Ok(MetricsServer {
        port: addr.port(),
        handle,
        server,
    })
}

/// How many connections to serve at once: `--max-connections`, or what the open-file limit
/// leaves after the reserve. Logged, since it is the number of viewers this server can hold.
fn connection_budget(cfg: &ServeArgs, files: connections::OpenFiles) -> u64 {
    let fits = connections::default_max_connections(files.soft);
    let max = cfg.max_connections.unwrap_or(fits);
    let raised = match files.raised_from {
        Some(from) => format!(" (raised from {from})"),
        None => String::new(),
    };
    log::info!(
        "open-file limit {}{raised}, hard limit {}: up to {max} connections{}",
        files.soft,
        files.hard,
        if cfg.max_connections.is_some() {
            " (--max-connections)"
        } else {
            ""
        }
    );
    if max > fits {
        log::warn!(
            "--max-connections {max} is more than the open-file limit {} leaves room for \
             ({fits}): past that, connections fail for want of descriptors instead of getting \
             a 503. Raise the hard limit (ulimit -Hn, LimitNOFILE=, docker ulimits)",
            files.soft
        );
    }
    max
}

/// Every second: counts failed accepts into /metrics and logs when an episode of them is
/// over (the logger logs its start, see `logging`).
async fn watch_accept_errors(metrics: Arc<Metrics>) {
    let mut every = actix_web::rt::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let total = crate::logging::ACCEPT_ERRORS.total();
        let counted = metrics.accept_errors_total.get();
        if total > counted {
            metrics.accept_errors_total.inc_by(total - counted);
        }
        crate::logging::ACCEPT_ERRORS.end_episode_if_quiet();
    }
}

/// Hourly: forget rate-limiter entries of quiet clients and delete expired sessions.
async fn housekeeping(state: web::Data<AppState>) {
    let mut every = actix_web::rt::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        state.services.accounts.forget_quiet_clients();
        state.services.limits.forget_quiet_users();
        match state.services.purge_expired_sessions().await {
            Ok(n) if n > 0 => log::info!("removed {n} expired session(s)"),
            Ok(_) => {}
            Err(e) => log::warn!("removing expired sessions failed: {e}"),
        }
    }
}

/// Flushes every interval. After a failure it retries after 0.5 s, then 1 s, 2 s, … (capped
/// at the interval), so a returning database is caught up quickly without being hammered.
async fn persist_loop(persister: Addr<Persister>, every: Duration) {
    const FIRST_RETRY: Duration = Duration::from_millis(500);
    let mut wait = every;
    let mut backoff = FIRST_RETRY;
    loop {
        actix_web::rt::time::sleep(wait).await;
        wait = match persister.send(Flush).await {
            Ok(Ok(_)) => {
                backoff = FIRST_RETRY;
                every
            }
            Ok(Err(_)) => {
                let retry = backoff.min(every);
                backoff = backoff.saturating_mul(2);
                retry
            }
            Err(_) => return, // the persister is gone: shutting down
        };
    }
}
