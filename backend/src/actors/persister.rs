//! Persister: writes dirty pet snapshots to the database in batches, on its own thread
//! (a SyncArbiter), so a slow or absent database never delays a tick.
//!
//! It runs one thread on purpose: messages are handled in order, so a death written by
//! `PersistNow` can never be overtaken by an older snapshot from an earlier flush.

use crate::db::models::PetStateRow;
use crate::db::{queries, DbConn, DbUrl};
use crate::metrics::Metrics;
use crate::world::{DirtyPets, Snapshot};
use actix::prelude::*;
use std::sync::Arc;
use std::time::Instant;

/// Snapshots per transaction.
const BATCH: usize = 20_000;

/// Writes everything dirty up to now; replies once it is durable.
#[derive(Message)]
#[rtype(result = "Result<FlushReport, PersistError>")]
pub struct Flush;

/// Writes these snapshots now (a death); on failure they join the dirty set for the next flush.
#[derive(Message)]
#[rtype(result = "Result<(), PersistError>")]
pub struct PersistNow {
    pub snapshots: Vec<Snapshot>,
}

/// What a flush wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlushReport {
    pub rows: usize,
    pub seconds: f64,
}

/// A flush that could not complete; what it could not write stays dirty.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PersistError(pub String);

pub struct Persister {
    url: DbUrl,
    conn: Option<DbConn>,
    dirty: Arc<DirtyPets>,
    metrics: Arc<Metrics>,
    /// Whether the last attempt failed, so state changes are logged once, not every retry.
    failing: bool,
}

impl Persister {
    pub fn new(url: DbUrl, dirty: Arc<DirtyPets>, metrics: Arc<Metrics>) -> Self {
        Persister {
            url,
            conn: None,
            dirty,
            metrics,
            failing: false,
        }
    }

    fn connection(&mut self) -> Result<&mut DbConn, PersistError> {
        if self.conn.is_none() {
            let conn =
                crate::db::establish(&self.url).map_err(|e| PersistError(format!("{e:#}")))?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| PersistError("no database connection".into()))
    }

    /// Writes `snaps` batch by batch. On failure, the unwritten rest goes back to the dirty set.
    fn write(&mut self, mut snaps: Vec<Snapshot>) -> Result<usize, PersistError> {
        // In id order each batch touches a run of neighbouring table pages; in the dirty
        // set's hash order every batch would rewrite pages all over the table (measured on
        // SQLite: 20 s instead of ~2 s for a million pets).
        snaps.sort_unstable_by_key(|s| s.id);
        let mut written = 0;
        let result = (|| {
            let conn = self.connection()?;
            for batch in snaps.chunks(BATCH) {
                let rows: Vec<PetStateRow> = batch.iter().map(PetStateRow::from).collect();
                queries::write_snapshots(conn, &rows).map_err(|e| PersistError(e.to_string()))?;
                written += batch.len();
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                if self.failing {
                    self.failing = false;
                    log::info!("database writes recovered; persisting again");
                }
                Ok(written)
            }
            Err(e) => {
                let kept = snaps.len() - written;
                self.dirty.restore(snaps.into_iter().skip(written));
                // Drop the connection: it may be broken; the next attempt reconnects.
                self.conn = None;
                self.metrics.persist_failures_total.inc();
                if !self.failing {
                    self.failing = true;
                    log::error!(
                        "database writes failing ({e}); keeping {kept} pet state(s) in memory and retrying"
                    );
                }
                Err(e)
            }
        }
    }
}

impl Actor for Persister {
    type Context = SyncContext<Self>;
}

impl Handler<Flush> for Persister {
    type Result = Result<FlushReport, PersistError>;

    fn handle(&mut self, _: Flush, _: &mut SyncContext<Self>) -> Self::Result {
        let start = Instant::now();
        let snaps = self.dirty.take_all();
        let rows = snaps.len();
        if rows == 0 {
            self.metrics.flushed(0, 0.0);
            return Ok(FlushReport { rows, seconds: 0.0 });
        }
        self.write(snaps)?;
        let seconds = start.elapsed().as_secs_f64();
        self.metrics.flushed(rows, seconds);
        self.metrics.dirty_pets.set(self.dirty.len() as i64);
        log::info!("flushed {rows} pet(s) in {seconds:.3} s");
        Ok(FlushReport { rows, seconds })
    }
}

impl Handler<PersistNow> for Persister {
    type Result = Result<(), PersistError>;

    fn handle(&mut self, msg: PersistNow, _: &mut SyncContext<Self>) -> Self::Result {
        let n = msg.snapshots.len();
        self.write(msg.snapshots)?;
        self.metrics.persisted_total.inc_by(n as u64);
        Ok(())
    }
}
