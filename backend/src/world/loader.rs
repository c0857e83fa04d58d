//! Bringing the stored world to life at startup: every live pet, read in parallel by id range
//! (one database connection per thread) and handed straight to the arbiter it lives on, so
//! loading scales with the cores instead of waiting on one connection.
//!
//! A damaged row (a count that does not fit, a value of the wrong type, a NULL, an unknown
//! species, an `is_alive` that is neither 0 nor 1) is skipped with a line naming the pet and
//! what is wrong: one bad row never stops the world, and is never started with a
//! plausible-looking guess instead of its real state.

use super::{PetRecord, World};
use crate::db::models::{PetRow, RowError, StoredPetRow};
use crate::db::{self, queries};
use anyhow::Context as _;
use livepet_shared::{PetId, Species, UserId};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Rows read from the database per query: a page's rows are freed as the next is read, so
/// it is kept small enough (about a megabyte) for the allocator to reuse the same memory
/// instead of handing it back to the system and faulting it in again.
const LOAD_PAGE: i64 = 5_000;
/// A thread takes this many ids at a time (or fewer when there are few pets), so the threads
/// that finish early take over the rest instead of waiting for the slowest.
const RANGE_IDS: i64 = 250_000;
/// Batches a reader may have handed to arbiters and not yet seen started: enough to keep the
/// arbiters busy, few enough that a fast reader does not pile up rows in memory.
const IN_FLIGHT_PER_ARBITER: usize = 4;
/// A progress line at most this often.
const LOG_EVERY: Duration = Duration::from_secs(2);

impl TryFrom<PetRow> for PetRecord {
    type Error = RowError;

    fn try_from(r: PetRow) -> Result<Self, RowError> {
        let state = r.state()?;
        let species =
            Species::parse(&r.species).ok_or_else(|| RowError::species(r.id, &r.species))?;
        Ok(PetRecord {
            id: PetId(r.id),
            owner: UserId(r.user_id),
            name: r.name.into_boxed_str(),
            species,
            born_at: r.created_at,
            state,
        })
    }
}

impl TryFrom<StoredPetRow> for PetRecord {
    type Error = RowError;

    fn try_from(r: StoredPetRow) -> Result<Self, RowError> {
        PetRecord::try_from(PetRow::try_from(r)?)
    }
}

/// How far loading got, shared by the reader threads.
struct Progress {
    total: usize,
    began: Instant,
    started: AtomicUsize,
    damaged: AtomicUsize,
    /// When the next progress line is due (ms since `began`).
    next_log_ms: AtomicI64,
    /// A reader failed: the others stop.
    failed: AtomicBool,
}

impl Progress {
    fn started(&self, n: usize) {
        let started = self.started.fetch_add(n, Ordering::Relaxed) + n;
        let elapsed = self.began.elapsed();
        let ms = elapsed.as_millis() as i64;
        let due = self.next_log_ms.load(Ordering::Relaxed);
        if ms >= due
            && started < self.total
            && self
                .next_log_ms
                .compare_exchange(
                    due,
                    ms + LOG_EVERY.as_millis() as i64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let secs = elapsed.as_secs_f64();
            log::info!(
                "started {started}/{} pets ({:.0} pets/s)",
                self.total,
                started as f64 / secs.max(1e-9)
            );
        }
    }
}

/// The id ranges still to read, handed out one at a time.
struct Ranges {
    /// The first id not handed out yet, if any is left.
    next: Mutex<Option<i64>>,
    last: i64,
    step: i64,
}

impl Ranges {
    /// The next range `(after, until]` of ids, if any is left.
    fn take(&self) -> Option<(i64, i64)> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let from = (*next)?;
        let until = from.saturating_add(self.step - 1).min(self.last);
        *next = until.checked_add(1).filter(|n| *n <= self.last);
        Some((from.saturating_sub(1), until))
    }
}

/// Reads every live pet and starts it on its arbiter, several id ranges at once; a damaged
/// row is skipped with a line naming the pet. Returns once every pet is ticking. Blocking:
/// call it from a blocking thread.
pub fn load_pets(url: &db::DbUrl, world: &Arc<World>) -> anyhow::Result<usize> {
    let mut conn = db::establish(url)?;
    let total = queries::count_live_pets(&mut conn).context("counting live pets")? as usize;
    let Some((first, last)) = queries::pet_id_bounds(&mut conn).context("reading pet ids")? else {
        return Ok(0);
    };
    drop(conn);
    world.expect(total);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Each reader holds a connection; past a few, the database itself is the limit.
    let readers = cores.clamp(1, 16);
    let span = last.saturating_sub(first).saturating_add(1);
    let step = (span / (readers as i64 * 8)).clamp(LOAD_PAGE, RANGE_IDS);
    let ranges = Ranges {
        next: Mutex::new(Some(first)),
        last,
        step,
    };
    let progress = Progress {
        total,
        began: Instant::now(),
        started: AtomicUsize::new(0),
        damaged: AtomicUsize::new(0),
        next_log_ms: AtomicI64::new(LOG_EVERY.as_millis() as i64),
        failed: AtomicBool::new(false),
    };
    log::info!("loading {total} live pets with {readers} reader(s)");
    let results: Vec<anyhow::Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..readers)
            .map(|i| {
                let (ranges, progress) = (&ranges, &progress);
                std::thread::Builder::new()
                    .name(format!("pet-loader-{i}"))
                    .spawn_scoped(s, move || {
                        let read = read_ranges(url, world, ranges, progress);
                        if read.is_err() {
                            progress.failed.store(true, Ordering::Relaxed);
                        }
                        read
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a pet loader thread panicked"))),
                Err(e) => Err(anyhow::anyhow!("cannot start a pet loader thread: {e}")),
            })
            .collect()
    });
    for r in results {
        r?;
    }
    let damaged = progress.damaged.load(Ordering::Relaxed);
    if damaged > 0 {
        log::error!(
            "{damaged} damaged pet row(s) skipped; each is named above. Repair them and restart \
             to bring those pets back"
        );
    }
    Ok(progress.started.load(Ordering::Relaxed))
}

/// One reader: takes id ranges until none is left, reads their live pets page by page on its
/// own connection, and hands each page's pets to their arbiters, without waiting for them to
/// start unless too many batches are on their way. Returns once all it handed over started.
fn read_ranges(
    url: &db::DbUrl,
    world: &Arc<World>,
    ranges: &Ranges,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut conn = db::establish(url)?;
    let arbiters = world.registry.arbiter_count();
    let (done_tx, done_rx) = mpsc::channel::<usize>();
    let mut in_flight = 0usize;
    let wait_one = |in_flight: &mut usize| -> anyhow::Result<()> {
        let n = done_rx
            .recv()
            .context("an arbiter stopped while pets were loading")?;
        *in_flight -= 1;
        progress.started(n);
        Ok(())
    };
    'ranges: while let Some((mut after, until)) = ranges.take() {
        loop {
            if progress.failed.load(Ordering::Relaxed) {
                break 'ranges;
            }
            let rows = queries::live_pets_page(&mut conn, after, until, LOAD_PAGE)
                .context("reading live pets")?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            let full = rows.len() as i64 == LOAD_PAGE;
            let mut per: Vec<Vec<PetRecord>> = (0..arbiters)
                .map(|_| Vec::with_capacity(rows.len() / arbiters + 1))
                .collect();
            for row in rows {
                match PetRecord::try_from(row) {
                    Ok(rec) => per[world.registry.arbiter_index(rec.id)].push(rec),
                    Err(e) => {
                        log::error!("{e}; pet {} not started", e.id);
                        progress.damaged.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            for (i, batch) in per.into_iter().enumerate() {
                if batch.is_empty() {
                    continue;
                }
                while in_flight >= IN_FLIGHT_PER_ARBITER * arbiters {
                    wait_one(&mut in_flight)?;
                }
                let done = done_tx.clone();
                if world.start_on_arbiter(i, batch, move |n| {
                    let _ = done.send(n);
                }) {
                    in_flight += 1;
                } else {
                    anyhow::bail!("arbiter {i} is stopped; its pets cannot be started");
                }
            }
            if !full {
                break;
            }
        }
    }
    while in_flight > 0 {
        wait_one(&mut in_flight)?;
    }
    Ok(())
}
