//! Presence: which pets are on someone's screen right now (the "active pets"), and the
//! registry of connected viewer sessions so changes reach all of them.
//!
//! Joins and leaves are coalesced: sessions get at most one `active_pets_changed` per
//! flush interval (250 ms), encoded once and shared, so a thousand joins cost each session
//! one frame rather than a thousand.

use crate::actors::encode;
use crate::actors::pet::ViewerId;
use crate::metrics::Metrics;
use actix::prelude::*;
use livepet_shared::wire::{ActivePet, ServerMsg};
use livepet_shared::{PetId, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How often pending joins/leaves go out.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// What Presence tells a session.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum Push {
    /// A ready-made text frame, encoded once for every recipient.
    Frame(Arc<str>),
    /// The server is stopping: close with "going away" after what is already queued.
    GoingAway,
}

/// The server is stopping: every session closes with "going away".
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Shutdown;

/// A session connects; replies with the full active list.
#[derive(Message)]
#[rtype(result = "Vec<ActivePet>")]
pub struct Connect {
    pub viewer: ViewerId,
    pub user: UserId,
    pub to: Recipient<Push>,
}

/// A session is gone; everything it was watching is released.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub viewer: ViewerId,
}

/// An owner's session is showing this live pet.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub viewer: ViewerId,
    pub pet: ActivePet,
}

/// The session no longer shows this pet (unwatched, or it died).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub viewer: ViewerId,
    pub pet: PetId,
}

/// The owner of a pet if it is active now, else `None`.
#[derive(Message)]
#[rtype(result = "Option<UserId>")]
pub struct ActiveOwner {
    pub pet: PetId,
}

/// A user's treat count changed: tell each of their sessions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TreatsChanged {
    pub user: UserId,
    pub available: u32,
}

/// Every user was topped up to `available`: tell every session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TreatsRefreshed {
    pub available: u32,
}

struct Active {
    info: ActivePet,
    /// Sessions showing it; the pet stays active while any does (an owner's second tab).
    viewers: HashSet<ViewerId>,
}

struct Session {
    user: UserId,
    to: Recipient<Push>,
}

pub struct Presence {
    active: HashMap<PetId, Active>,
    sessions: HashMap<ViewerId, Session>,
    /// What sessions were last told is active; the diff is computed against it.
    announced: HashSet<PetId>,
    /// Pets whose presence changed since the last diff.
    changed: HashSet<PetId>,
    metrics: Arc<Metrics>,
}

impl Presence {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Presence {
            active: HashMap::new(),
            sessions: HashMap::new(),
            announced: HashSet::new(),
            changed: HashSet::new(),
            metrics,
        }
    }

    fn list(&self) -> Vec<ActivePet> {
        let mut pets: Vec<ActivePet> = self.active.values().map(|a| a.info.clone()).collect();
        pets.sort_by_key(|p| p.id);
        pets
    }

    fn release(&mut self, viewer: ViewerId, pet: PetId) {
        if let Some(a) = self.active.get_mut(&pet) {
            a.viewers.remove(&viewer);
            if a.viewers.is_empty() {
                self.active.remove(&pet);
                self.changed.insert(pet);
            }
        }
        self.metrics.active_pets.set(self.active.len() as i64);
    }

    fn broadcast(&mut self, msg: &ServerMsg) {
        let Some(frame) = encode(msg) else { return };
        let stuck: Vec<ViewerId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.to.try_send(Push::Frame(frame.clone())).is_err())
            .map(|(id, _)| *id)
            .collect();
        self.drop_stuck(stuck);
    }

    /// Forgets sessions whose mailbox is full (their client stopped reading): they get no
    /// more frames, and the pets they showed leave the active list.
    fn drop_stuck(&mut self, stuck: Vec<ViewerId>) {
        for viewer in stuck {
            log::info!("dropping session {viewer}: it is not keeping up");
            self.metrics.slow_viewers_dropped_total.inc();
            self.disconnect(viewer);
        }
    }

    fn disconnect(&mut self, viewer: ViewerId) {
        self.sessions.remove(&viewer);
        let watched: Vec<PetId> = self
            .active
            .iter()
            .filter(|(_, a)| a.viewers.contains(&viewer))
            .map(|(id, _)| *id)
            .collect();
        for pet in watched {
            self.release(viewer, pet);
        }
    }

    /// Sends one coalesced diff to every session, if anything changed.
    fn flush(&mut self) {
        if self.changed.is_empty() {
            return;
        }
        let mut joined = Vec::new();
        let mut left = Vec::new();
        for id in self.changed.drain() {
            match (self.active.get(&id), self.announced.contains(&id)) {
                (Some(a), false) => {
                    joined.push(a.info.clone());
                    self.announced.insert(id);
                }
                (None, true) => {
                    left.push(id);
                    self.announced.remove(&id);
                }
                _ => {} // joined and left again within one interval: nothing to say
            }
        }
        if joined.is_empty() && left.is_empty() {
            return;
        }
        joined.sort_by_key(|p| p.id);
        left.sort();
        self.broadcast(&ServerMsg::ActivePetsChanged { joined, left });
    }
}

impl Actor for Presence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Many sessions: a big mailbox keeps do_send callers from waiting on us.
        ctx.set_mailbox_capacity(1 << 16);
        ctx.run_interval(FLUSH_EVERY, |act, _| act.flush());
    }
}

impl Handler<Connect> for Presence {
    type Result = MessageResult<Connect>;

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> Self::Result {
        self.sessions.insert(
            msg.viewer,
            Session {
                user: msg.user,
                to: msg.to,
            },
        );
        MessageResult(self.list())
    }
}

impl Handler<Disconnect> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        self.disconnect(msg.viewer);
    }
}

impl Handler<Join> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        let id = msg.pet.id;
        let entry = self.active.entry(id).or_insert_with(|| Active {
            info: msg.pet,
            viewers: HashSet::new(),
        });
        if entry.viewers.is_empty() {
            self.changed.insert(id);
        }
        entry.viewers.insert(msg.viewer);
        self.metrics.active_pets.set(self.active.len() as i64);
    }
}

impl Handler<Leave> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.release(msg.viewer, msg.pet);
    }
}

impl Handler<ActiveOwner> for Presence {
    type Result = Option<UserId>;

    fn handle(&mut self, msg: ActiveOwner, _: &mut Context<Self>) -> Option<UserId> {
        self.active.get(&msg.pet).map(|a| a.info.owner_id)
    }
}

impl Handler<TreatsChanged> for Presence {
    type Result = ();

    fn handle(&mut self, msg: TreatsChanged, _: &mut Context<Self>) {
        let Some(frame) = encode(&ServerMsg::Treats {
            available: msg.available,
        }) else {
            return;
        };
        let stuck: Vec<ViewerId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user == msg.user)
            .filter(|(_, s)| s.to.try_send(Push::Frame(frame.clone())).is_err())
            .map(|(id, _)| *id)
            .collect();
        self.drop_stuck(stuck);
    }
}

impl Handler<TreatsRefreshed> for Presence {
    type Result = ();

    fn handle(&mut self, msg: TreatsRefreshed, _: &mut Context<Self>) {
        self.broadcast(&ServerMsg::Treats {
            available: msg.available,
        });
    }
}

impl Handler<Shutdown> for Presence {
    type Result = usize;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> usize {
        for s in self.sessions.values() {
            s.to.do_send(Push::GoingAway);
        }
        self.sessions.len()
    }
}
