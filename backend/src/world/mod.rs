//! The pet core: where a live pet's state lives ([`PetCell`]), who writes it (its arbiter's
//! [`Ticker`] for ticks, its [`PetActor`] for feeds and treats, both through [`DirtyPets`]),
//! who reads it (the actor for viewers, the persister for the database), how pets are
//! found ([`PetRegistry`]) and how they are brought to life ([`World::start_pet`],
//! [`loader`]). The pet actor itself lives in `actors/pet.rs`; it and this module are one
//! layer, below the services and the HTTP/WebSocket edges, above the database.
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
use crate::metrics::Metrics;
use actix::{Actor, Addr};
use livepet_shared::{PetId, PetState, Rules, Species, UserId};
use std::sync::{mpsc, Arc};
use std::time::Duration;

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

/// Shared by every pet actor.
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
    /// Starts one pet on its arbiter and registers it, unless its id is already live (then
    /// nothing starts). The actor starts asynchronously; send it a message and await the
    /// reply to know it is running.
    pub fn try_start_pet(self: &Arc<Self>, rec: PetRecord) -> Result<Addr<PetActor>, AlreadyLive> {
        let id = rec.id;
        let world = Arc::clone(self);
        let arbiter = self.registry.arbiter_for(id);
        self.registry
            .insert_new(id, || {
                PetActor::start_in_arbiter(arbiter, move |_| PetActor::new(rec, world))
            })
            .map_err(|live| AlreadyLive { id, live })
    }

    /// Like [`try_start_pet`](Self::try_start_pet), but when the id is already live it
    /// logs that and hands back the live actor.
    pub fn start_pet(self: &Arc<Self>, rec: PetRecord) -> Addr<PetActor> {
        self.try_start_pet(rec).unwrap_or_else(|e| {
            log::error!("{e}");
            e.live
        })
    }

    /// Starts many pets, each batch built directly on its own arbiter thread (one message per
    /// arbiter, not one per pet). Blocks until all of them are running; call it from a
    /// blocking thread. Returns how many started (an id already live is not started again).
    pub fn start_many(self: &Arc<Self>, recs: Vec<PetRecord>) -> usize {
        let n = self.registry.arbiter_count();
        let mut per: Vec<Vec<PetRecord>> = (0..n).map(|_| Vec::new()).collect();
        for rec in recs {
            per[self.registry.arbiter_index(rec.id)].push(rec);
        }
        let (tx, rx) = mpsc::channel();
        let mut sent = 0;
        for (i, batch) in per.into_iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let world = Arc::clone(self);
            let tx = tx.clone();
            let accepted = self.registry.arbiter(i).spawn_fn(move || {
                let mut started = 0;
                for rec in batch {
                    let id = rec.id;
                    let actor = PetActor::new(rec, Arc::clone(&world));
                    match world.registry.insert_new(id, || actor.start()) {
                        Ok(_) => started += 1,
                        Err(_) => log::error!("pet {id} is already alive; not started twice"),
                    }
                }
                // Answer from a task queued behind the actors just spawned: the arbiter runs
                // its tasks in order, so by then each has run `started` (it is ticking and
                // counted in `livepet_pets_alive`), not merely been registered.
                actix::spawn(async move {
                    let _ = tx.send(started);
                });
            });
            if accepted {
                sent += 1;
            } else {
                log::error!("arbiter {i} is stopped; its pets were not started");
            }
        }
        drop(tx);
        rx.iter().take(sent).sum()
    }
}
