//! PetRegistry: every pet alive in this process (pet id → its [`PetCell`]), how to reach one
//! (`get`: pet id → `Addr<PetActor>`), plus the arbiter pool pets live on.
//!
//! A pet is its cell. Its actor exists only while someone talks to it: `get` starts one on the
//! pet's arbiter when none is running (activation on first message, as Orleans does with its
//! grains), and an actor nobody holds an address of any more stops again. Ten million pets
//! that nobody looks at are ten million cells (about 130 bytes each with their map entry and
//! name), not ten million actors (a bare actix actor with a timer is ~820 bytes); the ones
//! being watched, fed or asked about have an actor, exactly as before.
//!
//! Not an actor: every request and every watch looks pets up, so one mailbox would become the
//! bottleneck at a million pets. It is a sharded map instead; lookups take a read lock on
//! one of many shards and never wait on a tick.
//!
//! An id has at most one live cell and at most one running actor: registering an id that is
//! already live is refused, and a pet that leaves removes only its own entry, never a newer
//! pet's under the same id (which would leave that pet unreachable).
//!
//! How an actor stops without losing a message: the registry keeps only a weak address of
//! it, so the actor stops once nobody holds its address. Every `get` that hands out an
//! address counts a touch under the shard's read lock; the stopping actor checks the count
//! under the write lock ([`PetRegistry::deactivate`]) and carries on if anyone got its address
//! since it last looked, so a message sent through such an address is always handled. Once it
//! has removed its entry, the next `get` starts a fresh actor on the same cell.

use super::{PetCell, World};
use crate::actors::pet::PetActor;
use actix::{Actor, Addr, Arbiter, ArbiterHandle, AsyncContext, WeakAddr};
use livepet_shared::PetId;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

const SHARDS: usize = 64;

/// The running actor of a pet someone is talking to.
struct Active {
    addr: WeakAddr<PetActor>,
    /// Addresses handed out by `get` (wrapping); see the module note.
    touched: AtomicU32,
}

#[derive(Default)]
struct Shard {
    pets: HashMap<PetId, Arc<PetCell>, IdHash>,
    active: HashMap<PetId, Active, IdHash>,
}

/// Hashes a pet id with one multiplication instead of SipHash (a tenth of the time of
/// loading ten million pets went into registering them). Ids are assigned by the database,
/// not chosen by clients, so there is no flooding to defend against.
#[derive(Default, Clone, Copy)]
struct IdHash;

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The map picks buckets by the low bits: fold the well-mixed high bits into them
        // (every id of a shard has the same remainder by the shard count).
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b) ^ self.0.rotate_left(8));
        }
    }

    fn write_i64(&mut self, id: i64) {
        self.write_u64(id as u64);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub struct PetRegistry {
    shards: Vec<RwLock<Shard>>,
    handles: Vec<ArbiterHandle>,
    /// Owned arbiters, kept so shutdown can stop and join their threads.
    arbiters: Mutex<Vec<Arbiter>>,
    /// The world this registry belongs to, to start actors with (set by the world before
    /// its first pet is registered; weak, since the world owns the registry).
    world: OnceLock<Weak<World>>,
}

/// What a stopping actor is to do (see [`PetRegistry::deactivate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deactivation {
    /// Its entry is gone: stop.
    Stop,
    /// Someone got its address since it last looked: carry on and handle what they send.
    Continue,
}

impl PetRegistry {
    /// Starts `threads` arbiters (at least one) for pets to live on.
    pub fn new(threads: usize) -> Self {
        let arbiters: Vec<Arbiter> = (0..threads.max(1)).map(|_| Arbiter::new()).collect();
        PetRegistry {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            handles: arbiters.iter().map(Arbiter::handle).collect(),
            arbiters: Mutex::new(arbiters),
            world: OnceLock::new(),
        }
    }

    /// Ties the registry to the world that owns it (the first call wins).
    pub(super) fn bind(&self, world: &Arc<World>) {
        if self.world.get().is_none() {
            let _ = self.world.set(Arc::downgrade(world));
        }
    }

    fn shard_of(&self, id: PetId) -> &RwLock<Shard> {
        &self.shards[id.0.rem_euclid(SHARDS as i64) as usize]
    }

    // A poisoned lock only means a thread panicked while holding it; the maps are still
    // valid maps, so carry on rather than make every later lookup fail.
    fn read(&self, id: PetId) -> RwLockReadGuard<'_, Shard> {
        self.shard_of(id).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, id: PetId) -> RwLockWriteGuard<'_, Shard> {
        self.shard_of(id).write().unwrap_or_else(|e| e.into_inner())
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

    /// Makes room for `more` pets in all, spread over the shards as ids are, so loading many
    /// pets does not regrow (and briefly double) every map on the way.
    pub fn reserve(&self, more: usize) {
        let each = more.div_ceil(SHARDS);
        for shard in &self.shards {
            shard
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .pets
                .reserve(each);
        }
    }

    /// The address of a live pet's running actor, if it has one, counting the touch.
    fn running(shard: &Shard, id: PetId) -> Option<Addr<PetActor>> {
        let active = shard.active.get(&id)?;
        let addr = active.addr.upgrade()?;
        active.touched.fetch_add(1, Ordering::Relaxed);
        Some(addr)
    }

    /// The live pet's actor, started on its arbiter if it has none running (it starts
    /// asynchronously; what is sent to it meanwhile waits in its mailbox). `None` if the pet
    /// is not alive in this process.
    pub fn get(&self, id: PetId) -> Option<Addr<PetActor>> {
        {
            let shard = self.read(id);
            if let Some(addr) = Self::running(&shard, id) {
                return Some(addr);
            }
            if !shard.pets.contains_key(&id) {
                return None;
            }
        }
        let world = self.world.get().and_then(Weak::upgrade)?;
        let mut shard = self.write(id);
        if let Some(addr) = Self::running(&shard, id) {
            return Some(addr);
        }
        let cell = shard.pets.get(&id)?.clone();
        Some(self.activate(&mut shard, cell, world))
    }

    /// The pet's actor if one is running; never starts one (the ticker tells watched pets,
    /// whose viewers keep their actor running).
    pub fn get_running(&self, id: PetId) -> Option<Addr<PetActor>> {
        Self::running(&self.read(id), id)
    }

    /// Under the shard's write lock, with no actor running for the pet: starts one on its
    /// cell.
    fn activate(&self, shard: &mut Shard, cell: Arc<PetCell>, world: Arc<World>) -> Addr<PetActor> {
        let id = cell.id();
        let addr = PetActor::start_in_arbiter(self.arbiter_for(id), move |ctx| {
            PetActor::new(cell, ctx.address().downgrade(), world)
        });
        shard.active.insert(
            id,
            Active {
                addr: addr.downgrade(),
                touched: AtomicU32::new(0),
            },
        );
        addr
    }

    /// Registers a new live pet of `world` and starts its actor, unless its id is already
    /// live: then nothing is registered and the live pet's actor is the error.
    pub(super) fn insert_new(
        &self,
        world: &Arc<World>,
        cell: Arc<PetCell>,
    ) -> Result<Addr<PetActor>, Addr<PetActor>> {
        let id = cell.id();
        let mut shard = self.write(id);
        if let Some(live) = shard.pets.get(&id).cloned() {
            return Err(match Self::running(&shard, id) {
                Some(addr) => addr,
                None => self.activate(&mut shard, live, world.clone()),
            });
        }
        shard.pets.insert(id, cell.clone());
        Ok(self.activate(&mut shard, cell, world.clone()))
    }

    /// Registers many new live pets (loading); no actor is started. Returns whether each was
    /// registered (false: its id is already live).
    pub fn insert_many(&self, cells: &[Arc<PetCell>]) -> Vec<bool> {
        let mut by_shard: Vec<Vec<usize>> = (0..SHARDS).map(|_| Vec::new()).collect();
        for (i, cell) in cells.iter().enumerate() {
            by_shard[cell.id().0.rem_euclid(SHARDS as i64) as usize].push(i);
        }
        let mut fresh = vec![false; cells.len()];
        for (shard, indices) in self.shards.iter().zip(by_shard) {
            if indices.is_empty() {
                continue;
            }
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            for i in indices {
                let cell = &cells[i];
                if let std::collections::hash_map::Entry::Vacant(slot) = shard.pets.entry(cell.id())
                {
                    slot.insert(cell.clone());
                    fresh[i] = true;
                }
            }
        }
        fresh
    }

    /// A stopping actor (`me`, of pet `id`) that nobody holds an address of any more asks
    /// whether it may stop: [`Deactivation::Continue`] if a `get` handed out its address since
    /// `seen` (which is updated), else its entry is removed and it must stop.
    pub fn deactivate(&self, id: PetId, me: &WeakAddr<PetActor>, seen: &mut u32) -> Deactivation {
        let mut shard = self.write(id);
        let Some(active) = shard.active.get(&id) else {
            return Deactivation::Stop;
        };
        if active.addr != *me {
            return Deactivation::Stop; // a newer actor took the id: not ours to touch
        }
        let touched = active.touched.load(Ordering::Relaxed);
        if touched != *seen {
            *seen = touched;
            return Deactivation::Continue;
        }
        shard.active.remove(&id);
        Deactivation::Stop
    }

    /// A pet leaves the world (its death is durable, its owner is gone): removes its cell
    /// and its actor's entry if they are these (a newer pet may hold the id by now), and
    /// stops its ticking. Returns whether it was registered.
    pub fn remove(&self, cell: &Arc<PetCell>, me: &WeakAddr<PetActor>) -> bool {
        let id = cell.id();
        let mut shard = self.write(id);
        if shard.active.get(&id).is_some_and(|a| a.addr == *me) {
            shard.active.remove(&id);
        }
        cell.set_flag(PetCell::LIVE, false);
        match shard.pets.get(&id) {
            Some(live) if Arc::ptr_eq(live, cell) => {
                shard.pets.remove(&id);
                true
            }
            _ => false,
        }
    }

    /// Forgets whatever pet is registered under `id` (tests and tools): it stops ticking and
    /// its actor, if running, stops once nobody holds its address.
    pub fn forget(&self, id: PetId) {
        let mut shard = self.write(id);
        shard.active.remove(&id);
        if let Some(cell) = shard.pets.remove(&id) {
            cell.set_flag(PetCell::LIVE, false);
            if let Some(world) = self.world.get().and_then(Weak::upgrade) {
                world.metrics.pets_alive.dec();
            }
        }
    }

    /// Takes every pet whose id `leaving` picks out of the registry (its shard moves to
    /// another node): from now on `get` does not find them. Returns their cells, with the
    /// address of each one's running actor, if any. Their ticking stops once the caller
    /// clears their LIVE flag (see [`World::stop_pets`]).
    pub fn take_where(
        &self,
        leaving: impl Fn(PetId) -> bool,
    ) -> Vec<(Arc<PetCell>, Option<Addr<PetActor>>)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<PetId> = shard
                .pets
                .keys()
                .copied()
                .filter(|id| leaving(*id))
                .collect();
            for id in ids {
                let running = shard.active.remove(&id).and_then(|a| a.addr.upgrade());
                if let Some(cell) = shard.pets.remove(&id) {
                    out.push((cell, running));
                }
            }
        }
        out
    }

    /// Pets alive in this process.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).pets.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pets with a running actor (someone is talking to them).
    pub fn active_len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).active.len())
            .sum()
    }

    /// Stops every arbiter and waits for its thread, so no pet changes after this returns.
    /// A flush under way is told that the final one is coming (so it may leave the rest to
    /// it). Blocking: call it from a blocking thread.
    pub fn stop_all(&self) {
        if let Some(world) = self.world.get().and_then(Weak::upgrade) {
            world.dirty.stop();
        }
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

impl Drop for PetRegistry {
    /// Ten million cells take seconds to free, and a process that has stopped and flushed
    /// need not wait for that before it exits: a big registry is freed on a thread of its
    /// own (which the exit simply ends).
    fn drop(&mut self) {
        if self.len() < 100_000 {
            return;
        }
        let shards = std::mem::take(&mut self.shards);
        let _ = std::thread::Builder::new()
            .name("pet-free".into())
            .spawn(move || drop(shards));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::persister::Persister;
    use crate::actors::pet::Get;
    use crate::db::DbUrl;
    use crate::metrics::Metrics;
    use crate::world::{DirtyPets, PetRecord};
    use actix::SyncArbiter;
    use livepet_shared::wire::PetView;
    use livepet_shared::{PetState, Rules, Species, UserId};
    use std::time::{Duration, Instant};

    /// A world of `threads` arbiters on a fresh SQLite file, its pets ticking once an hour.
    fn world(dir: &tempfile::TempDir, threads: usize) -> Arc<World> {
        let path = dir.path().join("pets.db");
        let url = DbUrl::Sqlite(path.to_string_lossy().into_owned());
        crate::db::connect_and_migrate(&url).expect("a fresh database");
        let metrics = Arc::new(Metrics::new());
        let dirty = Arc::new(DirtyPets::new(threads));
        let persister = {
            let (dirty, metrics) = (dirty.clone(), metrics.clone());
            SyncArbiter::start(1, move || {
                Persister::new(url.clone(), dirty.clone(), metrics.clone(), None)
            })
        };
        Arc::new(World {
            fence: None,
            rules: Rules::default(),
            tick: Duration::from_secs(3600),
            registry: PetRegistry::new(threads),
            dirty,
            metrics,
            persister,
        })
    }

    fn record(id: i64) -> PetRecord {
        PetRecord {
            id: PetId(id),
            owner: UserId(1),
            name: format!("Pet {id}").into_boxed_str(),
            species: Species::ALL[0],
            born_at: 0,
            state: PetState::newborn(&Rules::default()),
        }
    }

    /// Waits (a bounded while) until `done` holds.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[actix_rt::test]
    async fn an_actor_nobody_holds_stops_and_the_next_message_starts_another() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let world = world(&dir, 1);
        let first = world.try_start_pet(record(1)).expect("a new id");
        let view = first.send(Get).await.expect("the actor answers");
        assert_eq!(world.registry.active_len(), 1);

        let gone = first.downgrade();
        drop(first);
        until("the idle actor to stop", || gone.upgrade().is_none()).await;
        assert_eq!(world.registry.active_len(), 0);
        assert_eq!(world.registry.len(), 1, "the pet lives on in its cell");
        assert_eq!(world.metrics.pets_alive.get(), 1);

        let again = world.registry.get(PetId(1)).expect("a live pet");
        assert!(gone.upgrade().is_none(), "a new actor, not the old one");
        let view_again = again.send(Get).await.expect("the new actor answers");
        assert_eq!(
            PetView {
                at: 0,
                ..view_again
            },
            PetView { at: 0, ..view }
        );
        assert!(world.registry.get(PetId(2)).is_none(), "no such pet");
    }

    /// Lookups from several threads race the actor's stops: every message sent through an
    /// address the registry handed out is answered, and at most one actor runs at a time.
    #[actix_rt::test]
    async fn lookups_racing_an_actors_stop_lose_no_message() {
        const THREADS: usize = 4;
        const ROUNDS: usize = 500;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let world = world(&dir, 2);
        drop(world.try_start_pet(record(7)).expect("a new id"));
        let askers: Vec<_> = (0..THREADS)
            .map(|_| {
                let world = world.clone();
                std::thread::spawn(move || {
                    actix_rt::System::new().block_on(async move {
                        let (mut lost, mut actors) = (0, 0);
                        let mut last: Option<WeakAddr<PetActor>> = None;
                        for round in 0..ROUNDS {
                            let pet = world.registry.get(PetId(7)).expect("a live pet");
                            if last.as_ref().and_then(WeakAddr::upgrade).as_ref() != Some(&pet) {
                                actors += 1;
                                last = Some(pet.downgrade());
                            }
                            if pet.send(Get).await.is_err() {
                                lost += 1;
                            }
                            assert!(world.registry.active_len() <= 1, "one actor per pet");
                            drop(pet);
                            // Now and then, give the actor time to stop.
                            if round % 3 == 0 {
                                std::thread::sleep(Duration::from_micros(50));
                            }
                        }
                        (lost, actors)
                    })
                })
            })
            .collect();
        let (mut lost, mut actors) = (0, 0);
        for asker in askers {
            let (l, a) = asker.join().expect("an asking thread");
            (lost, actors) = (lost + l, actors + a);
        }
        assert_eq!(lost, 0, "messages lost to a stopping actor");
        eprintln!("{actors} actors served {} lookups", THREADS * ROUNDS);
        until("the last actor to stop", || {
            world.registry.active_len() == 0
        })
        .await;
    }
}
