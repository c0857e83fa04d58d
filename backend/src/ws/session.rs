//! ViewerSession: one browser tab's WebSocket, a thin transport. It decodes frames, enforces
//! the heartbeat and the frame rate limit, forwards commands to pets, Presence and the
//! services, and writes what comes back. Rules and multi-step operations (paying for a
//! treat) live in `services/` and the pet actor. It never outlives its login session: it is
//! registered in `services::sockets`, acts on no frame once the session is being ended, and
//! closes with 4001 when it has ended or expired.

use super::heartbeat::{Beat, Heartbeat};
use super::protocol::{self, FrameError};
use crate::actors::encode;
use crate::actors::pet::{Feed, PetActor, PetFrame, Unwatch, ViewerId, Watch};
use crate::actors::presence::{Connect, Disconnect, Join, Leave, PageKey, Push, ShowPage};
use crate::clock::now_ms;
use crate::cluster::messages::Request;
use crate::cluster::remote::RemoteError;
use crate::services::accounts::SessionInfo;
use crate::services::pets::{unavailable, NO_SUCH_PET};
use crate::services::sockets::SessionEnded;
use crate::state::AppState;
use actix::prelude::*;
use actix_web::web;
use actix_web_actors::ws;
use futures_util::FutureExt;
use governor::{DefaultDirectRateLimiter, Quota};
use livepet_shared::wire::{
    ActivePet, ClientMsg, ErrorCode, PetView, ServerMsg, ACTIVE_PAGE_MAX, CLOSE_SESSION_ENDED,
};
use livepet_shared::{PetId, UserId};
use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest frame accepted from a client.
pub const MAX_FRAME: usize = 16 * 1024;
/// Refused frames within one abuse window after which the socket is closed.
const ABUSE_LIMIT: u32 = 200;
const ABUSE_WINDOW: Duration = Duration::from_secs(10);
/// Frames that may wait for a session before its pets and Presence give up on it.
const SESSION_MAILBOX: usize = 256;
/// Dashboard stats cadence.
const STATS_EVERY: Duration = Duration::from_secs(1);

static NEXT_VIEWER: AtomicU64 = AtomicU64::new(1);

/// Where a watched pet lives.
enum Watched {
    /// In this process: its actor sends the frames (holding the address keeps it running).
    Here(Addr<PetActor>),
    /// On another node (cluster mode): its frames come through the cluster.
    Elsewhere,
}

type Ctx = ws::WebsocketContext<ViewerSession>;

pub struct ViewerSession {
    id: ViewerId,
    user: UserId,
    /// The login session this socket was opened with.
    login: SessionInfo,
    /// Set (by `services::sockets`) once the login session is being ended: act on nothing.
    ended: Arc<AtomicBool>,
    state: web::Data<AppState>,
    watching: HashMap<PetId, Watched>,
    heartbeat: Heartbeat,
    limiter: DefaultDirectRateLimiter,
    refused: u32,
    refused_since: Instant,
    stats: Option<SpawnHandle>,
    /// The page of the active list this session shows; Presence's changes for any other
    /// page (sent before a move) are dropped.
    page: Option<PageKey>,
}

impl ViewerSession {
    pub fn new(login: SessionInfo, state: web::Data<AppState>) -> Self {
        // A burst of twice the sustained rate absorbs a page load's flurry of frames.
        let per_second = state.settings.ws_frames_per_second;
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(NonZeroU32::MIN);
        ViewerSession {
            id: NEXT_VIEWER.fetch_add(1, Ordering::Relaxed),
            heartbeat: Heartbeat::new(state.settings.ws_timeout, Instant::now()),
            user: login.user,
            login,
            ended: Arc::new(AtomicBool::new(false)),
            state,
            watching: HashMap::new(),
            limiter: governor::RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            refused: 0,
            refused_since: Instant::now(),
            stats: None,
            page: None,
        }
    }

    fn send(&self, ctx: &mut Ctx, msg: &ServerMsg) {
        if let Some(json) = encode(msg) {
            ctx.text(&*json);
        }
    }

    /// Sends an `error` frame; the session stays up.
    fn error(&self, ctx: &mut Ctx, e: impl Into<FrameError>) {
        let e = e.into();
        self.state
            .metrics()
            .ws_errors_total
            .with_label_values(&[e.code.as_str()])
            .inc();
        self.send(ctx, &e.to_msg());
    }

    /// Runs an operation off the session's task and writes its error frame, if any.
    fn run<F>(&mut self, ctx: &mut Ctx, op: F)
    where
        F: Future<Output = Result<(), FrameError>> + 'static,
    {
        ctx.spawn(op.into_actor(self).map(|res, act, ctx| {
            if let Err(e) = res {
                act.error(ctx, e);
            }
        }));
    }

    /// Token buckets per session and per user (across all the user's sockets); sustained
    /// abuse closes the socket (policy violation).
    fn admit(&mut self, ctx: &mut Ctx) -> bool {
        let limits = &self.state.services.limits;
        let refused = if self.limiter.check().is_err() {
            Some(format!(
                "slow down: at most {} frames per second",
                self.state.settings.ws_frames_per_second
            ))
        } else if !limits.admit_frame(self.user) {
            Some(format!(
                "slow down: at most {} frames per second across all your connections",
                limits.settings.frames_per_second
            ))
        } else {
            None
        };
        let Some(why) = refused else {
            return true;
        };
        if self.refused_since.elapsed() > ABUSE_WINDOW {
            self.refused = 0;
            self.refused_since = Instant::now();
        }
        self.refused += 1;
        if self.refused == 1 {
            self.error(ctx, FrameError::new(ErrorCode::RateLimited, why));
        }
        if self.refused >= ABUSE_LIMIT {
            log::warn!(
                "closing session {} of user {}: frame flood",
                self.id,
                self.user
            );
            ctx.close(Some(ws::CloseReason {
                code: ws::CloseCode::Policy,
                description: Some("too many frames".into()),
            }));
            ctx.stop();
        }
        false
    }

    /// Closes the socket because its login session ended (code 4001, "session ended").
    fn session_ended(&mut self, ctx: &mut Ctx) {
        self.ended.store(true, Ordering::SeqCst);
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Other(CLOSE_SESSION_ENDED),
            description: Some("session ended".into()),
        }));
        ctx.stop();
    }

    fn handle_text(&mut self, text: &str, ctx: &mut Ctx) {
        // The session is being ended: nothing more is done on its behalf.
        if self.ended.load(Ordering::SeqCst) {
            return;
        }
        let msg = match protocol::decode(text) {
            Ok(m) => m,
            Err(e) => return self.error(ctx, e),
        };
        match msg {
            ClientMsg::Ping => self.send(ctx, &ServerMsg::Pong),
            ClientMsg::Watch { pet_id } => self.watch(pet_id, ctx),
            ClientMsg::Unwatch { pet_id } => self.unwatch(pet_id),
            ClientMsg::Feed { pet_id } => self.feed(pet_id, ctx),
            ClientMsg::GiveTreat { pet_id } => {
                let (state, user) = (self.state.clone(), self.user);
                self.run(ctx, async move {
                    Ok(state.services.give_treat(user, pet_id).await?)
                });
            }
            ClientMsg::SubscribeStats => self.subscribe_stats(ctx),
            ClientMsg::ActivePetsPage { offset, limit } => self.show_page(offset, limit, ctx),
        }
    }

    /// Moves to another page of the active list (limit 0: no list). `wait`: the page's first
    /// frame must go out before any change Presence sends for it.
    fn show_page(&mut self, offset: u32, limit: u32, ctx: &mut Ctx) {
        if limit > ACTIVE_PAGE_MAX {
            return self.error(
                ctx,
                FrameError::new(
                    ErrorCode::BadRequest,
                    format!("limit is at most {ACTIVE_PAGE_MAX} pets a page"),
                ),
            );
        }
        let page = (limit > 0).then_some(PageKey { offset, limit });
        self.page = page;
        let show = ShowPage {
            viewer: self.id,
            page,
        };
        let presence = self.state.services.presence.clone();
        ctx.wait(
            async move { presence.send(show).await.ok().flatten() }
                .into_actor(self)
                .map(|frame, _, ctx| {
                    if let Some(json) = frame {
                        ctx.text(&*json);
                    }
                }),
        );
    }

    fn watch(&mut self, pet_id: PetId, ctx: &mut Ctx) {
        let services = &self.state.services;
        let here = services.world.registry.get(pet_id);
        if here.is_none() && services.remote(pet_id).is_none() {
            return self.not_live(pet_id, ctx, false);
        }
        let max = services.limits.settings.watched as usize;
        if !services.live.try_watch(self.user, self.id, pet_id, max) {
            // Only an owner hears of the limit: for anyone else's pet the answer is the one
            // a missing id gets, so the limit cannot be used to tell which ids exist.
            let (user, message) = (self.user, services.limits.too_many_watched());
            let state = self.state.clone();
            ctx.spawn(
                async move { state.services.live_pet(pet_id).await }
                    .into_actor(self)
                    .map(move |view, act, ctx| match view {
                        Ok(Some(v)) if v.owner_id == user => {
                            act.error(ctx, FrameError::new(ErrorCode::LimitReached, message))
                        }
                        _ => act.error(ctx, NO_SUCH_PET),
                    }),
            );
            return;
        }
        let Some(pet) = here else {
            return self.watch_elsewhere(pet_id, ctx, true);
        };
        let watch = Watch {
            by: self.user,
            viewer: self.id,
            to: ctx.address().recipient(),
        };
        let addr = pet.clone();
        // `wait`, not `spawn`: the pet's first frame waits in this session's mailbox until
        // the pet is announced to Presence, so a client that has seen its pet's frame can
        // count on the pet being in everyone's active list from then on.
        ctx.wait(async move { pet.send(watch).await }.into_actor(self).map(
            move |res, act, ctx| match res {
                // The pet itself sent the first frame, in order with its later ones.
                Ok(Ok(view)) => {
                    act.watching.insert(pet_id, Watched::Here(addr));
                    act.joined(view);
                }
                Ok(Err(e)) => {
                    act.release_watch(pet_id);
                    act.error(ctx, e)
                }
                // It died between the lookup and the message: show its stored state.
                Err(_) => {
                    act.release_watch(pet_id);
                    act.not_live(pet_id, ctx, false)
                }
            },
        ));
    }

    /// Tells Presence this session shows its pet.
    fn joined(&self, view: PetView) {
        self.state.services.presence.do_send(Join {
            viewer: self.id,
            pet: ActivePet {
                id: view.id,
                name: view.name,
                species: view.species,
                owner_id: view.owner_id,
            },
        });
    }

    /// Watches a pet another node owns (cluster mode). `fresh`: a new watch (it waits, like a
    /// local one, so the first frame goes out before anything else); otherwise the pet moved
    /// away from under an existing watch, which is renewed with its new node.
    fn watch_elsewhere(&mut self, pet_id: PetId, ctx: &mut Ctx, fresh: bool) {
        let Some(cluster) = self.state.services.cluster.clone() else {
            return self.not_live(pet_id, ctx, false);
        };
        let (user, viewer, to) = (self.user, self.id, ctx.address().recipient());
        let watching = async move { cluster.watch(pet_id, user, viewer, to).await }
            .into_actor(self)
            .map(move |res, act, ctx| {
                if let Ok(view) = res {
                    act.watching.insert(pet_id, Watched::Elsewhere);
                    if fresh {
                        act.joined(view);
                    }
                    return;
                }
                act.release_watch(pet_id);
                if !fresh {
                    act.state.services.presence.do_send(Leave {
                        viewer: act.id,
                        pet: pet_id,
                    });
                }
                match res {
                    Ok(_) => {}
                    Err(RemoteError::NotLive) => act.not_live(pet_id, ctx, false),
                    Err(RemoteError::Refused(e)) => act.error(ctx, e),
                    Err(RemoteError::Unavailable) => act.error(ctx, unavailable()),
                }
            });
        if fresh {
            ctx.wait(watching);
        } else {
            ctx.spawn(watching);
        }
    }

    /// Gives back the place a watch took in the user's watched-pets limit, unless this
    /// socket still watches the pet.
    fn release_watch(&self, pet_id: PetId) {
        if !self.watching.contains_key(&pet_id) {
            self.state.services.live.unwatch(self.user, self.id, pet_id);
        }
    }

    fn unwatch(&mut self, pet_id: PetId) {
        self.state.services.live.unwatch(self.user, self.id, pet_id);
        if let Some(pet) = self.watching.remove(&pet_id) {
            self.stop_watching(pet_id, pet);
            self.state.services.presence.do_send(Leave {
                viewer: self.id,
                pet: pet_id,
            });
        }
    }

    /// Lets go of a watched pet, wherever it lives.
    fn stop_watching(&self, pet_id: PetId, watched: Watched) {
        match watched {
            Watched::Here(pet) => pet.do_send(Unwatch { viewer: self.id }),
            Watched::Elsewhere => {
                if let Some(c) = &self.state.services.cluster {
                    c.unwatch(pet_id, self.id);
                }
            }
        }
    }

    fn feed(&mut self, pet_id: PetId, ctx: &mut Ctx) {
        let by = self.user;
        let services = &self.state.services;
        let fed = match (services.world.registry.get(pet_id), services.remote(pet_id)) {
            (Some(pet), _) => async move {
                match pet.send(Feed { by }).await {
                    Ok(Ok(view)) => Ok(view),
                    Ok(Err(e)) => Err(RemoteError::Refused(e)),
                    Err(_) => Err(RemoteError::NotLive),
                }
            }
            .boxed_local(),
            (None, Some(cluster)) => {
                let cluster = cluster.clone();
                async move { cluster.request(&Request::Feed { pet: pet_id, by }).await }
                    .boxed_local()
            }
            (None, None) => return self.not_live(pet_id, ctx, true),
        };
        ctx.spawn(fed.into_actor(self).map(move |res, act, ctx| match res {
            // A watching session gets the new state from the pet's broadcast.
            Ok(view) if !act.watching.contains_key(&pet_id) => {
                act.send(ctx, &ServerMsg::Pet { pet: view })
            }
            Ok(_) => {}
            Err(RemoteError::Refused(e)) => act.error(ctx, e),
            Err(RemoteError::NotLive) => act.not_live(pet_id, ctx, true),
            Err(RemoteError::Unavailable) => act.error(ctx, unavailable()),
        }));
    }

    /// The pet is not alive in this process: say why, or show a dead pet's stored state.
    fn not_live(&mut self, pet_id: PetId, ctx: &mut Ctx, acting: bool) {
        let (state, user) = (self.state.clone(), self.user);
        ctx.spawn(
            async move { state.services.pet_not_live(user, pet_id, acting).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(view) => act.send(ctx, &ServerMsg::Pet { pet: view }),
                    Err(e) => act.error(ctx, e),
                }),
        );
    }

    fn subscribe_stats(&mut self, ctx: &mut Ctx) {
        if !self.state.settings.dashboard {
            return self.error(
                ctx,
                FrameError::new(ErrorCode::Forbidden, "the dashboard is turned off"),
            );
        }
        if self.stats.is_some() {
            return;
        }
        let mut last = (Instant::now(), self.state.metrics().ticks_total.get());
        let handle = ctx.run_interval(STATS_EVERY, move |act, ctx| {
            let now = Instant::now();
            let ticks = act.state.metrics().ticks_total.get();
            let rate = (ticks - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, ticks);
            let stats = act.state.stats(rate);
            act.send(ctx, &ServerMsg::Stats(stats));
        });
        self.stats = Some(handle);
    }
}

impl Actor for ViewerSession {
    type Context = Ctx;

    fn started(&mut self, ctx: &mut Ctx) {
        // Bounded on purpose: pets and Presence use try_send, so a client that stops reading
        // (its session is then no longer polled) costs at most this many queued frames.
        ctx.set_mailbox_capacity(SESSION_MAILBOX);
        self.state.metrics().ws_connections.inc();
        ctx.run_interval(self.heartbeat.every(), |act, ctx| {
            match act.heartbeat.beat(Instant::now()) {
                Beat::Ping => ctx.ping(b""),
                Beat::Skip => {}
                Beat::TimedOut => {
                    log::info!("session {} timed out", act.id);
                    ctx.stop();
                }
            }
        });
        // Registered before the second look at the session: a revocation that committed
        // before the look is seen by it, one that commits after finds the registration.
        self.ended = self.state.services.live.register(
            self.user,
            self.id,
            self.login.token_hash.clone(),
            ctx.address().recipient(),
        );
        let expires_in = u64::try_from(self.login.expires_at.saturating_sub(now_ms())).unwrap_or(0);
        ctx.run_later(Duration::from_millis(expires_in), |act, ctx| {
            log::info!("session {}: login expired", act.id);
            act.session_ended(ctx);
        });
        let connect = Connect {
            viewer: self.id,
            user: self.user,
            to: ctx.address().recipient(),
        };
        let (state, user, login) = (self.state.clone(), self.user, self.login.token_hash.clone());
        // The second look at the login session (with the treats, in one database turn),
        // then the first page of the active list: all before any frame is handled.
        ctx.wait(
            async move {
                let look = state.services.socket_start(login, user).await;
                let page = match look {
                    Ok(None) => None,
                    _ => state.services.presence.send(connect).await.ok().flatten(),
                };
                (look, page)
            }
            .into_actor(self)
            .map(|(look, page), act, ctx| {
                if matches!(look, Ok(None)) {
                    return act.session_ended(ctx);
                }
                if let Some(json) = page {
                    act.page = Some(PageKey::FIRST);
                    ctx.text(&*json);
                }
                match look {
                    Ok(Some(available)) => act.send(ctx, &ServerMsg::Treats { available }),
                    Ok(None) => {}
                    // The database is down: the upgrade's check a moment ago stands; a
                    // revocation cannot have committed without it either.
                    Err(e) => {
                        e.log_cause();
                        act.error(
                            ctx,
                            FrameError::new(
                                ErrorCode::ServiceUnavailable,
                                "could not read your treats",
                            ),
                        )
                    }
                }
            }),
        );
    }

    fn stopped(&mut self, _: &mut Ctx) {
        self.state.metrics().ws_connections.dec();
        self.state.services.live.unregister(self.user, self.id);
        for (pet_id, watched) in std::mem::take(&mut self.watching) {
            self.stop_watching(pet_id, watched);
        }
        self.state
            .services
            .presence
            .do_send(Disconnect { viewer: self.id });
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for ViewerSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Ctx) {
        self.heartbeat.seen(Instant::now());
        let msg = match item {
            Ok(m) => m,
            Err(ws::ProtocolError::Overflow) => {
                self.error(
                    ctx,
                    FrameError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("frames are limited to {MAX_FRAME} bytes"),
                    ),
                );
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Size,
                    description: Some("frame too large".into()),
                }));
                return ctx.stop();
            }
            Err(e) => {
                log::debug!("session {}: protocol error {e}", self.id);
                ctx.close(Some(ws::CloseCode::Protocol.into()));
                return ctx.stop();
            }
        };
        match msg {
            ws::Message::Text(text) => {
                self.state.metrics().ws_frames_in_total.inc();
                if self.admit(ctx) {
                    self.handle_text(&text, ctx);
                }
            }
            ws::Message::Binary(_) | ws::Message::Continuation(_) => {
                self.state.metrics().ws_frames_in_total.inc();
                if self.admit(ctx) {
                    self.error(
                        ctx,
                        FrameError::new(ErrorCode::BinaryNotSupported, "send JSON text frames"),
                    );
                }
            }
            ws::Message::Ping(p) => ctx.pong(&p),
            ws::Message::Pong(_) | ws::Message::Nop => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
        }
    }
}

impl Handler<PetFrame> for ViewerSession {
    type Result = ();

    fn handle(&mut self, frame: PetFrame, ctx: &mut Ctx) {
        if frame.moved {
            // Its shard went to another node (cluster mode): watch it there.
            if self.watching.remove(&frame.pet_id).is_some() {
                self.watch_elsewhere(frame.pet_id, ctx, false);
            }
            return;
        }
        ctx.text(&*frame.json);
        if !frame.alive && self.watching.remove(&frame.pet_id).is_some() {
            self.state
                .services
                .live
                .unwatch(self.user, self.id, frame.pet_id);
            self.state.services.presence.do_send(Leave {
                viewer: self.id,
                pet: frame.pet_id,
            });
        }
    }
}

impl Handler<SessionEnded> for ViewerSession {
    type Result = ();

    fn handle(&mut self, _: SessionEnded, ctx: &mut Ctx) {
        log::info!(
            "session {} of user {}: login session ended",
            self.id,
            self.user
        );
        self.session_ended(ctx);
    }
}

impl Handler<Push> for ViewerSession {
    type Result = ();

    fn handle(&mut self, msg: Push, ctx: &mut Ctx) {
        match msg {
            Push::Frame(json) => ctx.text(&*json),
            Push::Page(page, json) if self.page == Some(page) => ctx.text(&*json),
            Push::Page(..) => {}
            Push::GoingAway => {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Away,
                    description: Some("server is restarting".into()),
                }));
                ctx.stop();
            }
        }
    }
}
