//! A pet's cell: the one place a live pet lives in memory (who it is and its changing
//! state), and the one way a rule is applied to it (by the ticker for ticks, by the pet's
//! actor for feeds and treats). A live pet is its cell; an actor is started for it only
//! while someone talks to it (see `world::registry`).

use super::PetRecord;
use crate::db::models::{stored_count, PetStateRow};
use crate::metrics::Metrics;
use livepet_shared::rules::Outcome;
use livepet_shared::{PetId, PetState, Species, UserId};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// The changing part of one pet at one moment, as the persister writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub id: PetId,
    pub state: PetState,
    /// When this state was produced (ms since the epoch).
    pub at: i64,
}

impl From<&Snapshot> for PetStateRow {
    fn from(s: &Snapshot) -> Self {
        PetStateRow {
            id: s.id.0,
            age: stored_count(s.state.age),
            hunger: stored_count(s.state.hunger),
            is_alive: s.state.alive,
            updated_at: s.at,
        }
    }
}

/// One live pet: who it is, and its state, shared by the registry, its arbiter's [`Ticker`],
/// the persister and, while someone talks to the pet, its actor. The actor and the ticker
/// run on the pet's arbiter thread and are the only writers (through [`DirtyPets::mark`]);
/// the persister reads it at flush time. The state is one packed word, so a flush never
/// reads half of one change and half of another.
///
/// This is all a pet costs while nobody talks to it (about 100 bytes with its name), so it
/// is kept small: ten million of them live in one process.
///
/// [`Ticker`]: crate::world::ticker::Ticker
/// [`DirtyPets::mark`]: crate::world::dirty::DirtyPets::mark
pub struct PetCell {
    id: PetId,
    owner: UserId,
    born_at: i64,
    name: Box<str>,
    /// age | hunger << 32 | alive << 63
    state: AtomicU64,
    /// The last living state, kept when the pet dies: until its death is durable, that is
    /// what anyone asking sees (packed like `state`).
    before_death: AtomicU64,
    /// When the state was produced (ms since the epoch).
    at: AtomicI64,
    /// Whether this cell is in the dirty list: it is listed once per flush, however often
    /// the pet changes in between.
    pub(super) dirty: AtomicBool,
    /// [`PetCell::LIVE`], [`PetCell::WATCHED`], [`PetCell::TICKED`] (and a test hook).
    flags: AtomicU8,
    species: Species,
}

impl PetCell {
    /// The pet is alive in this process (registered): the ticker ticks it. Cleared when it
    /// leaves the world (its death is durable, its owner's account is gone).
    pub const LIVE: u8 = 1;
    /// Someone watches the pet: the ticker tells its actor after every tick. This flag is
    /// the only record of "watched"; the actor keeps it in step with its viewers.
    pub const WATCHED: u8 = 2;
    /// The pet has ticked at least once in this process.
    pub const TICKED: u8 = 4;
    /// Test hook: the next rule application panics.
    #[cfg(feature = "test-hooks")]
    pub const PANIC_NEXT: u8 = 8;

    /// The cell of a pet brought to life, its state produced at `at`.
    pub fn new(rec: PetRecord, at: i64) -> Arc<PetCell> {
        let cell = PetCell {
            id: rec.id,
            owner: rec.owner,
            born_at: rec.born_at,
            name: rec.name,
            state: AtomicU64::new(0),
            before_death: AtomicU64::new(0),
            at: AtomicI64::new(0),
            dirty: AtomicBool::new(false),
            flags: AtomicU8::new(0),
            species: rec.species,
        };
        cell.store(rec.state, at);
        Arc::new(cell)
    }

    pub fn id(&self) -> PetId {
        self.id
    }

    pub fn owner(&self) -> UserId {
        self.owner
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn species(&self) -> Species {
        self.species
    }

    /// When the pet was adopted (ms since the epoch).
    pub fn born_at(&self) -> i64 {
        self.born_at
    }

    /// The pet's current state.
    pub fn state(&self) -> PetState {
        unpack(self.state.load(Ordering::Relaxed))
    }

    /// The state the pet had just before it died (its current state while it lives).
    pub fn last_alive(&self) -> PetState {
        let state = self.state();
        if state.alive {
            state
        } else {
            unpack(self.before_death.load(Ordering::Relaxed))
        }
    }

    /// When the current state was produced.
    pub fn at(&self) -> i64 {
        self.at.load(Ordering::Relaxed)
    }

    pub fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags() & flag != 0
    }

    pub fn set_flag(&self, flag: u8, on: bool) {
        if on {
            self.flags.fetch_or(flag, Ordering::Relaxed);
        } else {
            self.flags.fetch_and(!flag, Ordering::Relaxed);
        }
    }

    /// The current state with its id and time, for the persister.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            id: self.id,
            state: self.state(),
            at: self.at(),
        }
    }

    pub(super) fn store(&self, s: PetState, at: i64) {
        let packed = u64::from(s.age)
            | (u64::from(s.hunger.min(0x7FFF_FFFF)) << 32)
            | (u64::from(s.alive) << 63);
        // Only the pet's own thread stores, so load-then-store cannot miss a change.
        let old = self.state.load(Ordering::Relaxed);
        if !s.alive && old >> 63 == 1 {
            self.before_death.store(old, Ordering::Relaxed);
        }
        self.state.store(packed, Ordering::Relaxed);
        self.at.store(at, Ordering::Relaxed);
    }

    /// Applies a rule (`what` names it in the log) to a copy of the state and returns the
    /// outcome with the new state; the caller records it. A panic inside the rule leaves the
    /// state as it was, so the pet carries on from its last good state instead of vanishing
    /// with its arbiter task; that is `None`, counted and logged here.
    #[inline]
    pub fn apply(
        &self,
        what: &str,
        metrics: &Metrics,
        rule: impl FnOnce(&mut PetState) -> Outcome,
    ) -> Option<(Outcome, PetState)> {
        let before = self.state();
        let mut state = before;
        #[cfg(feature = "test-hooks")]
        let panic_now = {
            let armed = self.has(Self::PANIC_NEXT);
            if armed {
                self.set_flag(Self::PANIC_NEXT, false);
            }
            armed
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(feature = "test-hooks")]
            if panic_now {
                panic!("injected panic (test hook)");
            }
            rule(&mut state)
        }));
        match result {
            Ok(outcome) => Some((outcome, state)),
            Err(_) => {
                metrics.pet_restarts_total.inc();
                log::error!(
                    "pet {} panicked during {what}; restarted from its last state (age {}, hunger {})",
                    self.id,
                    before.age,
                    before.hunger
                );
                None
            }
        }
    }
}

fn unpack(packed: u64) -> PetState {
    PetState {
        age: packed as u32,
        hunger: ((packed >> 32) as u32) & 0x7FFF_FFFF,
        alive: packed >> 63 == 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livepet_shared::Rules;

    fn cell(id: i64, state: PetState, at: i64) -> Arc<PetCell> {
        PetCell::new(
            PetRecord {
                id: PetId(id),
                owner: UserId(1),
                name: "Rex".into(),
                species: Species::ALL[0],
                born_at: 0,
                state,
            },
            at,
        )
    }

    /// Ten million of these live in one process: a field more is 80 MB more.
    #[test]
    fn a_cell_stays_small() {
        assert!(
            std::mem::size_of::<PetCell>() <= 72,
            "{}",
            std::mem::size_of::<PetCell>()
        );
    }

    #[test]
    fn packs_and_unpacks_the_state() {
        let s = PetState {
            age: u32::MAX,
            hunger: 500,
            alive: true,
        };
        let cell = cell(9, s, 1234);
        assert_eq!(cell.state(), s);
        assert_eq!(
            cell.snapshot(),
            Snapshot {
                id: PetId(9),
                state: s,
                at: 1234
            }
        );
    }

    #[test]
    fn the_last_living_state_outlives_the_death() {
        let alive = PetState {
            age: 10,
            hunger: 500,
            alive: true,
        };
        let cell = cell(3, alive, 1);
        assert_eq!(cell.last_alive(), alive);
        let dead = PetState {
            age: 11,
            alive: false,
            ..alive
        };
        cell.store(dead, 2);
        assert_eq!(cell.state(), dead);
        assert_eq!(cell.last_alive(), alive);
    }

    #[test]
    fn a_panicking_rule_leaves_the_state_alone() {
        let metrics = Metrics::new();
        let cell = cell(1, PetState::newborn(&Rules::default()), 0);
        let before = cell.state();
        let applied = cell.apply("test", &metrics, |_| panic!("boom"));
        assert!(applied.is_none());
        assert_eq!(cell.state(), before);
        assert_eq!(metrics.pet_restarts_total.get(), 1);
        let (outcome, after) = cell
            .apply("tick", &metrics, |s| s.tick(&Rules::default()))
            .expect("no panic");
        assert_eq!(outcome, Outcome::Changed);
        assert_eq!(after.age, before.age + 1);
        // apply never stores: the caller records the state.
        assert_eq!(cell.state(), before);
    }
}
