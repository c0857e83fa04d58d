//! The world: what every pet actor shares (rules, registry, dirty set, metrics, persister)
//! and how pets are started — one at a time for adoptions, in bulk at startup.

use crate::actors::persister::Persister;
use crate::actors::pet::PetActor;
use crate::actors::registry::PetRegistry;
use crate::db::queries::PetSnapshot;
use crate::metrics::Metrics;
use actix::{Actor, Addr};
use livepet_shared::{PetId, PetState, Rules, Species, UserId};
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
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

/// Pets changed since the last flush, with their newest state. Sharded by arbiter so pets
/// on different threads never contend for the same lock on the tick path.
pub struct DirtyPets {
    shards: Vec<Mutex<HashMap<PetId, PetSnapshot>>>,
}

impl DirtyPets {
    pub fn new(shards: usize) -> Self {
        DirtyPets {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, id: PetId) -> &Mutex<HashMap<PetId, PetSnapshot>> {
        &self.shards[id.0.rem_euclid(self.shards.len() as i64) as usize]
    }

    /// Records a pet's newest state.
    pub fn mark(&self, snap: PetSnapshot) {
        // A poisoned lock only means another thread panicked mid-insert; the map is still
        // a valid map, so keep going rather than lose every later snapshot.
        let mut map = self
            .shard(snap.id)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.insert(snap.id, snap);
    }

    /// Takes every dirty snapshot, leaving the set empty.
    pub fn take_all(&self) -> Vec<PetSnapshot> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let hint = shard.lock().map(|m| m.len()).unwrap_or(0);
            // Allocate the replacement outside the lock so ticks never wait on the allocator.
            let fresh = HashMap::with_capacity(hint);
            let taken =
                std::mem::replace(&mut *shard.lock().unwrap_or_else(|e| e.into_inner()), fresh);
            out.reserve(taken.len());
            out.extend(taken.into_values());
        }
        out
    }

    /// Puts back snapshots a failed flush could not write, unless the pet has moved on since.
    pub fn restore(&self, snaps: impl IntoIterator<Item = PetSnapshot>) {
        for snap in snaps {
            let mut map = self
                .shard(snap.id)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            map.entry(snap.id).or_insert(snap);
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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

impl World {
    /// Starts one pet on its arbiter and registers it. The actor starts asynchronously; send
    /// it a message and await the reply to know it is running.
    pub fn start_pet(self: &Arc<Self>, rec: PetRecord) -> Addr<PetActor> {
        let id = rec.id;
        let world = Arc::clone(self);
        let addr = PetActor::start_in_arbiter(self.registry.arbiter_for(id), move |_| {
            PetActor::new(rec, world)
        });
        self.registry.insert(id, addr.clone());
        addr
    }

    /// Starts many pets, each batch built directly on its own arbiter thread (one message per
    /// arbiter, not one per pet). Blocks until all of them are registered; call it from a
    /// blocking thread.
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
                let count = batch.len();
                for rec in batch {
                    let id = rec.id;
                    let addr = PetActor::new(rec, Arc::clone(&world)).start();
                    world.registry.insert(id, addr);
                }
                let _ = tx.send(count);
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
