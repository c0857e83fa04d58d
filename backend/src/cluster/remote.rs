//! Reaching pets on other nodes. The owner side answers requests on the subjects of the
//! shards it holds and publishes the frames of its pets that other nodes watch (one publish
//! per change, however many sessions watch elsewhere). The viewer side sends those requests,
//! retrying briefly while a shard moves ("no responders"), and keeps one subscription per
//! remotely watched pet, fanned out to every session here that watches it.

use super::messages::{pet_subject, shard_subject, Refusal, Reply, Request};
use super::{lock, Cluster};
use crate::actors::encode;
use crate::actors::pet::{
    Feed, Get, PetActor, PetError, PetFrame, Treat, Unwatch, ViewerId, Watch,
};
use crate::db::queries;
use crate::world::fence::shard_of;
use crate::world::PetRecord;
use actix::prelude::*;
use async_nats::RequestErrorKind;
use bytes::Bytes;
use futures_util::StreamExt;
use livepet_shared::wire::{PetView, ServerMsg};
use livepet_shared::{PetId, UserId};
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long one attempt waits for the owner's answer.
const ATTEMPT: Duration = Duration::from_secs(2);
/// How long requests keep trying while a shard moves before answering `service_unavailable`.
const RETRY_FOR: Duration = Duration::from_secs(5);
/// The viewer id the relay watches a pet under, on the owner's side.
const RELAY_VIEWER: ViewerId = u64::MAX;

/// Why a pet on another node could not be reached, or what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteError {
    /// Its owner says it is not alive (dead, or no such pet).
    NotLive,
    /// The pet refused.
    Refused(PetError),
    /// No node answered in time (its shard is moving, or its node is gone).
    Unavailable,
}

/// Owner side: a pet of this node whose frames are published for other nodes.
pub(super) struct Relayed {
    /// Keeps the pet's actor running while other nodes watch it.
    pet: Addr<PetActor>,
    nodes: HashSet<String>,
}

/// Viewer side: a pet of another node that sessions here watch.
pub(super) struct RemoteWatch {
    owner: UserId,
    viewers: Vec<(ViewerId, Recipient<PetFrame>)>,
    /// The newest frame passed on, with its age and time (a feed changes the state at the
    /// same age, so the age alone does not tell newer from older).
    last: Option<(Newness, Arc<str>)>,
    /// Dropping it ends the subscription to the pet's frames.
    _stop: oneshot::Sender<()>,
}

/// How new a pet's state is: its age, then when it was produced.
type Newness = (u32, i64);

fn newness(view: &PetView) -> Newness {
    (view.age, view.at)
}

/// Publishes the frames of relayed pets (owner side).
pub(super) struct Relay {
    pub(super) cluster: Weak<Cluster>,
}

impl Actor for Relay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1 << 16);
    }
}

impl Handler<PetFrame> for Relay {
    type Result = ();

    fn handle(&mut self, frame: PetFrame, _: &mut Context<Self>) {
        let Some(c) = self.cluster.upgrade() else {
            return;
        };
        if frame.moved {
            // The pet left this node; the nodes watching it renew their watch with its new
            // owner when it says it took the shard.
            lock(&c.relayed).remove(&frame.pet_id);
            return;
        }
        c.publish(
            pet_subject(frame.pet_id),
            Bytes::copy_from_slice(frame.json.as_bytes()),
        );
        if !frame.alive {
            lock(&c.relayed).remove(&frame.pet_id);
        }
    }
}

impl Cluster {
    /// Sends a request to the node owning `req`'s pet; retries while nobody answers (its
    /// shard is moving) for at most [`RETRY_FOR`].
    pub async fn request(&self, req: &Request) -> Result<PetView, RemoteError> {
        let op = req.op();
        let m = &self.world.metrics;
        let began = Instant::now();
        let out = self.request_inner(req).await;
        m.remote_request_seconds
            .with_label_values(&[op])
            .observe(began.elapsed().as_secs_f64());
        let outcome = match &out {
            Ok(_) => "ok",
            Err(RemoteError::Unavailable) => "unavailable",
            Err(_) => "refused",
        };
        m.remote_requests_total
            .with_label_values(&[op, outcome])
            .inc();
        out
    }

    async fn request_inner(&self, req: &Request) -> Result<PetView, RemoteError> {
        let payload: Bytes = match serde_json::to_vec(req) {
            Ok(v) => v.into(),
            Err(_) => return Err(RemoteError::Unavailable),
        };
        let subject = shard_subject(shard_of(req.pet()));
        let deadline = Instant::now() + RETRY_FOR;
        let mut pause = Duration::from_millis(20);
        loop {
            let attempt =
                tokio::time::timeout(ATTEMPT, self.nats.request(subject.clone(), payload.clone()))
                    .await;
            match attempt {
                Ok(Ok(msg)) => {
                    return match serde_json::from_slice::<Reply>(&msg.payload) {
                        Ok(Reply::Ok { pet }) => Ok(pet),
                        Ok(Reply::NotLive) => Err(RemoteError::NotLive),
                        Ok(Reply::Refused { why }) => Err(RemoteError::Refused(why.into())),
                        Err(e) => {
                            log::warn!("cluster: an answer on {subject} does not parse: {e}");
                            Err(RemoteError::Unavailable)
                        }
                    };
                }
                Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => {}
                Ok(Err(e)) => log::debug!("cluster: request on {subject} failed: {e}"),
                Err(_) => log::debug!("cluster: request on {subject} timed out"),
            }
            if Instant::now() + pause >= deadline {
                return Err(RemoteError::Unavailable);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(400));
        }
    }

    /// Tells the owner without waiting for an answer.
    fn tell(&self, req: &Request) {
        if let Ok(json) = serde_json::to_vec(req) {
            self.publish(shard_subject(shard_of(req.pet())), json.into());
        }
    }

    // ---- the owner side ----

    /// Starts answering the requests for these shards (just taken, their pets running).
    pub(super) async fn serve(self: &Arc<Self>, shards: &[usize]) {
        for &shard in shards {
            let sub = match self.nats.subscribe(shard_subject(shard)).await {
                Ok(sub) => sub,
                Err(e) => {
                    log::error!("cluster: cannot subscribe to shard {shard}'s requests: {e}");
                    continue;
                }
            };
            let (tx, rx) = oneshot::channel();
            lock(&self.serving).insert(shard, tx);
            actix::spawn(serve_shard(Arc::clone(self), shard, sub, rx));
        }
        self.flushed(Duration::from_secs(2)).await;
    }

    /// Stops answering for these shards, and waits until NATS knows (so requests go to the
    /// next owner, or find nobody and are retried).
    pub(super) async fn stop_serving(&self, shards: &[usize]) {
        let mut done = Vec::new();
        {
            let mut serving = lock(&self.serving);
            for s in shards {
                if let Some(stop) = serving.remove(s) {
                    let (tx, rx) = oneshot::channel();
                    if stop.send(tx).is_ok() {
                        done.push(rx);
                    }
                }
            }
        }
        for rx in done {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        self.flushed(Duration::from_secs(2)).await;
    }

    /// Answers one request, if this node still holds the pet's shard (a node that lost it
    /// stays silent, so the request reaches the new owner).
    async fn answer(self: Arc<Self>, shard: usize, msg: async_nats::Message) {
        if self.fence.epoch(shard) == 0 || !self.leases_fresh() {
            return;
        }
        let req = match serde_json::from_slice::<Request>(&msg.payload) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("cluster: ignoring a request that does not parse: {e}");
                return;
            }
        };
        let reply = self.handle(req).await;
        if let (Some(to), Some(reply)) = (msg.reply, reply) {
            match serde_json::to_vec(&reply) {
                Ok(json) => self.publish(to.to_string(), json.into()),
                Err(e) => log::error!("cluster: cannot encode an answer: {e}"),
            }
        }
    }

    async fn handle(&self, req: Request) -> Option<Reply> {
        let registry = &self.world.registry;
        let refused = |e: PetError| Reply::Refused {
            why: Refusal::from(e),
        };
        Some(match req {
            Request::Get { pet } => match registry.get(pet) {
                Some(a) => match a.send(Get).await {
                    Ok(view) => Reply::Ok { pet: view },
                    Err(_) => Reply::NotLive,
                },
                None => Reply::NotLive,
            },
            Request::Feed { pet, by } => match registry.get(pet) {
                Some(a) => match a.send(Feed { by }).await {
                    Ok(Ok(view)) => Reply::Ok { pet: view },
                    Ok(Err(e)) => refused(e),
                    Err(_) => Reply::NotLive,
                },
                None => Reply::NotLive,
            },
            Request::Treat { pet, by } => match registry.get(pet) {
                Some(a) => match a.send(Treat { by }).await {
                    Ok(Ok(view)) => Reply::Ok { pet: view },
                    Ok(Err(e)) => refused(e),
                    Err(_) => Reply::NotLive,
                },
                None => Reply::NotLive,
            },
            Request::Watch { pet, by, node } => {
                let Some(addr) = registry.get(pet) else {
                    return Some(Reply::NotLive);
                };
                let Some(relay) = self.relay.get().cloned() else {
                    return Some(Reply::NotLive);
                };
                let watch = Watch {
                    by,
                    viewer: RELAY_VIEWER,
                    to: relay,
                };
                match addr.send(watch).await {
                    Ok(Ok(view)) => {
                        lock(&self.relayed)
                            .entry(pet)
                            .or_insert_with(|| Relayed {
                                pet: addr,
                                nodes: HashSet::new(),
                            })
                            .nodes
                            .insert(node);
                        Reply::Ok { pet: view }
                    }
                    Ok(Err(e)) => refused(e),
                    Err(_) => Reply::NotLive,
                }
            }
            Request::Unwatch { pet, node } => {
                let mut relayed = lock(&self.relayed);
                if let Some(r) = relayed.get_mut(&pet) {
                    r.nodes.remove(&node);
                    if r.nodes.is_empty() {
                        if let Some(r) = relayed.remove(&pet) {
                            r.pet.do_send(Unwatch {
                                viewer: RELAY_VIEWER,
                            });
                        }
                    }
                }
                return None;
            }
            Request::Start { pet } => self.start_adopted(pet).await,
        })
    }

    /// A pet adopted through another node: read it and start it here, unless it is running.
    async fn start_adopted(&self, pet: PetId) -> Reply {
        let registry = &self.world.registry;
        if registry.get(pet).is_none() {
            let stored = crate::db::run(&self.pool, move |c| -> anyhow::Result<_> {
                Ok(queries::find_stored_pet(c, pet)?)
            })
            .await;
            let row = match stored {
                Ok(Some(row)) => row,
                Ok(None) => return Reply::NotLive,
                Err(e) => {
                    log::error!("cluster: cannot read adopted pet {pet}: {e}");
                    return Reply::NotLive;
                }
            };
            match PetRecord::try_from(row) {
                Ok(rec) if rec.state.alive => {
                    let _ = self.world.try_start_pet(rec);
                }
                Ok(_) => return Reply::NotLive,
                Err(e) => {
                    log::error!("{e}; adopted pet {pet} not started");
                    return Reply::NotLive;
                }
            }
        }
        match registry.get(pet) {
            Some(a) => match a.send(Get).await {
                Ok(view) => Reply::Ok { pet: view },
                Err(_) => Reply::NotLive,
            },
            None => Reply::NotLive,
        }
    }

    /// A node is gone: stop publishing frames for it.
    pub(super) fn unrelay_node(&self, node: &str) {
        let mut relayed = lock(&self.relayed);
        relayed.retain(|_, r| {
            r.nodes.remove(node);
            if r.nodes.is_empty() {
                r.pet.do_send(Unwatch {
                    viewer: RELAY_VIEWER,
                });
                false
            } else {
                true
            }
        });
    }

    // ---- the viewer side ----

    /// Watches a pet of another node for session `viewer` of user `by`: its frames reach
    /// `to`, the first one (its state now) before any later one, as with a local pet.
    pub async fn watch(
        self: &Arc<Self>,
        pet: PetId,
        by: UserId,
        viewer: ViewerId,
        to: Recipient<PetFrame>,
    ) -> Result<PetView, RemoteError> {
        let subscribed = lock(&self.watched).contains_key(&pet);
        if !subscribed {
            let sub = self
                .nats
                .subscribe(pet_subject(pet))
                .await
                .map_err(|_| RemoteError::Unavailable)?;
            let (stop, stopped) = oneshot::channel();
            let mut watched = lock(&self.watched);
            if let std::collections::hash_map::Entry::Vacant(slot) = watched.entry(pet) {
                slot.insert(RemoteWatch {
                    owner: by,
                    viewers: Vec::new(),
                    last: None,
                    _stop: stop,
                });
                actix::spawn(follow(Arc::downgrade(self), pet, sub, stopped));
            }
        }
        let asked = self
            .request(&Request::Watch {
                pet,
                by,
                node: self.cfg.node.clone(),
            })
            .await;
        let mut watched = lock(&self.watched);
        let view = match asked {
            Ok(view) => view,
            Err(e) => {
                if watched.get(&pet).is_some_and(|w| w.viewers.is_empty()) {
                    watched.remove(&pet);
                }
                return Err(e);
            }
        };
        let Some(w) = watched.get_mut(&pet) else {
            return Err(RemoteError::Unavailable);
        };
        w.owner = view.owner_id;
        // The state now first, then anything newer heard while the request was out.
        if let Some(json) = encode(&ServerMsg::Pet { pet: view.clone() }) {
            let _ = to.try_send(PetFrame {
                pet_id: pet,
                alive: view.alive,
                json,
                moved: false,
            });
        }
        if let Some((seen, json)) = &w.last {
            if *seen > newness(&view) {
                let _ = to.try_send(PetFrame {
                    pet_id: pet,
                    alive: true,
                    json: json.clone(),
                    moved: false,
                });
            }
        }
        if !w.viewers.iter().any(|(v, _)| *v == viewer) {
            w.viewers.push((viewer, to));
        }
        Ok(view)
    }

    /// Session `viewer` no longer watches the pet; the last one here ends the subscription
    /// and tells the owner.
    pub fn unwatch(&self, pet: PetId, viewer: ViewerId) {
        let mut watched = lock(&self.watched);
        let Some(w) = watched.get_mut(&pet) else {
            return;
        };
        w.viewers.retain(|(v, _)| *v != viewer);
        if w.viewers.is_empty() {
            watched.remove(&pet);
            drop(watched);
            self.tell(&Request::Unwatch {
                pet,
                node: self.cfg.node.clone(),
            });
        }
    }

    /// These shards have a new owner: ask it to publish the frames of the pets watched here.
    pub(super) fn rewatch(self: &Arc<Self>, shards: &[usize]) {
        let moved: HashSet<usize> = shards.iter().copied().collect();
        let pets: Vec<(PetId, UserId)> = lock(&self.watched)
            .iter()
            .filter(|(id, _)| moved.contains(&shard_of(**id)))
            .map(|(id, w)| (*id, w.owner))
            .collect();
        for (pet, by) in pets {
            let c = Arc::clone(self);
            actix::spawn(async move {
                let req = Request::Watch {
                    pet,
                    by,
                    node: c.cfg.node.clone(),
                };
                match c.request(&req).await {
                    Ok(view) => c.heard_frame(pet, view),
                    Err(e) => log::info!("cluster: cannot watch pet {pet} on its new node: {e:?}"),
                }
            });
        }
    }

    /// A state of a watched pet arrived with a renewed watch: pass it on if it is new.
    fn heard_frame(&self, pet: PetId, view: PetView) {
        let (new, alive) = (newness(&view), view.alive);
        if let Some(json) = encode(&ServerMsg::Pet { pet: view }) {
            self.fan_out(pet, new, alive, json);
        }
    }

    /// Passes a frame of a remotely watched pet to every session here watching it, unless a
    /// newer one was passed on already.
    fn fan_out(&self, pet: PetId, new: Newness, alive: bool, json: Arc<str>) {
        let mut watched = lock(&self.watched);
        let Some(w) = watched.get_mut(&pet) else {
            return;
        };
        if alive && w.last.as_ref().is_some_and(|(seen, _)| *seen >= new) {
            return;
        }
        w.last = Some((new, json.clone()));
        let frame = PetFrame {
            pet_id: pet,
            alive,
            json,
            moved: false,
        };
        w.viewers
            .retain(|(_, to)| to.try_send(frame.clone()).is_ok());
        // A watch under way has no viewer yet: only a death ends the subscription here (the
        // last session to leave ends it in `unwatch`).
        if !alive {
            watched.remove(&pet);
        }
    }
}

/// Owner side: answers the requests for one shard until told to stop.
async fn serve_shard(
    c: Arc<Cluster>,
    shard: usize,
    mut sub: async_nats::Subscriber,
    mut stop: oneshot::Receiver<oneshot::Sender<()>>,
) {
    loop {
        tokio::select! {
            stopped = &mut stop => {
                let _ = sub.unsubscribe().await;
                if let Ok(done) = stopped {
                    let _ = done.send(());
                }
                return;
            }
            msg = sub.next() => match msg {
                Some(msg) => {
                    actix::spawn(Arc::clone(&c).answer(shard, msg));
                }
                None => return,
            }
        }
    }
}

/// Viewer side: passes the frames of one remotely watched pet on, until the last session
/// here stops watching it.
async fn follow(
    c: Weak<Cluster>,
    pet: PetId,
    mut sub: async_nats::Subscriber,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => {
                let _ = sub.unsubscribe().await;
                return;
            }
            msg = sub.next() => {
                let Some(msg) = msg else { return };
                let Some(c) = c.upgrade() else { return };
                let Ok(text) = std::str::from_utf8(&msg.payload) else { continue };
                let Ok(ServerMsg::Pet { pet: view }) = serde_json::from_str::<ServerMsg>(text) else {
                    continue;
                };
                c.fan_out(pet, newness(&view), view.alive, Arc::from(text));
            }
        }
    }
}
