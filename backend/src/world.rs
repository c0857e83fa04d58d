//! The world: what every pet actor shares (rules, registry, dirty set, metrics, persister)
//! and how pets are started — one at a time for adoptions, in bulk at startup.

use crate::actors::persister::Persister;
use crate::actors::pet::PetActor;
use crate::actors::registry::PetRegistry;
use crate::db::queries::PetSnapshot;
use crate::metrics::Metrics;
use actix::{Actor, Addr};
use livepet_shared::{PetId, PetState, Rules, Species, UserId};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
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

/// One pet's state, shared by the pet's actor, its arbiter's [`Ticker`] and the persister.
/// The actor and the ticker run on the pet's arbiter thread and are the only writers; the
/// persister reads it at flush time. The state is one packed word, so a flush never reads
/// half of one change and half of another.
///
/// [`Ticker`]: crate::actors::ticker::Ticker
pub struct PetCell {
    id: PetId,
    /// age | hunger << 32 | alive << 63
    state: AtomicU64,
    /// When the state was produced (ms since the epoch).
    at: AtomicI64,
    /// Whether this cell is in the dirty list: it is listed once per flush, however often
    /// the pet changes in between.
    dirty: AtomicBool,
    /// [`PetCell::LIVE`], [`PetCell::WATCHED`], [`PetCell::TICKED`], [`PetCell::PANIC_NEXT`].
    flags: AtomicU8,
}

impl PetCell {
    /// The pet's actor is running: the ticker ticks it.
    pub const LIVE: u8 = 1;
    /// Someone watches the pet: the ticker tells its actor after every tick.
    pub const WATCHED: u8 = 2;
    /// The pet has ticked at least once in this process.
    pub const TICKED: u8 = 4;
    /// Test hook: the next rule application panics.
    pub const PANIC_NEXT: u8 = 8;

    pub fn new(id: PetId, state: PetState, at: i64) -> Arc<PetCell> {
        let cell = PetCell {
            id,
            state: AtomicU64::new(0),
            at: AtomicI64::new(0),
            dirty: AtomicBool::new(false),
            flags: AtomicU8::new(0),
        };
        cell.store(state, at);
        Arc::new(cell)
    }

    pub fn id(&self) -> PetId {
        self.id
    }

    /// The pet's current state.
    pub fn state(&self) -> PetState {
        let packed = self.state.load(Ordering::Relaxed);
        PetState {
            age: packed as u32,
            hunger: ((packed >> 32) as u32) & 0x7FFF_FFFF,
            alive: packed >> 63 == 1,
        }
    }

    /// When the current state was produced.
    pub fn at(&self) -> i64 {
        self.at.load(Ordering::Relaxed)
    }

    pub fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn set_flag(&self, flag: u8, on: bool) {
        if on {
            self.flags.fetch_or(flag, Ordering::Relaxed);
        } else {
            self.flags.fetch_and(!flag, Ordering::Relaxed);
        }
    }

    /// The state as a row for the database.
    pub fn snapshot(&self) -> PetSnapshot {
        let s = self.state();
        PetSnapshot {
            id: self.id,
            age: s.age,
            hunger: s.hunger,
            alive: s.alive,
            at: self.at(),
        }
    }

    fn store(&self, s: PetState, at: i64) {
        let packed = u64::from(s.age)
            | (u64::from(s.hunger.min(0x7FFF_FFFF)) << 32)
            | (u64::from(s.alive) << 63);
        self.state.store(packed, Ordering::Relaxed);
        self.at.store(at, Ordering::Relaxed);
    }
}

/// Pets changed since the last flush. Each pet owns a [`PetCell`] with its newest state;
/// the first change after a flush puts the cell on its shard's list, later changes only
/// update the cell. A tick therefore costs two stores and one swap on the pet's own cell,
/// not a hash-map insert (which was a quarter of all tick CPU at a million pets). Shards
/// follow the arbiters, so pets on different threads never share a lock.
pub struct DirtyPets {
    shards: Vec<Mutex<Vec<Arc<PetCell>>>>,
    /// Snapshots a failed write handed back; written by the next flush unless the pet has
    /// a newer state by then. Only used after database failures.
    restored: Mutex<HashMap<PetId, PetSnapshot>>,
}

impl DirtyPets {
    pub fn new(shards: usize) -> Self {
        DirtyPets {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            restored: Mutex::default(),
        }
    }

    fn shard(&self, id: PetId) -> &Mutex<Vec<Arc<PetCell>>> {
        &self.shards[id.0.rem_euclid(self.shards.len() as i64) as usize]
    }

    /// Records a pet's new state in its cell, listing the cell if it is not listed yet.
    pub fn mark(&self, cell: &Arc<PetCell>, state: PetState, at: i64) {
        cell.store(state, at);
        // SeqCst pairs with take_all: either this swap sees the flag take_all cleared (and
        // lists the cell again), or take_all's read comes after the store above.
        if !cell.dirty.swap(true, Ordering::SeqCst) {
            // A poisoned lock only means another thread panicked mid-push; the list is
            // still a valid list, so keep going rather than lose every later change.
            self.shard(cell.id)
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cell.clone());
        }
    }

    /// Takes every dirty pet's newest state, leaving the set empty.
    pub fn take_all(&self) -> Vec<PetSnapshot> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let hint = shard.lock().map(|v| v.len()).unwrap_or(0);
            // Allocate the replacement outside the lock so ticks never wait on the allocator.
            let fresh = Vec::with_capacity(hint + hint / 8);
            let taken =
                std::mem::replace(&mut *shard.lock().unwrap_or_else(|e| e.into_inner()), fresh);
            out.reserve(taken.len());
            for cell in taken {
                // Unlist first, then read: a change after the read lists the cell again.
                cell.dirty.store(false, Ordering::SeqCst);
                out.push(cell.snapshot());
            }
        }
        let restored =
            std::mem::take(&mut *self.restored.lock().unwrap_or_else(|e| e.into_inner()));
        if !restored.is_empty() {
            let newer: HashSet<PetId> = out.iter().map(|s| s.id).collect();
            out.extend(restored.into_values().filter(|s| !newer.contains(&s.id)));
        }
        out
    }

    /// Puts back snapshots a failed flush could not write, unless the pet has moved on since.
    pub fn restore(&self, snaps: impl IntoIterator<Item = PetSnapshot>) {
        let mut restored = self.restored.lock().unwrap_or_else(|e| e.into_inner());
        for snap in snaps {
            match restored.entry(snap.id) {
                Entry::Occupied(mut e) if e.get().at <= snap.at => {
                    e.insert(snap);
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(e) => {
                    e.insert(snap);
                }
            }
        }
    }

    /// Pets waiting for the next flush (a pet with a newer listed state and a restored
    /// older one counts twice: this is for metrics and logs).
    pub fn len(&self) -> usize {
        let listed: usize = self
            .shards
            .iter()
            .map(|s| s.lock().map(|v| v.len()).unwrap_or(0))
            .sum();
        listed + self.restored.lock().map(|m| m.len()).unwrap_or(0)
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
