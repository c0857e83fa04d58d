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
pub mod fence;
pub mod loader;
pub mod registry;
pub mod ticker;

pub use cell::{PetCell, Snapshot};
pub use dirty::DirtyPets;
pub use fence::Fence;
pub use registry::PetRegistry;

use crate::actors::persister::Persister;
use crate::actors::pet::{Moved, PetActor};
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
    /// Cluster mode: the shards this node holds, which fence the persister's writes. `None`
    /// on a single node, which owns every pet.
    pub fence: Option<Arc<Fence>>,
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

    /// Brings stored pets to life on their arbiters (a shard this node just took) and returns
    /// how many started once they all tick. Blocking: call it from a blocking thread.
    pub fn start_pets(self: &Arc<Self>, recs: Vec<PetRecord>) -> usize {
        let n = self.registry.arbiter_count();
        let mut per: Vec<Vec<PetRecord>> = (0..n).map(|_| Vec::new()).collect();
        for rec in recs {
            per[self.registry.arbiter_index(rec.id)].push(rec);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let mut waiting = 0;
        for (i, batch) in per.into_iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let tx = tx.clone();
            if self.start_on_arbiter(i, batch, move |n| {
                let _ = tx.send(n);
            }) {
                waiting += 1;
            }
        }
        drop(tx);
        (0..waiting).filter_map(|_| rx.recv().ok()).sum()
    }

    /// Stops the pets `leaving` picks out (their shard moves to another node): they leave the
    /// registry, each arbiter stops ticking its ones (on its own thread, so no tick of theirs
    /// is under way once this returns, and the last one is in the dirty set for the flush),
    /// and their running actors tell their viewers the pet moved and stop. Returns how many
    /// pets stopped. Blocking: call it from a blocking thread.
    pub fn stop_pets(self: &Arc<Self>, leaving: impl Fn(PetId) -> bool) -> usize {
        let taken = self.registry.take_where(leaving);
        let n = self.registry.arbiter_count();
        let mut per: Vec<Vec<Arc<PetCell>>> = (0..n).map(|_| Vec::new()).collect();
        let mut actors = Vec::new();
        for (cell, actor) in taken {
            per[self.registry.arbiter_index(cell.id())].push(cell);
            actors.extend(actor);
        }
        let (tx, rx) = std::sync::mpsc::channel::<usize>();
        let mut waiting = 0;
        for (i, cells) in per.into_iter().enumerate() {
            if cells.is_empty() {
                continue;
            }
            let tx = tx.clone();
            if self.registry.arbiter(i).spawn_fn(move || {
                let live = cells.iter().filter(|c| c.has(PetCell::LIVE)).count();
                for cell in &cells {
                    cell.set_flag(PetCell::LIVE, false);
                }
                let _ = tx.send(live);
            }) {
                waiting += 1;
            }
        }
        drop(tx);
        let stopped: usize = (0..waiting).filter_map(|_| rx.recv().ok()).sum();
        self.metrics.pets_alive.sub(stopped as i64);
        for actor in actors {
            actor.do_send(Moved);
        }
        stopped
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
