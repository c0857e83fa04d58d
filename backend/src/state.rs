//! AppState: what request handlers and WebSocket sessions share — the services, the edge
//! settings from the command line, and the dashboard's figures.

use crate::metrics::Metrics;
use crate::services::Services;
use livepet_shared::wire::Stats;
use std::time::{Duration, Instant};

/// Settings of the HTTP and WebSocket edges.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Origins besides the server's own that may open `/ws`.
    pub allowed_origins: Vec<String>,
    /// Mark the session cookie Secure even over plain http.
    pub secure_cookies: bool,
    /// Peers allowed to name the client address through `X-Forwarded-For`.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Whether `subscribe_stats` is served.
    pub dashboard: bool,
    /// Frames a WebSocket session may send per second.
    pub ws_frames_per_second: u32,
    /// How long a WebSocket client may stay silent (server running time) before it is dropped.
    pub ws_timeout: Duration,
}

pub struct AppState {
    pub services: Services,
    pub settings: EdgeSettings,
    pub started: Instant,
}

impl AppState {
    pub fn metrics(&self) -> &Metrics {
        &self.services.world.metrics
    }

    /// World-wide aggregates for the dashboard.
    pub fn stats(&self, ticks_per_second: f64) -> Stats {
        let m = self.metrics();
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        Stats {
            pets_alive: count(m.pets_alive.get()),
            ticks_per_second,
            viewers: count(m.viewers.get()),
            active_pets: count(m.active_pets.get()),
            connections: count(m.ws_connections.get()),
            last_flush_rows: count(m.persist_rows.get()),
            last_flush_seconds: m.persist_seconds.get(),
            persist_lag_seconds: m.persist_lag(),
            resident_memory_bytes: Metrics::resident_memory_bytes(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}
