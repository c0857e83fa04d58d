//! PetRegistry: how a live pet is found (pet id → `Addr<PetActor>`), plus the arbiter pool
//! pets live on.
//!
//! Not an actor: every request and every watch looks pets up, so one mailbox would become the
//! bottleneck at a million pets. It is a sharded map instead; lookups take a read lock on
//! one of many shards and never wait on a tick.
//!
//! An id has at most one live actor: registering an id that is already live is refused
//! before a second actor starts, and an actor that stops removes only its own entry, never
//! a newer actor's under the same id (which would leave that pet unreachable).

use crate::actors::pet::PetActor;
use actix::{Addr, Arbiter, ArbiterHandle};
use livepet_shared::PetId;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

const SHARDS: usize = 64;

pub struct PetRegistry {
    shards: Vec<RwLock<HashMap<PetId, Addr<PetActor>>>>,
    handles: Vec<ArbiterHandle>,
    /// Owned arbiters, kept so shutdown can stop and join their threads.
    arbiters: Mutex<Vec<Arbiter>>,
}

impl PetRegistry {
    /// Starts `threads` arbiters (at least one) for pets to live on.
    pub fn new(threads: usize) -> Self {
        let arbiters: Vec<Arbiter> = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        PetRegistry {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            handles: arbiters.iter().map(Arbiter::handle).collect(),
            arbiters: Mutex::new(arbiters),
        }
    }

    fn shard(&self, id: PetId) -> &RwLock<HashMap<PetId, Addr<PetActor>>> {
        &self.shards[id.0.rem_euclid(SHARDS as i64) as usize]
    }

    pub fn arbiter_count(&self) -> usize {
        self.handles.len()
    }

    /// Pet `id` lives on arbiter `id % N`.
    pub fn arbiter_index(&self, id: PetId) -> usize {
        id.0.rem_euclid(self.handles.len() as i64) as usize
    }

    pub fn arbiter(&self, index: usize) -> &ArbiterHandle {
        &self.handles[index]
    }

    pub fn arbiter_for(&self, id: PetId) -> &ArbiterHandle {
        self.arbiter(self.arbiter_index(id))
    }

    /// The live pet's address, if it is alive in this process.
    pub fn get(&self, id: PetId) -> Option<Addr<PetActor>> {
        self.shard(id)
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// Registers the actor `start` starts, unless `id` is already live: then nothing is
    /// started and the live actor's address is the error. `start` runs under the shard's
    /// lock, so two starts of one id cannot both get through; it must only start the actor
    /// (which runs asynchronously), never wait for it.
    pub fn insert_new(
        &self,
        id: PetId,
        start: impl FnOnce() -> Addr<PetActor>,
    ) -> Result<Addr<PetActor>, Addr<PetActor>> {
        let mut shard = self.shard(id).write().unwrap_or_else(|e| e.into_inner());
        match shard.entry(id) {
            std::collections::hash_map::Entry::Occupied(live) => Err(live.get().clone()),
            std::collections::hash_map::Entry::Vacant(slot) => Ok(slot.insert(start()).clone()),
        }
    }

    /// Forgets the pet `id` if `addr` is its registered actor: a stopping actor calls this
    /// with its own address, so it can never remove another actor's entry.
    pub fn forget_if(&self, id: PetId, addr: &Addr<PetActor>) -> bool {
        let mut shard = self.shard(id).write().unwrap_or_else(|e| e.into_inner());
        if shard.get(&id) == Some(addr) {
            shard.remove(&id);
            true
        } else {
            false
        }
    }

    /// Forgets whatever actor is registered under `id` (tests and tools; actors use
    /// [`forget_if`](Self::forget_if)).
    pub fn forget(&self, id: PetId) {
        self.shard(id)
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every arbiter and waits for its thread, so no pet changes after this returns.
    /// Blocking: call it from a blocking thread.
    pub fn stop_all(&self) {
        let arbiters =
            std::mem::take(&mut *self.arbiters.lock().unwrap_or_else(|e| e.into_inner()));
        for a in &arbiters {
            a.stop();
        }
        for a in arbiters {
            let _ = a.join();
        }
    }
}
