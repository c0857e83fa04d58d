//! PetActor: one live pet while someone talks to it. The pet itself is its [`PetCell`],
//! ticked by its arbiter's [`Ticker`](crate::world::ticker::Ticker); the registry starts an
//! actor on the cell for the first message and the actor stops once nobody holds its address
//! (see `world::registry`). The actor applies feeds and treats, pushes the state to every
//! watching viewer (serialized once per change; a viewer holds the address, so a watched pet
//! keeps its actor), marks the pet dirty for the persister, and on death waits until the
//! death is durable, shows it, and takes the pet out of the world.
//!
//! Why a death waits: a death shown before it is written can be undone by a crash (the
//! restarted pet is alive and younger), which is a lie told to the owner. So the death joins
//! the persister's writes (see `actors::persister::carry_deaths`) and, until one of them
//! succeeds, the pet shows its last living state, answers feeds and treats only once the
//! death is durable, and sends no frame. A database outage delays the final frame; it never
//! shows a death that may not stick.

use crate::actors::encode;
use crate::actors::persister::carry_deaths;
use crate::clock::now_ms;
use crate::world::dirty::PendingDeath;
use crate::world::registry::Deactivation;
use crate::world::{PetCell, World};
use actix::dev::SendError;
use actix::prelude::*;
use actix::WeakAddr;
use livepet_shared::rules::Outcome;
use livepet_shared::wire::{PetView, ServerMsg};
use livepet_shared::{PetId, PetState, Rules, UserId};
use std::sync::Arc;
use tokio::sync::oneshot;

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
    /// Not a frame to show: the pet moved to another node (cluster mode), and the viewer is to
    /// watch it there. `json` is empty.
    pub moved: bool,
}

/// The pet's shard moves to another node (cluster mode): tell every viewer it moved, and stop.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Moved;

/// Why a pet refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PetError {
    /// Only for logs and tests: a client is told "no such pet", as for a missing id, so
    /// the answer does not reveal that the pet exists (see `ws::protocol`).
    #[error("this pet belongs to someone else")]
    NotOwner,
    #[error("this pet has died")]
    Dead,
    #[error("you cannot give a treat to your own pet")]
    OwnPet,
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

/// From the ticker: the pet's state changed (tell the viewers) or it died (record it).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum Ticked {
    Changed,
    Died,
}

/// The owner's account was deleted (with this pet's row): stop without dying, tick no more.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Release;

/// From the persister: this pet's death is durable, so it may be shown.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct DeathDurable;

/// Test hook: the pet panics inside its next rule application.
#[cfg(feature = "test-hooks")]
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

pub struct PetActor {
    /// The pet: who it is and its state, shared with the registry, the ticker and the
    /// persister.
    cell: Arc<PetCell>,
    /// This actor's own (weak) address: how the registry tells it from a newer actor of the
    /// same pet.
    me: WeakAddr<PetActor>,
    viewers: Vec<(ViewerId, Recipient<PetFrame>)>,
    /// Set once the pet has died and handed its death to the persister: the feeds and treats
    /// that came since, answered (that it died) once the death is durable.
    dying: Option<Vec<oneshot::Sender<()>>>,
    /// The death is written: from now on it may be shown.
    death_durable: bool,
    /// The pet leaves the world when this actor stops (its death is durable, or its owner's
    /// account is gone), rather than only the actor going idle.
    ending: bool,
    /// The registry's touch count when this actor last asked to stop (see
    /// [`PetRegistry::deactivate`](crate::world::PetRegistry::deactivate)).
    seen: u32,
    world: Arc<World>,
}

impl PetActor {
    /// The actor of the pet in `cell`; `me` is the actor's own address.
    pub fn new(cell: Arc<PetCell>, me: WeakAddr<PetActor>, world: Arc<World>) -> Self {
        PetActor {
            cell,
            me,
            viewers: Vec::new(),
            dying: None,
            death_durable: false,
            ending: false,
            seen: 0,
            world,
        }
    }

    fn state(&self) -> PetState {
        self.cell.state()
    }

    /// Whether the pet has died but its death is not durable yet. Read from the cell, not
    /// from [`Ticked::Died`]: the ticker stores the death before that message arrives.
    fn death_pending(&self) -> bool {
        !self.death_durable && !self.state().alive
    }

    /// The state anyone may be shown: while a death is not durable, the last living one.
    fn shown_state(&self) -> PetState {
        if self.death_pending() {
            self.cell.last_alive()
        } else {
            self.state()
        }
    }

    fn view(&self, at: i64) -> PetView {
        let state = self.shown_state();
        let cell = &self.cell;
        PetView {
            id: cell.id(),
            name: cell.name().to_string(),
            species: cell.species(),
            age: state.age,
            hunger: state.hunger,
            alive: state.alive,
            born_at: cell.born_at(),
            owner_id: cell.owner(),
            at,
        }
    }

    /// A feed or a treat, once allowed: applies the rule to the cell, records and shows the
    /// new state, and answers with it.
    fn change(
        &mut self,
        what: &str,
        rule: fn(&mut PetState, &Rules) -> Outcome,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<PetView, PetError>> {
        if self.death_pending() {
            // It died, but saying so now could be undone by a crash: answer once the death is
            // durable (the pet is dead either way, so nothing is applied).
            self.died(ctx);
            let (tx, rx) = oneshot::channel();
            if let Some(waiting) = &mut self.dying {
                waiting.push(tx);
            }
            return Box::pin(async move {
                let _ = rx.await;
                Err(PetError::Dead)
            });
        }
        let answer = self.apply_change(what, rule, ctx);
        Box::pin(std::future::ready(answer))
    }

    fn apply_change(
        &mut self,
        what: &str,
        rule: fn(&mut PetState, &Rules) -> Outcome,
        ctx: &mut Context<Self>,
    ) -> Result<PetView, PetError> {
        if !self.state().alive {
            return Err(PetError::Dead);
        }
        let rules = self.world.rules;
        let applied = self
            .cell
            .apply(what, &self.world.metrics, |s| rule(s, &rules));
        self.changed(applied, ctx);
        self.sync_watched();
        Ok(self.view(now_ms()))
    }

    /// After a feed or treat: record the new state, push it to viewers, handle a death.
    fn changed(&mut self, applied: Option<(Outcome, PetState)>, ctx: &mut Context<Self>) {
        let Some((outcome @ (Outcome::Changed | Outcome::Died), state)) = applied else {
            return;
        };
        let at = now_ms();
        self.world.dirty.mark(&self.cell, state, at);
        if outcome == Outcome::Changed {
            self.broadcast(at);
        } else {
            self.died(ctx);
        }
    }

    /// The cell holds a dead state: hand it to the persister and show nothing until it is
    /// durable ([`DeathDurable`]). Waiting holds nothing: the pet's mailbox stays open and the
    /// persister writes deaths in batches with everything else.
    fn died(&mut self, ctx: &mut Context<Self>) {
        if self.dying.is_some() {
            return;
        }
        let snapshot = self.cell.snapshot();
        log::info!(
            "pet {} died at age {}; shown once durable",
            self.cell.id(),
            snapshot.state.age
        );
        self.dying = Some(Vec::new());
        let dirty = &self.world.dirty;
        let first = dirty.add_death(PendingDeath {
            snapshot,
            actor: ctx.address().recipient(),
        });
        if first {
            actix::spawn(carry_deaths(
                self.world.persister.clone(),
                Arc::clone(dirty),
            ));
        }
    }

    /// Keeps the cell's watched flag, which the ticker reads, in step with `viewers`.
    fn sync_watched(&self) {
        self.cell
            .set_flag(PetCell::WATCHED, !self.viewers.is_empty());
    }

    /// The `pet` frame for a view, encoded once for every viewer.
    fn frame(&self, view: PetView) -> Option<PetFrame> {
        let alive = view.alive;
        Some(PetFrame {
            pet_id: self.cell.id(),
            alive,
            moved: false,
            json: encode(&ServerMsg::Pet { pet: view })?,
        })
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
        let Some(frame) = self.frame(self.view(at)) else {
            return;
        };
        // try_send respects the session's bounded mailbox: a viewer whose client stopped
        // reading stops being fed instead of growing server memory without bound.
        let before = self.viewers.len();
        let id = self.cell.id();
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
}

impl PetActor {
    /// Forgets every viewer (the actor stops).
    fn drop_viewers(&mut self) {
        let removed = self.viewers.len() as i64;
        if removed > 0 {
            self.world.metrics.viewers.sub(removed);
            self.viewers.clear();
        }
        self.sync_watched();
    }
}

impl Actor for PetActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A dead pet that was never brought to life: show it once and stop.
        if !self.cell.has(PetCell::LIVE) && !self.state().alive {
            self.death_durable = true;
            self.ending = true;
            ctx.stop();
        }
    }

    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if self.ending {
            return Running::Stop;
        }
        // Nobody holds this actor's address (or its arbiter is stopping): it may go idle
        // unless the registry handed its address out since it last looked.
        match self
            .world
            .registry
            .deactivate(self.cell.id(), &self.me, &mut self.seen)
        {
            Deactivation::Stop => Running::Stop,
            Deactivation::Continue => {
                // Whoever got the address may already have sent and let go of it, with this
                // poll the only one to see it: dropping an address of our own wakes the
                // actor once more, to handle what came and ask again.
                drop(ctx.address());
                Running::Continue
            }
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.drop_viewers();
        if !self.ending {
            // Only idle (or the arbiter is stopping): the pet lives on in its cell.
            return;
        }
        if self.world.registry.remove(&self.cell, &self.me) {
            self.world.metrics.pets_alive.dec();
        }
    }
}

impl Handler<Release> for PetActor {
    type Result = ();

    fn handle(&mut self, _: Release, ctx: &mut Context<Self>) {
        self.ending = true;
        ctx.stop();
    }
}

impl Handler<Moved> for PetActor {
    type Result = ();

    fn handle(&mut self, _: Moved, ctx: &mut Context<Self>) {
        let moved = PetFrame {
            pet_id: self.cell.id(),
            alive: true,
            json: Arc::from(""),
            moved: true,
        };
        for (_, viewer) in &self.viewers {
            let _ = viewer.try_send(moved.clone());
        }
        self.drop_viewers();
        self.ending = true;
        ctx.stop();
    }
}

impl Handler<Ticked> for PetActor {
    type Result = ();

    fn handle(&mut self, msg: Ticked, ctx: &mut Context<Self>) {
        match msg {
            Ticked::Changed => {
                // The newest state, whatever happened since the tick: a frame can repeat a
                // state, never go back to an older one.
                self.broadcast(self.cell.at());
                self.sync_watched();
            }
            Ticked::Died => self.died(ctx),
        }
    }
}

impl Handler<DeathDurable> for PetActor {
    type Result = ();

    fn handle(&mut self, _: DeathDurable, ctx: &mut Context<Self>) {
        let Some(waiting) = self.dying.take() else {
            return;
        };
        self.death_durable = true;
        // The final frame, then the answers to feeds and treats that waited for it.
        self.broadcast(self.cell.at());
        for tx in waiting {
            let _ = tx.send(());
        }
        self.ending = true;
        ctx.stop();
    }
}

impl Handler<Get> for PetActor {
    type Result = MessageResult<Get>;

    fn handle(&mut self, _: Get, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.view(now_ms()))
    }
}

impl Handler<Feed> for PetActor {
    type Result = ResponseFuture<Result<PetView, PetError>>;

    fn handle(&mut self, msg: Feed, ctx: &mut Context<Self>) -> Self::Result {
        if msg.by != self.cell.owner() {
            return Box::pin(std::future::ready(Err(PetError::NotOwner)));
        }
        self.change("feed", PetState::feed, ctx)
    }
}

impl Handler<Treat> for PetActor {
    type Result = ResponseFuture<Result<PetView, PetError>>;

    fn handle(&mut self, msg: Treat, ctx: &mut Context<Self>) -> Self::Result {
        if msg.by == self.cell.owner() {
            return Box::pin(std::future::ready(Err(PetError::OwnPet)));
        }
        self.change("treat", PetState::treat, ctx)
    }
}

impl Handler<Watch> for PetActor {
    type Result = Result<PetView, PetError>;

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) -> Self::Result {
        if msg.by != self.cell.owner() {
            return Err(PetError::NotOwner);
        }
        let view = self.view(now_ms());
        // The first frame travels the same road as every later one (this pet's sends to the
        // viewer's mailbox, in order), so a newer tick can never arrive before it.
        if let Some(frame) = self.frame(view.clone()) {
            let _ = msg.to.try_send(frame);
        }
        if !self.viewers.iter().any(|(v, _)| *v == msg.viewer) {
            self.viewers.push((msg.viewer, msg.to));
            self.world.metrics.viewers.inc();
        }
        self.sync_watched();
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
        self.sync_watched();
    }
}

#[cfg(feature = "test-hooks")]
impl Handler<InjectPanic> for PetActor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, _: &mut Context<Self>) {
        self.cell.set_flag(PetCell::PANIC_NEXT, true);
    }
}
