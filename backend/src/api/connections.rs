//! The connection budget: the open-file limit raised to what the host allows, how many HTTP
//! connections (WebSockets included) that leaves room for, and an immediate 503 for every
//! connection past it. A host's default soft limit (1,024 under most service managers)
//! capped the server near 1,000 viewers, and the viewers past it were left to time out.

use crate::error::AppError;
use crate::metrics::Metrics;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The open-file limits of this process after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit now in force: what the process may really open.
    pub soft: u64,
    pub hard: u64,
    /// The soft limit before it was raised, when it was.
    pub raised_from: Option<u64>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (no privilege needed). Every open
/// socket is a descriptor, so this is the ceiling on viewers.
pub fn raise_open_file_limit() -> OpenFiles {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    let (soft, hard) = (
        limit.current.unwrap_or(u64::MAX),
        limit.maximum.unwrap_or(u64::MAX),
    );
    if soft >= hard {
        return OpenFiles {
            soft,
            hard,
            raised_from: None,
        };
    }
    limit.current = limit.maximum;
    match setrlimit(Resource::Nofile, limit) {
        Ok(()) => OpenFiles {
            soft: hard,
            hard,
            raised_from: Some(soft),
        },
        Err(e) => {
            log::warn!("could not raise the open-file limit from {soft} to {hard}: {e}");
            OpenFiles {
                soft,
                hard,
                raised_from: None,
            }
        }
    }
}

/// Descriptors kept back from connections: the database (pool, persister, WAL files), the
/// loader's connections at start, the runtime's own (epoll, eventfd per thread), the
/// listeners, logs and mail, and the refused connections themselves, which hold a
/// descriptor until their 503 is written and the socket closed (up to a second: actix's
/// disconnect timeout; lowering it made a graceful stop wait on open WebSockets). A fixed part plus a
/// sixteenth: measured with soft = hard = 1,024 and 1,500 viewers arriving, a reserve of
/// 96 still ran out for a moment while 572 were being refused.
pub fn reserve(limit: u64) -> u64 {
    64 + limit / 16
}

/// The default `--max-connections` for an open-file limit.
pub fn default_max_connections(limit: u64) -> u64 {
    limit.saturating_sub(reserve(limit)).max(1)
}

/// Counts open connections. Each connection holds a [`Slot`] in its extensions from the
/// moment it is accepted until it closes; a connection that arrived past the maximum is
/// marked, and every request on it is answered 503 at once.
pub struct ConnectionGate {
    open: AtomicU64,
    max: u64,
    metrics: Arc<Metrics>,
}

/// One connection's place in the count, given back when the connection is dropped.
pub struct Slot {
    gate: Arc<ConnectionGate>,
    over: bool,
    serial: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.open.fetch_sub(1, Ordering::Relaxed);
        self.gate.metrics.connections_open.dec();
    }
}

static SERIAL: AtomicU64 = AtomicU64::new(0);

impl ConnectionGate {
    pub fn new(max: u64, metrics: Arc<Metrics>) -> Arc<ConnectionGate> {
        metrics
            .max_connections
            .set(i64::try_from(max).unwrap_or(i64::MAX));
        Arc::new(ConnectionGate {
            open: AtomicU64::new(0),
            max,
            metrics,
        })
    }

    /// Connections served at once.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// For `HttpServer::on_connect`: counts the new connection.
    pub fn on_connect(self: &Arc<Self>, ext: &mut Extensions) {
        let now_open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.metrics.connections_open.inc();
        ext.insert(Slot {
            gate: self.clone(),
            over: now_open > self.max,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
        });
    }
}

/// How long a refused client is asked to wait: 2–5 s, spread by connection so that a crowd
/// refused together does not come back together.
fn retry_after(serial: u64) -> u64 {
    2 + serial % 4
}

/// The middleware: a request on a connection past the maximum gets 503 with Retry-After and
/// the connection is closed, freeing its descriptor. Health and metrics are still answered
/// (then closed too), so an operator can see a full server rather than a dead one.
pub async fn refuse_over_capacity(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(slot) = req.conn_data::<Slot>().filter(|s| s.over) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    if matches!(req.path(), "/healthz" | "/readyz" | "/metrics") {
        let mut res = next.call(req).await?.map_into_left_body();
        res.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        return Ok(res);
    }
    slot.gate.metrics.connections_refused_total.inc();
    let serial = slot.serial;
    let mut refused = AppError::AtCapacity(retry_after(serial)).error_response();
    refused
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    Ok(req.into_response(refused).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_leaves_most_descriptors_to_connections() {
        assert_eq!(default_max_connections(1_024), 896);
        assert_eq!(default_max_connections(20_000), 18_686);
        assert_eq!(default_max_connections(1_048_576), 982_976);
        assert_eq!(default_max_connections(10), 1);
    }

    #[test]
    fn refused_clients_come_back_spread_over_seconds() {
        let waits: std::collections::BTreeSet<u64> = (0..8).map(retry_after).collect();
        assert_eq!(waits.into_iter().collect::<Vec<_>>(), vec![2, 3, 4, 5]);
    }

    #[test]
    fn a_connection_past_the_maximum_is_marked_and_counted_back() {
        let gate = ConnectionGate::new(2, Arc::new(Metrics::new()));
        let mut conns: Vec<Extensions> = (0..3).map(|_| Extensions::new()).collect();
        for ext in &mut conns {
            gate.on_connect(ext);
        }
        let over: Vec<bool> = conns
            .iter()
            .map(|e| e.get::<Slot>().unwrap().over)
            .collect();
        assert_eq!(over, vec![false, false, true]);
        assert_eq!(gate.metrics.connections_open.get(), 3);
        conns.clear();
        assert_eq!(gate.open.load(Ordering::Relaxed), 0);
        assert_eq!(gate.metrics.connections_open.get(), 0);
    }
}
