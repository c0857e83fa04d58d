//! Startup and shutdown: open and migrate the database, start the arbiters, the persister and
//! the treat refresher, bring every stored live pet to life, and serve HTTP. `Application`
//! binds before it loads, so a taken port fails fast, and reports the real port (tests bind 0).

use crate::actors::persister::{Flush, FlushReport, Persister};
use crate::actors::presence::{Presence, Shutdown};
use crate::actors::registry::PetRegistry;
use crate::actors::treat_refresher::TreatRefresher;
use crate::auth::Auth;
use crate::config::ServeArgs;
use crate::db::{self, queries, DbPool};
use crate::metrics::Metrics;
use crate::world::{DirtyPets, PetRecord, World};
use actix::{Actor, Addr, SyncArbiter};
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use livepet_shared::{PetId, PetState, Rules, Species, UserId};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pets read from the database per page at startup.
const LOAD_PAGE: i64 = 100_000;

/// What request handlers and viewer sessions share.
pub struct AppState {
    pub world: Arc<World>,
    pub pool: DbPool,
    pub auth: Auth,
    pub presence: Addr<Presence>,
    pub allowed_origins: Vec<String>,
    pub dashboard: bool,
    pub ws_frames_per_second: u32,
    pub started: Instant,
}

/// A running server.
pub struct Application {
    addr: SocketAddr,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    world: Arc<World>,
    pool: DbPool,
    presence: Addr<Presence>,
    shutdown_timeout: Duration,
    started_pets: usize,
}

impl Application {
    /// Starts everything and returns once every stored live pet is ticking and the server is
    /// accepting. Must run inside an actix System.
    pub async fn build(cfg: ServeArgs) -> anyhow::Result<Application> {
        let began = Instant::now();
        let url = cfg.db.database_url.clone();

        let listener = TcpListener::bind(&cfg.bind)
            .with_context(|| format!("cannot listen on {}", cfg.bind))?;
        let addr = listener.local_addr()?;

        let migrate_url = url.clone();
        actix_web::rt::task::spawn_blocking(move || db::connect_and_migrate(&migrate_url))
            .await
            .context("migration task failed")??;
        let pool = db::pool(&url, 8)?;
        // Before any pet starts: hashing the dummy password takes a moment.
        let auth = actix_web::rt::task::spawn_blocking({
            let (per_minute, days, secure) = (
                cfg.auth_attempts_per_minute,
                cfg.session_days,
                cfg.secure_cookies,
            );
            move || Auth::new(per_minute, Duration::from_secs(days * 86_400), secure)
        })
        .await
        .context("auth setup task failed")?
        .map_err(|e| anyhow::anyhow!("auth setup failed: {e}"))?;

        let rules = Rules {
            death_age: cfg.death_age,
            ..Rules::default()
        };
        let threads = cfg.arbiter_count();
        let metrics = Arc::new(Metrics::new());
        let dirty = Arc::new(DirtyPets::new(threads));
        let persister = {
            let (url, dirty, metrics) = (url.clone(), dirty.clone(), metrics.clone());
            SyncArbiter::start(1, move || {
                Persister::new(url.clone(), dirty.clone(), metrics.clone())
            })
        };
        let world = Arc::new(World {
            rules,
            tick: cfg.tick(),
            registry: PetRegistry::new(threads),
            dirty,
            metrics: metrics.clone(),
            persister: persister.clone(),
        });

        log::info!(
            "loading live pets from {url} onto {threads} arbiter(s), tick {} ms",
            cfg.tick_ms
        );
        let loader_world = world.clone();
        let load_url = url.clone();
        let started_pets =
            actix_web::rt::task::spawn_blocking(move || load_pets(&load_url, &loader_world))
                .await
                .context("pet loader task failed")??;
        let secs = began.elapsed().as_secs_f64();
        metrics.startup_seconds.set(secs);
        log::info!(
            "{started_pets} pets ticking {secs:.2} s after start ({:.0} pets/s)",
            started_pets as f64 / secs.max(1e-9)
        );

        let presence = Presence::new(metrics.clone()).start();
        TreatRefresher::new(
            pool.clone(),
            Duration::from_millis(cfg.treat_refresh_ms),
            rules.max_treats,
            presence.clone(),
        )
        .start();
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
        let state = web::Data::new(AppState {
            world: world.clone(),
            pool: pool.clone(),
            auth,
            presence: presence.clone(),
            allowed_origins: cfg.allowed_origins.clone(),
            dashboard: !cfg.no_dashboard,
            ws_frames_per_second: cfg.ws_frames_per_second,
            started: began,
        });
        actix_web::rt::spawn(housekeeping(state.clone()));
        let server = HttpServer::new(move || {
            let static_dir = static_dir.clone();
            App::new()
                .app_data(state.clone())
                .configure(|c| crate::http::configure(c, static_dir))
        })
        .disable_signals()
        .shutdown_timeout(cfg.shutdown_timeout_s)
        .listen(listener)
        .with_context(|| format!("cannot serve on {addr}"))?
        .run();
        let handle = server.handle();
        let server = actix_web::rt::spawn(server);
        log::info!("listening on http://{addr}");
        Ok(Application {
            addr,
            handle,
            server,
            world,
            pool,
            presence,
            shutdown_timeout: Duration::from_secs(cfg.shutdown_timeout_s),
            started_pets,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
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
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        wait_for_signal().await?;
        log::info!("stop requested: no new connections, finishing requests");
        self.shutdown().await.map(|_| ())
    }

    /// Graceful stop, in an order that loses nothing: stop accepting; stop every pet (no
    /// state changes after this); let each WebSocket send what is queued and close with
    /// "going away", so the last frame a viewer saw is the pet's final state; finish
    /// in-flight requests (bounded by the shutdown timeout); flush everything.
    pub async fn shutdown(self) -> anyhow::Result<FlushReport> {
        self.handle.pause().await;
        let world = self.world.clone();
        log::info!("stopping {} pet(s)", world.registry.len());
        actix_web::rt::task::spawn_blocking(move || world.registry.stop_all())
            .await
            .context("stopping arbiters")?;
        match self.presence.send(Shutdown).await {
            Ok(n) if n > 0 => log::info!("closing {n} WebSocket session(s)"),
            _ => {}
        }
        log::info!(
            "finishing in-flight requests (at most {} s)",
            self.shutdown_timeout.as_secs()
        );
        self.handle.stop(true).await;
        let _ = self.server.await;
        log::info!(
            "flushing every pet ({} changed since the last flush)",
            self.world.dirty.len()
        );
        let report = self
            .world
            .persister
            .send(Flush)
            .await
            .context("persister is gone")?
            .context("final flush failed; unsaved pet states are lost")?;
        log::info!(
            "stopped cleanly: final flush wrote {} pet(s) in {:.3} s; ticks_total={}",
            report.rows,
            report.seconds,
            self.world.metrics.ticks_total.get()
        );
        Ok(report)
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM received"),
        _ = int.recv() => log::info!("SIGINT received"),
    }
    Ok(())
}

/// Hourly: forget rate-limiter entries of quiet clients and delete expired sessions.
async fn housekeeping(state: web::Data<AppState>) {
    let mut every = actix_web::rt::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        state.auth.forget_quiet_clients();
        let pool = state.pool.clone();
        let purged = actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<usize> {
            let mut conn = pool.get()?;
            Ok(queries::purge_expired_sessions(
                &mut conn,
                crate::clock::now_ms(),
            )?)
        })
        .await;
        match purged {
            Ok(Ok(n)) if n > 0 => log::info!("removed {n} expired session(s)"),
            Ok(Err(e)) => log::warn!("removing expired sessions failed: {e:#}"),
            _ => {}
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

/// Reads every live pet page by page and starts them on the arbiters. Blocking.
fn load_pets(url: &db::DbUrl, world: &Arc<World>) -> anyhow::Result<usize> {
    let mut conn = db::establish(url)?;
    let total = queries::count_live_pets(&mut conn)? as usize;
    let began = Instant::now();
    let mut after = 0i64;
    let mut started = 0usize;
    let mut next_log = 200_000usize;
    loop {
        let rows =
            queries::live_pets_page(&mut conn, after, LOAD_PAGE).context("reading live pets")?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let recs: Vec<PetRecord> = rows
            .into_iter()
            .filter_map(|r| {
                let Some(species) = Species::parse(&r.species) else {
                    log::warn!(
                        "pet {} has unknown species `{}`; not started",
                        r.id,
                        r.species
                    );
                    return None;
                };
                Some(PetRecord {
                    id: PetId(r.id),
                    owner: UserId(r.user_id),
                    name: r.name.into_boxed_str(),
                    species,
                    born_at: r.created_at,
                    state: PetState {
                        age: r.age.max(0) as u32,
                        hunger: r.hunger.max(0) as u32,
                        alive: r.is_alive,
                    },
                })
            })
            .collect();
        started += world.start_many(recs);
        if started >= next_log {
            let secs = began.elapsed().as_secs_f64();
            log::info!(
                "started {started}/{total} pets ({:.0} pets/s)",
                started as f64 / secs.max(1e-9)
            );
            next_log += 200_000;
        }
    }
    Ok(started)
}
