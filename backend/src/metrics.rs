//! Prometheus metrics for `/metrics` and the dashboard. One `Metrics` per server, passed
//! around explicitly (no globals), so in-process tests can run several servers side by side.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry,
};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

/// Reads figures that live elsewhere into the gauges, just before each scrape.
type ScrapeHook = Box<dyn Fn(&Metrics) + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    pub pets_alive: IntGauge,
    pub ticks_total: IntCounter,
    /// Pets that have ticked at least once in this process: with `pets_alive`, it tells when
    /// a start is complete (every pet live and ticking), which the benchmarks time.
    pub first_ticks_total: IntCounter,
    pub persisted_total: IntCounter,
    pub persist_seconds: Gauge,
    pub persist_rows: IntGauge,
    pub persist_failures_total: IntCounter,
    pub persist_lag_seconds: Gauge,
    /// Read at each scrape (see [`Metrics::on_scrape`]), so it keeps counting while the
    /// database is away, when no flush completes to update it.
    pub dirty_pets: IntGauge,
    /// Pets that died but whose death is not durable yet, so not shown yet.
    pub deaths_pending: IntGauge,
    /// 1 once the SQLite file was found deleted or replaced while running: nothing more can
    /// be saved until the server is restarted on the right file.
    pub database_file_lost: IntGauge,
    pub ws_connections: IntGauge,
    pub viewers: IntGauge,
    pub active_pets: IntGauge,
    pub ws_frames_in_total: IntCounter,
    pub ws_errors_total: IntCounterVec,
    pub startup_seconds: Gauge,
    pub pet_restarts_total: IntCounter,
    pub slow_viewers_dropped_total: IntCounter,
    /// Content-Security-Policy violations browsers reported.
    pub csp_violations_total: IntCounter,
    /// The open-file limit after raising it at start (soft = hard where allowed).
    pub open_files_limit: IntGauge,
    /// `--max-connections`: HTTP connections served at once; past it, an immediate 503.
    pub max_connections: IntGauge,
    /// HTTP connections open now (WebSockets included).
    pub connections_open: IntGauge,
    /// Connections answered 503 because `--max-connections` were already open.
    pub connections_refused_total: IntCounter,
    /// Connections the kernel could not hand over (out of file descriptors, usually).
    pub accept_errors_total: IntCounter,
    /// Cluster mode: nodes this node sees alive (itself included); 1 on a single node.
    pub cluster_nodes: IntGauge,
    /// Cluster mode: shards whose lease this node holds (all 1,024 on a single node).
    pub owned_shards: IntGauge,
    /// Requests to pets owned by another node, by operation and outcome.
    pub remote_requests_total: IntCounterVec,
    /// How long those requests took, by operation.
    pub remote_request_seconds: HistogramVec,
    pub lease_renew_failures_total: IntCounter,
    /// Pet rows a flush left unwritten because this node no longer held their shard.
    pub fenced_rows_total: IntCounter,
    pub shards_acquired_total: IntCounter,
    pub shards_handed_off_total: IntCounter,
    pub shards_lost_total: IntCounter,
    /// When the last successful flush finished (ms since the epoch); the lag is computed from
    /// it at scrape time so it keeps growing while the database is away.
    last_flush_ok_ms: AtomicI64,
    /// The monotonic origin of `last_flush_ok_ms`: the lag is measured on a clock that a
    /// wall-clock step cannot move.
    origin: std::time::Instant,
    scrape_hook: OnceLock<ScrapeHook>,
}

/// Registers a metric and hands it back. Names and help texts are literals, so a failure is
/// a programming error caught by every test that builds `Metrics`.
#[allow(clippy::expect_used)]
fn registered<M: Collector + Clone + 'static>(r: &Registry, metric: prometheus::Result<M>) -> M {
    let m = metric.expect("metric name is valid");
    r.register(Box::new(m.clone()))
        .expect("metric registered once");
    m
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    registered(r, Gauge::new(name, help))
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    registered(r, IntGauge::new(name, help))
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    registered(r, IntCounter::new(name, help))
}

impl Metrics {
    #[allow(clippy::expect_used)] // metric names are literals: a failure is a programming error
    pub fn new() -> Self {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("process collector registers once");
        let ws_errors_total = registered(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "livepet_ws_errors_total",
                    "Error frames sent to WebSocket clients, by code",
                ),
                &["code"],
            ),
        );
        Metrics {
            pets_alive: int_gauge(&r, "livepet_pets_alive", "Pet actors alive and ticking"),
            ticks_total: counter(&r, "livepet_ticks_total", "Pet ticks applied"),
            first_ticks_total: counter(
                &r,
                "livepet_first_ticks_total",
                "Pets that have ticked at least once since this process started",
            ),
            persisted_total: counter(&r, "livepet_persisted_total", "Pet snapshots written"),
            persist_seconds: gauge(&r, "livepet_persist_seconds", "Duration of the last flush"),
            persist_rows: int_gauge(&r, "livepet_persist_rows", "Rows written by the last flush"),
            persist_failures_total: counter(
                &r,
                "livepet_persist_failures_total",
                "Flushes that failed and will be retried",
            ),
            persist_lag_seconds: gauge(
                &r,
                "livepet_persist_lag_seconds",
                "Seconds since the last successful flush",
            ),
            dirty_pets: int_gauge(
                &r,
                "livepet_dirty_pets",
                "Pets changed since the last flush",
            ),
            deaths_pending: int_gauge(
                &r,
                "livepet_deaths_pending",
                "Pets that died but whose death is not written yet (not shown until it is)",
            ),
            database_file_lost: int_gauge(
                &r,
                "livepet_database_file_lost",
                "1 once the SQLite database file was deleted or replaced while running",
            ),
            ws_connections: int_gauge(&r, "livepet_ws_connections", "Open WebSocket sessions"),
            viewers: int_gauge(&r, "livepet_viewers", "Pet watches across all sessions"),
            active_pets: int_gauge(&r, "livepet_active_pets", "Pets on someone's screen now"),
            ws_frames_in_total: counter(
                &r,
                "livepet_ws_frames_in_total",
                "Frames received from WebSocket clients",
            ),
            ws_errors_total,
            startup_seconds: gauge(
                &r,
                "livepet_startup_seconds",
                "Seconds from start until every stored pet was ticking",
            ),
            pet_restarts_total: counter(
                &r,
                "livepet_pet_restarts_total",
                "Pets that panicked and were restarted from their last state",
            ),
            slow_viewers_dropped_total: counter(
                &r,
                "livepet_slow_viewers_dropped_total",
                "Viewers dropped because their client stopped reading",
            ),
            csp_violations_total: counter(
                &r,
                "livepet_csp_violations_total",
                "Content-Security-Policy violations reported by browsers",
            ),
            open_files_limit: int_gauge(
                &r,
                "livepet_open_files_limit",
                "Open-file limit (soft) after raising it to the hard limit at start",
            ),
            max_connections: int_gauge(
                &r,
                "livepet_max_connections",
                "HTTP connections served at once (--max-connections); past it an immediate 503",
            ),
            connections_open: int_gauge(
                &r,
                "livepet_connections_open",
                "HTTP connections open now, WebSockets included",
            ),
            connections_refused_total: counter(
                &r,
                "livepet_connections_refused_total",
                "Connections answered 503 because --max-connections were already open",
            ),
            accept_errors_total: counter(
                &r,
                "livepet_accept_errors_total",
                "Failed accepts (usually out of file descriptors); each episode is logged once",
            ),
            cluster_nodes: int_gauge(
                &r,
                "livepet_cluster_nodes",
                "Nodes this node sees alive, itself included",
            ),
            owned_shards: int_gauge(
                &r,
                "livepet_owned_shards",
                "Shards of pets whose lease this node holds",
            ),
            remote_requests_total: registered(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "livepet_remote_requests_total",
                        "Requests to pets owned by another node, by operation and outcome",
                    ),
                    &["op", "outcome"],
                ),
            ),
            remote_request_seconds: registered(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "livepet_remote_request_seconds",
                        "Round trip of requests to pets owned by another node",
                    )
                    .buckets(vec![
                        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ]),
                    &["op"],
                ),
            ),
            lease_renew_failures_total: counter(
                &r,
                "livepet_lease_renew_failures_total",
                "Heartbeats that could not renew this node's leases",
            ),
            fenced_rows_total: counter(
                &r,
                "livepet_fenced_rows_total",
                "Pet rows a flush did not write because this node no longer held their shard",
            ),
            shards_acquired_total: counter(
                &r,
                "livepet_shards_acquired_total",
                "Shards this node took a lease on and loaded",
            ),
            shards_handed_off_total: counter(
                &r,
                "livepet_shards_handed_off_total",
                "Shards this node flushed and released for another node",
            ),
            shards_lost_total: counter(
                &r,
                "livepet_shards_lost_total",
                "Shards whose lease expired under this node (its pets stopped unwritten)",
            ),
            last_flush_ok_ms: AtomicI64::new(0),
            origin: std::time::Instant::now(),
            scrape_hook: OnceLock::new(),
            registry: r,
        }
    }

    /// Records a successful flush.
    pub fn flushed(&self, rows: usize, seconds: f64) {
        self.persisted_total.inc_by(rows as u64);
        self.persist_rows.set(rows as i64);
        self.persist_seconds.set(seconds);
        self.last_flush_ok_ms
            .store(self.monotonic_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since this `Metrics` was made, on the monotonic clock.
    fn monotonic_ms(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Seconds since the last successful flush (since start before the first one).
    pub fn persist_lag(&self) -> f64 {
        let last = self.last_flush_ok_ms.load(Ordering::Relaxed);
        (self.monotonic_ms() - last).max(0) as f64 / 1000.0
    }

    /// Has `read` bring gauges up to date before each scrape (the first hook set wins; the
    /// persister sets it, so these metrics never depend on a flush succeeding).
    pub fn on_scrape(&self, read: impl Fn(&Metrics) + Send + Sync + 'static) {
        let _ = self.scrape_hook.set(Box::new(read));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if let Some(read) = self.scrape_hook.get() {
            read(self);
        }
        self.persist_lag_seconds.set(self.persist_lag());
        let mut buf = Vec::with_capacity(8 * 1024);
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            log::error!("encoding metrics failed: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Resident memory of this process, from /proc (0 where unavailable).
    pub fn resident_memory_bytes() -> u64 {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|pages| pages * 4096)
            .unwrap_or(0)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
