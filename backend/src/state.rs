//! AppState: what request handlers and WebSocket sessions share — the services, the edge
//! settings from the command line, and the dashboard's figures.

use crate::metrics::Metrics;
use crate::services::Services;
use actix_web::http::header;
use actix_web::HttpRequest;
use livepet_shared::wire::Stats;
use std::time::{Duration, Instant};

/// Settings of the HTTP and WebSocket edges.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Origins besides the server's own that may open `/ws`.
    pub allowed_origins: Vec<String>,
    /// `--public-url`, when given, as (scheme, host[:port]): the server's own origin,
    /// whatever the request's headers say.
    pub public_origin: Option<(String, String)>,
    /// Mark the session cookie Secure: `--secure-cookies`, or an https `--public-url`.
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

impl EdgeSettings {
    /// Whether the request's peer is one of `--trusted-proxies`.
    pub fn from_trusted_proxy(&self, req: &HttpRequest) -> bool {
        req.peer_addr()
            .is_some_and(|a| self.trusted_proxies.iter().any(|n| n.contains(&a.ip())))
    }

    /// The origin a request was made to, as (scheme, host): `--public-url` when configured;
    /// otherwise the request's `Host` over plain http (the server speaks nothing else),
    /// with `Forwarded` / `X-Forwarded-Host` / `X-Forwarded-Proto` believed only from a
    /// trusted proxy.
    pub fn request_origin(&self, req: &HttpRequest) -> (String, String) {
        if let Some((scheme, host)) = &self.public_origin {
            return (scheme.clone(), host.clone());
        }
        if self.from_trusted_proxy(req) {
            let info = req.connection_info();
            return (info.scheme().to_string(), info.host().to_string());
        }
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        ("http".to_string(), host)
    }
}

/// `https://pets.example.com` → ("https", "pets.example.com"); `None` for anything that is
/// not an http(s) origin (the flag's parser has already refused those).
pub fn split_origin(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.trim_end_matches('/');
    ((scheme == "http" || scheme == "https") && !host.is_empty() && !host.contains('/'))
        .then(|| (scheme.to_string(), host.to_string()))
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
