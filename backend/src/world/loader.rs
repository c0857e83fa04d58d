//! Bringing the stored world to life at startup: every live pet, page by page, validated and
//! started on the arbiters. A damaged row (a count that does not fit, a value of the wrong
//! type, a NULL, an unknown species, an `is_alive` that is neither 0 nor 1) is skipped with a
//! line naming the pet and what is wrong: one bad row never stops the world, and is never
//! started with a plausible-looking guess instead of its real state.

use super::{PetRecord, World};
use crate::db::models::{PetRow, RowError, StoredPetRow};
use crate::db::{self, queries};
use anyhow::Context as _;
use livepet_shared::{PetId, Species, UserId};
use std::sync::Arc;
use std::time::Instant;

/// Pets read from the database per page at startup.
const LOAD_PAGE: i64 = 100_000;
/// A progress line every this many pets.
const LOG_EVERY: usize = 200_000;

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

/// Reads every live pet page by page and starts them on the arbiters; a damaged row is
/// skipped with a line naming the pet. Blocking: call it from a blocking thread.
pub fn load_pets(url: &db::DbUrl, world: &Arc<World>) -> anyhow::Result<usize> {
    let mut conn = db::establish(url)?;
    let total = queries::count_live_pets(&mut conn)? as usize;
    let began = Instant::now();
    let mut after = 0i64;
    let mut started = 0usize;
    let mut next_log = LOG_EVERY;
    let mut damaged = 0usize;
    loop {
        let rows =
            queries::live_pets_page(&mut conn, after, LOAD_PAGE).context("reading live pets")?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        let recs: Vec<PetRecord> = rows
            .into_iter()
            .filter_map(|row| match PetRecord::try_from(row) {
                Ok(rec) => Some(rec),
                Err(e) => {
                    log::error!("{e}; pet {} not started", e.id);
                    damaged += 1;
                    None
                }
            })
            .collect();
        started += world.start_many(recs);
        if started >= next_log {
            let secs = began.elapsed().as_secs_f64();
            log::info!(
                "started {started}/{total} pets ({:.0} pets/s)",
                started as f64 / secs.max(1e-9)
            );
            next_log += LOG_EVERY;
        }
    }
    if damaged > 0 {
        log::error!(
            "{damaged} damaged pet row(s) skipped; each is named above. Repair them and restart \
             to bring those pets back"
        );
    }
    Ok(started)
}
