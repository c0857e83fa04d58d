//! Persister: writes dirty pet snapshots and pending deaths to the database in batches, on its
//! own thread (a SyncArbiter), so a slow or absent database never delays a tick.
//!
//! It runs one thread on purpose: messages are handled in order, and dead rows are never
//! updated again, so no older snapshot can overwrite a newer one or bring a dead pet back.
//!
//! Deaths are not written one by one. A dying pet queues its death in [`DirtyPets`] and
//! shows nothing until it is durable; one [`carry_deaths`] task (started by the first death
//! while none runs) asks for [`WriteDeaths`] until every queued death is written, retrying
//! with backoff while the database is away, and every [`Flush`] writes the queued deaths with
//! its batches too. An outage therefore delays deaths, all of them together, and never lies
//! about them or holds the persister once per death.
//!
//! Before and after every write it checks that the SQLite file is still the one the world
//! was loaded from ([`DbFile`](crate::world::dirty::DbFile)): a deleted or replaced file fails
//! every flush from then on, loudly, instead of writing into a file nobody will read again.

use crate::actors::pet::DeathDurable;
use crate::db::models::PetStateRow;
use crate::db::queries::BulkCommit;
use crate::db::{queries, DbConn, DbUrl};
use crate::metrics::Metrics;
use crate::world::dirty::PendingDeath;
use crate::world::fence::shard_of;
use crate::world::{DirtyPets, Fence, Snapshot};
use actix::prelude::*;
use livepet_shared::PetId;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Snapshots per transaction: small enough that a request's write never waits long for the
/// database (SQLite has one writer).
const BATCH: usize = 20_000;

/// Snapshots per transaction in the final flush, when nothing else is left to write.
const FINAL_BATCH: usize = 100_000;

/// How often a long flush logs how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// First wait before a failed death write is retried; doubled per failure up to
/// [`DEATH_RETRY_MAX`], so deaths reach their viewers within about that long after the
/// database returns.
const DEATH_RETRY_FIRST: Duration = Duration::from_millis(100);
const DEATH_RETRY_MAX: Duration = Duration::from_secs(2);

/// Writes everything dirty up to now, and every pending death; replies once it is durable.
#[derive(Message)]
#[rtype(result = "Result<FlushReport, PersistError>")]
pub struct Flush;

/// The last flush before the process exits, once every pet is stopped: like [`Flush`], but in
/// larger transactions whose commits reach the disk together, with the last one (see
/// [`BulkCommit`]), so that ten million pets are written within a container's stop grace.
#[derive(Message)]
#[rtype(result = "Result<FlushReport, PersistError>")]
pub struct FinalFlush;

/// Writes the pending deaths now (only them); on failure they stay pending.
#[derive(Message)]
#[rtype(result = "Result<(), PersistError>")]
pub struct WriteDeaths;

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
    /// The final flush has run: from now on nothing is left to a later one.
    final_done: bool,
    /// Cluster mode: write a pet only under the lease this node holds on its shard.
    fence: Option<Arc<Fence>>,
}

impl Persister {
    /// Also records the SQLite file's identity (the database is migrated by now, so the file
    /// exists) and has `/metrics` read the dirty set, the pending deaths and the file's state
    /// at each scrape, so they stay live while flushes fail.
    pub fn new(
        url: DbUrl,
        dirty: Arc<DirtyPets>,
        metrics: Arc<Metrics>,
        fence: Option<Arc<Fence>>,
    ) -> Self {
        if let DbUrl::Sqlite(path) = &url {
            if let Err(e) = dirty.file.record(Path::new(path)) {
                log::warn!(
                    "cannot read the identity of the database file {path} ({e}); if it is \
                     deleted or replaced while running, that will not be noticed"
                );
            }
        }
        let watched = Arc::clone(&dirty);
        metrics.on_scrape(move |m| {
            m.dirty_pets.set(watched.len() as i64);
            m.deaths_pending.set(watched.deaths_pending() as i64);
            m.database_file_lost
                .set(i64::from(watched.file.lost().is_some()));
        });
        Persister {
            url,
            conn: None,
            dirty,
            metrics,
            failing: false,
            final_done: false,
            fence,
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

    /// Writes `snaps` (in id order) batch by batch. Returns how many are durable, and the
    /// failure that stopped it, if any; a [`Write::Flush`] before the final flush also stops
    /// early (fewer written, no failure) once the pets are stopping.
    fn write(&mut self, snaps: &[Snapshot], kind: Write) -> (usize, Result<(), PersistError>) {
        let last = kind == Write::Final;
        if let Err(why) = self.dirty.file.check() {
            return (0, Err(PersistError(why)));
        }
        if snaps.is_empty() {
            return (0, Ok(()));
        }
        let mut written = 0;
        let began = Instant::now();
        let mut said = began;
        let what = if last { "final flush" } else { "flush" };
        let dirty = Arc::clone(&self.dirty);
        let may_yield = kind == Write::Flush && !self.final_done;
        let fence = self.fence.clone();
        let mut fenced = 0usize;
        let result = (|| {
            let db = |e: diesel::result::Error| PersistError(e.to_string());
            let conn = self.connection()?;
            let batches = snaps.chunks(if last { FINAL_BATCH } else { BATCH });
            let count = batches.len();
            if last {
                queries::set_bulk_commit(conn, BulkCommit::Deferred).map_err(db)?;
            }
            for (i, batch) in batches.enumerate() {
                // The pets are stopping: the final flush, next in line, writes every pet
                // anyway, so a regular flush under way stops here instead of holding it up
                // (at ten million pets, by as much as a whole flush).
                if may_yield && dirty.stopping() {
                    break;
                }
                if last && i + 1 == count {
                    queries::set_bulk_commit(conn, BulkCommit::Durable).map_err(db)?;
                }
                let rows: Vec<PetStateRow> = batch.iter().map(PetStateRow::from).collect();
                match &fence {
                    None => {
                        queries::write_snapshots(conn, &rows).map_err(db)?;
                    }
                    Some(fence) => {
                        let epochs: Vec<i64> = rows
                            .iter()
                            .map(|r| fence.epoch(shard_of(PetId(r.id))))
                            .collect();
                        let wrote =
                            queries::write_snapshots_fenced(conn, &rows, &epochs, &fence.node)
                                .map_err(db)?;
                        fenced += rows.len().saturating_sub(wrote);
                    }
                }
                written += batch.len();
                // A long flush (millions of pets, a slow database) shows that it is moving,
                // how fast, and how much is left.
                if said.elapsed() >= PROGRESS_EVERY && written < snaps.len() {
                    said = Instant::now();
                    let secs = began.elapsed().as_secs_f64();
                    let rate = written as f64 / secs.max(1e-9);
                    let left = snaps.len() - written;
                    log::info!(
                        "{what}: {written} of {} pet(s) written in {secs:.1} s ({rate:.0} rows/s); \
                         {left} left, about {:.0} s",
                        snaps.len(),
                        left as f64 / rate.max(1.0)
                    );
                }
            }
            if last {
                queries::set_bulk_commit(conn, BulkCommit::Normal).map_err(db)?;
            }
            Ok(())
        })();
        if fenced > 0 {
            // Not an error: these pets belong to another node now, which has their state.
            self.metrics.fenced_rows_total.inc_by(fenced as u64);
            log::warn!(
                "{what}: {fenced} pet state(s) not written: this node no longer holds the \
                 lease of their shard (another node owns them now)"
            );
        }
        // A file replaced while this wrote took these writes with it.
        if let Err(why) = self.dirty.file.check() {
            return (0, Err(PersistError(why)));
        }
        (written, result)
    }

    /// Writes everything dirty and every pending death (`kind`: a regular or the final flush).
    fn flush(&mut self, kind: Write) -> Result<FlushReport, PersistError> {
        let start = Instant::now();
        let deaths = self.dirty.take_deaths();
        let mut snaps = self.dirty.take_all();
        let mut left = self.dirty.take_left();
        let merged = !left.is_empty();
        // After the fresh snapshots, so that where a pet has both, the fresh one is kept.
        snaps.append(&mut left);
        let mut snaps = with_deaths(snaps, &deaths, merged);
        let rows = snaps.len();
        let collected = start.elapsed().as_secs_f64();
        match self.write(&snaps, kind) {
            (written, Ok(())) if written < rows => {
                // Cut short by the stop: the final flush writes the rest and the deaths.
                self.dirty.leave(snaps.split_off(written));
                self.dirty.return_deaths(deaths);
                log::info!(
                    "flush: the pets are stopping; {written} of {rows} pet(s) written, the \
                     final flush writes the rest"
                );
                self.metrics.flushed(written, start.elapsed().as_secs_f64());
                Ok(FlushReport {
                    rows: written,
                    seconds: start.elapsed().as_secs_f64(),
                })
            }
            (_, Ok(())) => {
                self.succeeded();
                announce(deaths);
                let seconds = start.elapsed().as_secs_f64();
                self.metrics.flushed(rows, seconds);
                if rows > 0 {
                    log::info!(
                        "flushed {rows} pet(s) in {seconds:.3} s ({collected:.3} s collecting, \
                         {:.0} rows/s writing)",
                        rows as f64 / (seconds - collected).max(1e-9)
                    );
                }
                Ok(FlushReport { rows, seconds })
            }
            (written, Err(e)) => {
                self.dirty.restore(snaps.into_iter().skip(written));
                self.dirty.return_deaths(deaths);
                self.failed(&e, rows - written);
                Err(e)
            }
        }
    }

    fn succeeded(&mut self) {
        if self.failing {
            self.failing = false;
            log::info!("database writes recovered; persisting again");
        }
    }

    /// Counts and logs (once per outage) a write that failed; `kept` states stay in memory.
    fn failed(&mut self, e: &PersistError, kept: usize) {
        // Drop the connection: it may be broken; the next attempt reconnects.
        self.conn = None;
        self.metrics.persist_failures_total.inc();
        if !self.failing {
            self.failing = true;
            log::error!(
                "database writes failing ({e}); keeping {kept} pet state(s) in memory and retrying"
            );
        }
    }
}

/// `snaps` with the snapshots of `deaths`, in id order, each pet once. `stable`: where a pet
/// has several snapshots in `snaps`, the first is kept (the caller put the freshest first).
fn with_deaths(mut snaps: Vec<Snapshot>, deaths: &[PendingDeath], stable: bool) -> Vec<Snapshot> {
    snaps.extend(deaths.iter().map(|d| d.snapshot));
    // In id order each batch touches a run of neighbouring table pages; in the dirty set's
    // hash order every batch would rewrite pages all over the table (measured on SQLite:
    // 20 s instead of ~2 s for a million pets).
    if stable {
        snaps.sort_by_key(|s| s.id);
    } else {
        snaps.sort_unstable_by_key(|s| s.id);
    }
    // A dead pet's cell is usually listed too, holding the very state its death snapshot
    // has (nothing changes a dead pet): one of the two is enough.
    snaps.dedup_by_key(|s| s.id);
    snaps
}

/// What a write is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// A regular flush: before the final one, may leave the rest to it once the pets are
    /// stopping.
    Flush,
    /// The final flush (see [`FinalFlush`]).
    Final,
    /// Pending deaths only.
    Deaths,
}

/// Tells each pet its death is durable: now it may be shown.
fn announce(deaths: Vec<PendingDeath>) {
    for d in deaths {
        d.actor.do_send(DeathDurable);
    }
}

impl Actor for Persister {
    type Context = SyncContext<Self>;
}

impl Handler<Flush> for Persister {
    type Result = Result<FlushReport, PersistError>;

    fn handle(&mut self, _: Flush, _: &mut SyncContext<Self>) -> Self::Result {
        self.flush(Write::Flush)
    }
}

impl Handler<FinalFlush> for Persister {
    type Result = Result<FlushReport, PersistError>;

    fn handle(&mut self, _: FinalFlush, _: &mut SyncContext<Self>) -> Self::Result {
        self.final_done = true;
        self.flush(Write::Final)
    }
}

impl Handler<WriteDeaths> for Persister {
    type Result = Result<(), PersistError>;

    fn handle(&mut self, _: WriteDeaths, _: &mut SyncContext<Self>) -> Self::Result {
        let deaths = self.dirty.take_deaths();
        if deaths.is_empty() {
            return Ok(());
        }
        let snaps = with_deaths(Vec::new(), &deaths, false);
        match self.write(&snaps, Write::Deaths) {
            (_, Ok(())) => {
                self.succeeded();
                self.metrics.persisted_total.inc_by(snaps.len() as u64);
                announce(deaths);
                Ok(())
            }
            (_, Err(e)) => {
                let kept = deaths.len();
                self.dirty.return_deaths(deaths);
                self.failed(&e, kept);
                Err(e)
            }
        }
    }
}

/// Carries the pending deaths to the persister until none is left: one [`WriteDeaths`] per
/// round however many pets died, retried with backoff while writes fail. Started by the death
/// that finds no courier running (see [`DirtyPets::add_death`]).
pub async fn carry_deaths(persister: Addr<Persister>, dirty: Arc<DirtyPets>) {
    let mut wait = DEATH_RETRY_FIRST;
    loop {
        match persister.send(WriteDeaths).await {
            Ok(Ok(())) => {
                if dirty.courier_may_stop() {
                    return;
                }
                wait = DEATH_RETRY_FIRST;
            }
            Ok(Err(_)) => {
                actix_rt::time::sleep(wait).await;
                wait = wait.saturating_mul(2).min(DEATH_RETRY_MAX);
            }
            Err(_) => {
                // The persister is gone (shutting down): the final flush writes what is left.
                dirty.courier_stopped();
                return;
            }
        }
    }
}
