//! PetActor: one live pet. It ticks on its own timer, applies feeds and treats, pushes its
//! state to every watching viewer (serialized once per change), marks itself dirty for the
//! persister, and on death persists at once and stops.

use crate::actors::persister::PersistNow;
use crate::clock::now_ms;
use crate::db::queries::PetSnapshot;
use crate::world::{PetCell, PetRecord, World};
use actix::dev::SendError;
use actix::prelude::*;
use livepet_shared::rules::Outcome;
use livepet_shared::wire::{PetView, ServerMsg};
use livepet_shared::{PetId, PetState, Species, UserId};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// Identifies one viewer (a WebSocket session) across all the pets it watches.
pub type ViewerId = u64;

/// A pet's state, already encoded as a `pet` frame, pushed to every watcher.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct PetFrame {
    pub pet_id: PetId,
    pub alive: bool,
    /// The `{"type":"pet",…}` JSON text, shared by every viewer of this change.
    pub json: Arc<str>,
}

/// Why a pet refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PetError {
    #[error("this pet belongs to someone else")]
    NotOwner,
    #[error("this pet has died")]
    Dead,
    #[error("you cannot give a treat to your own pet")]
    OwnPet,
    #[error("this pet is not available")]
    Gone,
}

/// The pet's current view.
#[derive(Message)]
#[rtype(result = "PetView")]
pub struct Get;

/// The owner feeds the pet; replies with the new state.
#[derive(Message)]
#[rtype(result = "Result<PetView, PetError>")]
pub struct Feed {
    pub by: UserId,
}

/// Someone other than the owner gives a treat (already paid for); replies with the new state.
#[derive(Message)]
#[rtype(result = "Result<PetView, PetError>")]
pub struct Treat {
    pub by: UserId,
}

/// The owner's viewer subscribes to every change of this pet.
#[derive(Message)]
#[rtype(result = "Result<PetView, PetError>")]
pub struct Watch {
    pub by: UserId,
    pub viewer: ViewerId,
    pub to: Recipient<PetFrame>,
}

/// A viewer stops watching.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub viewer: ViewerId,
}

/// Test hook: the pet panics inside its next rule application.
#[cfg(feature = "test-hooks")]
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

pub struct PetActor {
    id: PetId,
    owner: UserId,
    name: Box<str>,
    species: Species,
    born_at: i64,
    state: PetState,
    viewers: Vec<(ViewerId, Recipient<PetFrame>)>,
    world: Arc<World>,
    /// Where the persister finds this pet's newest state.
    cell: Arc<PetCell>,
    /// Whether this actor has ticked yet (for `livepet_first_ticks_total`).
    ticked: bool,
    #[cfg(feature = "test-hooks")]
    panic_next: bool,
}

impl PetActor {
    pub fn new(rec: PetRecord, world: Arc<World>) -> Self {
        PetActor {
            id: rec.id,
            owner: rec.owner,
            name: rec.name,
            species: rec.species,
            born_at: rec.born_at,
            state: rec.state,
            viewers: Vec::new(),
            world,
            cell: PetCell::new(rec.id),
            ticked: false,
            #[cfg(feature = "test-hooks")]
            panic_next: false,
        }
    }

    fn view(&self, at: i64) -> PetView {
        PetView {
            id: self.id,
            name: self.name.to_string(),
            species: self.species,
            age: self.state.age,
            hunger: self.state.hunger,
            alive: self.state.alive,
            born_at: self.born_at,
            owner_id: self.owner,
            at,
        }
    }

    /// Applies a rule. A panic inside it restores the state from just before, so the pet
    /// carries on from its last good state instead of vanishing with its arbiter task.
    /// `None` means the rule panicked and nothing changed.
    fn apply(
        &mut self,
        what: &str,
        rule: impl FnOnce(&mut PetState) -> Outcome,
    ) -> Option<Outcome> {
        let before = self.state;
        #[cfg(feature = "test-hooks")]
        let panic_now = std::mem::take(&mut self.panic_next);
        let state = &mut self.state;
        let result = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(feature = "test-hooks")]
            if panic_now {
                panic!("injected panic (test hook)");
            }
            rule(state)
        }));
        match result {
            Ok(outcome) => Some(outcome),
            Err(_) => {
                self.state = before;
                self.world.metrics.pet_restarts_total.inc();
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

    fn snapshot(&self, at: i64) -> PetSnapshot {
        PetSnapshot {
            id: self.id,
            age: self.state.age,
            hunger: self.state.hunger,
            alive: self.state.alive,
            at,
        }
    }

    /// After any state change: mark dirty, push to viewers, and handle a death.
    fn changed(&mut self, outcome: Option<Outcome>, ctx: &mut Context<Self>) {
        let Some(outcome @ (Outcome::Changed | Outcome::Died)) = outcome else {
            return;
        };
        let at = now_ms();
        let snap = self.snapshot(at);
        self.world.dirty.mark(&self.cell, snap);
        if outcome == Outcome::Changed {
            self.broadcast(at);
            return;
        }
        // A death is written before anyone is told, so a death a viewer has seen survives
        // a crash. The persister handles messages in order, so this write also lands after
        // any earlier flush of an older state. Waiting holds only this pet's mailbox.
        log::info!("pet {} died at age {}", self.id, self.state.age);
        let persist = self.world.persister.send(PersistNow {
            snapshots: vec![snap],
        });
        ctx.wait(persist.into_actor(self).map(move |res, act, ctx| {
            if !matches!(res, Ok(Ok(()))) {
                log::warn!(
                    "pet {}: its death is not durable yet; the next flush retries it",
                    act.id
                );
            }
            act.broadcast(at);
            ctx.stop();
        }));
    }

    fn broadcast(&mut self, at: i64) {
        if self.viewers.is_empty() {
            return;
        }
        let before = self.viewers.len();
        self.viewers.retain(|(_, r)| r.connected());
        let gone = before - self.viewers.len();
        if gone > 0 {
            self.world.metrics.viewers.sub(gone as i64);
        }
        let msg = ServerMsg::Pet { pet: self.view(at) };
        let json: Arc<str> = match serde_json::to_string(&msg) {
            Ok(s) => s.into(),
            Err(e) => {
                log::error!("pet {}: cannot encode state: {e}", self.id);
                return;
            }
        };
        let frame = PetFrame {
            pet_id: self.id,
            alive: self.state.alive,
            json,
        };
        // try_send respects the session's bounded mailbox: a viewer whose client stopped
        // reading stops being fed instead of growing server memory without bound.
        let before = self.viewers.len();
        let id = self.id;
        self.viewers
            .retain(|(viewer_id, viewer)| match viewer.try_send(frame.clone()) {
                Ok(()) => true,
                Err(SendError::Full(_)) => {
                    log::info!("pet {id}: dropping viewer {viewer_id}, which is not keeping up");
                    false
                }
                Err(SendError::Closed(_)) => false,
            });
        let dropped = before - self.viewers.len();
        if dropped > 0 {
            self.world.metrics.viewers.sub(dropped as i64);
            self.world
                .metrics
                .slow_viewers_dropped_total
                .inc_by(dropped as u64);
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let rules = self.world.rules;
        let outcome = self.apply("tick", |s| s.tick(&rules));
        if matches!(outcome, Some(Outcome::Changed | Outcome::Died)) {
            self.world.metrics.ticks_total.inc();
        }
        self.changed(outcome, ctx);
    }
}

/// Width of one tick slot. Every pet ticks on a slot boundary of a grid shared by all pets
/// (aligned to the wall clock), so an arbiter thread wakes once per slot and ticks that
/// slot's pets together, instead of waking every millisecond for a few of them: with a
/// million staggered timers the wake-ups, not the ticks, were most of the CPU.
const TICK_SLOT: Duration = Duration::from_millis(100);

/// When pet `id` first ticks: on its own slot of the period (ids spread evenly over the
/// slots), at the first such boundary after `now_unix_ms`. Returns the delay from now.
fn first_tick_delay(id: PetId, period: Duration, now_unix_ms: i64) -> Duration {
    let period_ms = period.as_millis().max(1) as i64;
    let slot_ms = (TICK_SLOT.as_millis() as i64).min(period_ms);
    let slots = (period_ms / slot_ms).max(1);
    // Multiplicative hashing: consecutive ids land on distant slots.
    let slot = ((id.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % slots as u64) as i64;
    let phase = slot * slot_ms;
    // The next instant t > now with t ≡ phase (mod period), on the shared wall-clock grid.
    let into_period = now_unix_ms.rem_euclid(period_ms);
    let mut wait = (phase - into_period).rem_euclid(period_ms);
    if wait == 0 {
        wait = period_ms;
    }
    Duration::from_millis(wait as u64)
}

impl Actor for PetActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.state.alive {
            ctx.stop();
            return;
        }
        self.world.metrics.pets_alive.inc();
        let period = self.world.tick;
        let first = actix::clock::Instant::now() + first_tick_delay(self.id, period, now_ms());
        // Fixed rate from an aligned start: later ticks stay on the grid.
        ctx.run_interval_at(first, period, |act, ctx| {
            if !act.ticked {
                act.ticked = true;
                act.world.metrics.first_ticks_total.inc();
            }
            act.tick(ctx);
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if self.world.registry.get(self.id).is_some() {
            self.world.registry.forget(self.id);
        }
        if self.state.alive {
            // Stopped without dying: the arbiter is shutting down.
            return;
        }
        self.world.metrics.pets_alive.dec();
        let removed = self.viewers.len() as i64;
        self.world.metrics.viewers.sub(removed);
        self.viewers.clear();
    }
}

impl Handler<Get> for PetActor {
    type Result = MessageResult<Get>;

    fn handle(&mut self, _: Get, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view(now_ms()))
    }
}

impl Handler<Feed> for PetActor {
    type Result = Result<PetView, PetError>;

    fn handle(&mut self, msg: Feed, ctx: &mut Context<Self>) -> Self::Result {
        if msg.by != self.owner {
            return Err(PetError::NotOwner);
        }
        if !self.state.alive {
            return Err(PetError::Dead);
        }
        let rules = self.world.rules;
        let outcome = self.apply("feed", |s| s.feed(&rules));
        self.changed(outcome, ctx);
        Ok(self.view(now_ms()))
    }
}

impl Handler<Treat> for PetActor {
    type Result = Result<PetView, PetError>;

    fn handle(&mut self, msg: Treat, ctx: &mut Context<Self>) -> Self::Result {
        if msg.by == self.owner {
            return Err(PetError::OwnPet);
        }
        if !self.state.alive {
            return Err(PetError::Dead);
        }
        let rules = self.world.rules;
        let outcome = self.apply("treat", |s| s.treat(&rules));
        self.changed(outcome, ctx);
        Ok(self.view(now_ms()))
    }
}

impl Handler<Watch> for PetActor {
    type Result = Result<PetView, PetError>;

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) -> Self::Result {
        if msg.by != self.owner {
            return Err(PetError::NotOwner);
        }
        let view = self.view(now_ms());
        // The first frame travels the same road as every later one (this pet's sends to the
        // viewer's mailbox, in order), so a newer tick can never arrive before it.
        match serde_json::to_string(&ServerMsg::Pet { pet: view.clone() }) {
            Ok(json) => {
                let _ = msg.to.try_send(PetFrame {
                    pet_id: self.id,
                    alive: self.state.alive,
                    json: json.into(),
                });
            }
            Err(e) => log::error!("pet {}: cannot encode state: {e}", self.id),
        }
        if !self.viewers.iter().any(|(v, _)| *v == msg.viewer) {
            self.viewers.push((msg.viewer, msg.to));
            self.world.metrics.viewers.inc();
        }
        Ok(view)
    }
}

impl Handler<Unwatch> for PetActor {
    type Result = ();

    fn handle(&mut self, msg: Unwatch, _: &mut Context<Self>) {
        let before = self.viewers.len();
        self.viewers.retain(|(v, _)| *v != msg.viewer);
        let removed = before - self.viewers.len();
        self.world.metrics.viewers.sub(removed as i64);
    }
}

#[cfg(feature = "test-hooks")]
impl Handler<InjectPanic> for PetActor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, _: &mut Context<Self>) {
        self.panic_next = true;
    }
}
