//! The pet core: where a live pet lives ([`PetCell`]), who writes it (its arbiter's
//! [`Ticker`] for ticks, its [`PetActor`] for feeds and treats, both through [`DirtyPets`]),
//! who reads it (the actor for viewers, the persister for the database), how pets are
//! found and reached ([`PetRegistry`], which starts a pet's actor only while someone talks to
//! it) and how they are brought to life ([`World::start_pet`], [`loader`]). The pet actor
//! itself lives in `actors/pet.rs`; it and this module are one layer, below the services and
//! the HTTP/WebSocket edges, above the database.
//!
//! [`Ticker`]: ticker::Ticker
//! [`PetActor`]: crate::actors::pet::PetActor

pub mod cell;
pub mod dirty;
pub mod loader;
pub mod registry;
pub mod ticker;

pub use cell::{PetCell, Snapshot};
pub use dirty::DirtyPets;
pub use registry::PetRegistry;

use crate::actors::persister::Persister;
use crate::actors::pet::PetActor;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use actix::{Actor, Addr, AsyncContext};
use livepet_shared::{PetId, PetState, Rules, Species, UserId};
use std::sync::Arc;
use std::time::Duration;
use ticker::Ticker;

/// Everything needed to bring a pet to life.
#[derive(Debug, Clone)]
pub struct PetRecord {
    pub id: PetId,
    pub owner: UserId,
    pub name: Box<str>,
    pub species: Species,
    pub born_at: i64,
    pub state: PetState,
}

/// The pets of this process and what they share.
pub struct World {
    pub rules: Rules,
    pub tick: Duration,
    pub registry: PetRegistry,
    pub dirty: Arc<DirtyPets>,
    pub metrics: Arc<Metrics>,
    pub persister: Addr<Persister>,
}

/// A pet could not be started: another actor is already live under its id.
#[derive(Debug, Clone, thiserror::Error)]
#[error("pet {id} is already alive in this process; not started twice")]
pub struct AlreadyLive {
    pub id: PetId,
    /// The actor that is live under that id.
    pub live: Addr<PetActor>,
}

impl World {
    /// Brings one pet to life: registers its cell, has its arbiter's ticker tick it, and
    /// starts its actor (asynchronously: send it a message and await the reply to know it is
    /// running). Unless its id is already live: then nothing changes.
    pub fn try_start_pet(self: &Arc<Self>, rec: PetRecord) -> Result<Addr<PetActor>, AlreadyLive> {
        self.registry.bind(self);
        let id = rec.id;
        let cell = PetCell::new(rec, now_ms());
        if !cell.state().alive {
            // Nothing to bring to life: an actor that shows the stored state and stops.
            let world = Arc::clone(self);
            return Ok(PetActor::start_in_arbiter(
                self.registry.arbiter_for(id),
                move |ctx| PetActor::new(cell, ctx.address().downgrade(), world),
            ));
        }
        let addr = self
            .registry
            .insert_new(self, cell.clone())
            .map_err(|live| AlreadyLive { id, live })?;
        self.metrics.pets_alive.inc();
        cell.set_flag(PetCell::LIVE, true);
        let world = Arc::clone(self);
        if !self.registry.arbiter_for(id).spawn_fn(move || {
            Ticker::of_this_thread(&world).add(cell);
        }) {
            log::error!("pet {id}'s arbiter is stopped; it does not tick");
        }
        Ok(addr)
    }

    /// Like [`try_start_pet`](Self::try_start_pet), but when the id is already live it
    /// logs that and hands back the live actor.
    pub fn start_pet(self: &Arc<Self>, rec: PetRecord) -> Addr<PetActor> {
        self.try_start_pet(rec).unwrap_or_else(|e| {
            log::error!("{e}");
            e.live
        })
    }

    /// Makes room for about `pets` more live pets (loading), so the registry, the dirty set
    /// and the tickers do not regrow (and copy themselves) on the way. Returns at once; the
    /// tickers make their room on their own threads.
    pub fn expect(self: &Arc<Self>, pets: usize) {
        self.registry.reserve(pets);
        self.dirty.reserve(pets);
        let each = pets.div_ceil(self.registry.arbiter_count());
        for i in 0..self.registry.arbiter_count() {
            let world = Arc::clone(self);
            self.registry.arbiter(i).spawn_fn(move || {
                Ticker::of_this_thread(&world).reserve(each);
            });
        }
    }

    /// Brings many pets to life on arbiter `index` (every one must live there): registers
    /// their cells and adds them to that thread's ticker, on that thread, without starting
    /// any actor. Calls `done` with how many came to life (an id already live is not started
    /// twice) once they tick. Returns false if the arbiter is stopped (then nothing happens).
    pub fn start_on_arbiter(
        self: &Arc<Self>,
        index: usize,
        recs: Vec<PetRecord>,
        done: impl FnOnce(usize) + Send + 'static,
    ) -> bool {
        self.registry.bind(self);
        let world = Arc::clone(self);
        self.registry.arbiter(index).spawn_fn(move || {
            let at = now_ms();
            let cells: Vec<Arc<PetCell>> = recs
                .into_iter()
                .filter(|rec| rec.state.alive)
                .map(|rec| PetCell::new(rec, at))
                .collect();
            let fresh = world.registry.insert_many(&cells);
            let ticker = Ticker::of_this_thread(&world);
            let mut started = 0;
            for (cell, fresh) in cells.into_iter().zip(fresh) {
                if !fresh {
                    log::error!("pet {} is already alive; not started twice", cell.id());
                    continue;
                }
                cell.set_flag(PetCell::LIVE, true);
                ticker.add(cell);
                started += 1;
            }
            world.metrics.pets_alive.add(started as i64);
            done(started);
        })
    }
}
