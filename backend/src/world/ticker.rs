//! Ticker: one per arbiter thread, the clock of every pet living on that thread.
//!
//! A pet has an actor for everything that comes from outside (feed, treat, watch, get), but
//! its ticks do not go through a mailbox: the thread's ticker applies them to the pet's
//! [`PetCell`] directly, a slot of pets at a time. The period is cut into 100 ms slots on a
//! monotonic grid and each pet has one slot (spread by id), so a thread wakes ten times a
//! second and touches one small cell per pet, instead of waking a million actor tasks
//! through a million timers (measured: the timer wake-ups and mailbox polls of the actors
//! were most of the tick CPU). Only a watched pet's actor hears about a tick, to send the
//! new state to its viewers, and a pet that dies is handed to its actor, which persists the
//! death before anyone sees it and stops.
//!
//! The ticker runs on the same thread as its pets' actors, so a tick never interleaves with
//! a message handler.
//!
//! The grid follows the monotonic clock (`Instant`), never the wall clock: on a wall-clock
//! grid an NTP step backwards froze every pet for the length of the step and a step forwards
//! ticked every pet at once. The wall clock only stamps the states (`at`).

use super::{PetCell, World};
use crate::actors::pet::Ticked;
use crate::clock::now_ms;
use livepet_shared::rules::Outcome;
use livepet_shared::PetId;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Width of one slot of the tick grid.
pub const SLOT: Duration = Duration::from_millis(100);

/// A wake-up this late means the whole process was paused or starved; worth a log line.
const LATE: Duration = Duration::from_secs(1);

thread_local! {
    static TICKER: RefCell<Option<Rc<Ticker>>> = const { RefCell::new(None) };
}

pub struct Ticker {
    world: Arc<World>,
    slot_ms: u64,
    /// The pets of each slot of the period.
    slots: RefCell<Vec<Vec<Arc<PetCell>>>>,
}

impl Ticker {
    /// This arbiter thread's ticker, started on first use. Call it on an arbiter thread.
    pub fn of_this_thread(world: &Arc<World>) -> Rc<Ticker> {
        TICKER.with(|t| {
            let mut t = t.borrow_mut();
            if let Some(ticker) = t.as_ref() {
                if Arc::ptr_eq(&ticker.world, world) {
                    return ticker.clone();
                }
            }
            let period_ms = u64::try_from(world.tick.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let slot_ms = (SLOT.as_millis() as u64).min(period_ms);
            let slots = (period_ms / slot_ms).max(1) as usize;
            let ticker = Rc::new(Ticker {
                world: world.clone(),
                slot_ms,
                slots: RefCell::new(vec![Vec::new(); slots]),
            });
            actix::spawn(ticker.clone().run());
            *t = Some(ticker.clone());
            ticker
        })
    }

    /// Starts ticking a pet (its first tick comes within one period). It stops being ticked
    /// once its cell loses [`PetCell::LIVE`].
    pub fn add(&self, cell: Arc<PetCell>) {
        let mut slots = self.slots.borrow_mut();
        let n = slots.len() as u64;
        // Multiplicative hashing: consecutive ids land in distant slots.
        let slot = (cell.id().0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n;
        slots[slot as usize].push(cell);
    }

    /// Makes room for about `pets` more pets (spread evenly over the slots by the hash in
    /// [`add`](Self::add)), so loading does not regrow and copy every slot on the way.
    pub fn reserve(&self, pets: usize) {
        let mut slots = self.slots.borrow_mut();
        let each = pets / slots.len();
        for slot in slots.iter_mut() {
            slot.reserve(each + each / 32 + 16);
        }
    }

    async fn run(self: Rc<Self>) {
        let slots = self.slots.borrow().len() as u64;
        let origin = Instant::now();
        // Slot g of the grid starts at origin + g slots.
        let slot_of = |t: Instant| {
            u64::try_from(t.duration_since(origin).as_millis() / u128::from(self.slot_ms))
                .unwrap_or(u64::MAX)
        };
        let mut done = 0;
        loop {
            let next = origin + Duration::from_millis((slot_of(Instant::now()) + 1) * self.slot_ms);
            actix_rt::time::sleep_until(next.into()).await;
            let woke = Instant::now();
            let late = woke.saturating_duration_since(next);
            if late >= LATE {
                log::warn!(
                    "pet thread woke {:.1} s late: the process was paused or starved; each pet \
                     ticks at most once for the time missed",
                    late.as_secs_f64()
                );
            }
            let current = slot_of(woke);
            // After a stall, catch up on the slots missed, but at most one period's worth:
            // every pet ticks at most once per period.
            for g in (done + 1).max((current + 1).saturating_sub(slots))..=current {
                self.tick_slot((g % slots) as usize);
            }
            done = done.max(current);
        }
    }

    fn tick_slot(&self, slot: usize) {
        let world = &self.world;
        let rules = world.rules;
        let at = now_ms();
        let (mut ticks, mut firsts) = (0u64, 0u64);
        let mut tell: Vec<(PetId, Ticked)> = Vec::new();
        self.slots.borrow_mut()[slot].retain(|cell| {
            let flags = cell.flags();
            if flags & PetCell::LIVE == 0 {
                return false; // it left the world
            }
            if flags & PetCell::TICKED == 0 {
                cell.set_flag(PetCell::TICKED, true);
                firsts += 1;
            }
            match cell.apply("tick", &world.metrics, |s| s.tick(&rules)) {
                Some((Outcome::Changed, state)) => {
                    ticks += 1;
                    world.dirty.mark(cell, state, at);
                    if flags & PetCell::WATCHED != 0 {
                        tell.push((cell.id(), Ticked::Changed));
                    }
                    true
                }
                Some((Outcome::Died, state)) => {
                    ticks += 1;
                    world.dirty.mark(cell, state, at);
                    tell.push((cell.id(), Ticked::Died));
                    false
                }
                Some((Outcome::AlreadyDead, _)) => false,
                // The rule panicked: the pet keeps its last good state and ticking.
                None => true,
            }
        });
        // Counted once per slot: a shared counter bumped per tick cost a contended atomic
        // add per pet.
        if ticks > 0 {
            world.metrics.ticks_total.inc_by(ticks);
        }
        if firsts > 0 {
            world.metrics.first_ticks_total.inc_by(firsts);
        }
        // Only watched and dying pets are told, so these lookups are few. A watched pet's
        // actor is running (its viewers hold it); a dying pet gets one if it has none, to
        // record the death and show it once durable.
        for (id, what) in tell {
            let actor = match what {
                Ticked::Changed => world.registry.get_running(id),
                Ticked::Died => world.registry.get(id),
            };
            match actor {
                Some(addr) => addr.do_send(what),
                None if what == Ticked::Died => {
                    log::warn!(
                        "pet {id} died but has no actor to record it; the next flush writes it"
                    )
                }
                None => {}
            }
        }
    }
}
