//! ViewerSession: one browser tab's WebSocket. A thin transport: it decodes frames, enforces
//! the heartbeat and the frame rate limit, forwards commands to pets and Presence, and writes
//! what comes back. The rules themselves live in the pet actor and `livepet-shared`.

use crate::actors::pet::{Feed, PetActor, PetError, PetFrame, Treat, Unwatch, ViewerId, Watch};
use crate::actors::presence::{
    self, ActiveOwner, Connect, Disconnect, Join, Leave, Push, TreatsChanged,
};
use crate::db::queries;
use crate::metrics::Metrics;
use crate::startup::AppState;
use crate::ws_protocol;
use actix::prelude::*;
use actix_web::web;
use actix_web_actors::ws;
use governor::{DefaultDirectRateLimiter, Quota};
use livepet_shared::wire::{ActivePet, ClientMsg, ErrorCode, ServerMsg, Stats};
use livepet_shared::{PetId, UserId};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The server pings this often.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// A client silent for this long is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
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

pub struct ViewerSession {
    id: ViewerId,
    user: UserId,
    state: web::Data<AppState>,
    watching: HashMap<PetId, Addr<PetActor>>,
    last_seen: Instant,
    limiter: DefaultDirectRateLimiter,
    refused: u32,
    refused_since: Instant,
    stats: Option<SpawnHandle>,
}

impl ViewerSession {
    pub fn new(user: UserId, state: web::Data<AppState>) -> Self {
        // A burst of twice the sustained rate absorbs a page load's flurry of frames.
        let per_second = state.ws_frames_per_second;
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(NonZeroU32::MIN);
        ViewerSession {
            id: NEXT_VIEWER.fetch_add(1, Ordering::Relaxed),
            user,
            state,
            watching: HashMap::new(),
            last_seen: Instant::now(),
            limiter: governor::RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            refused: 0,
            refused_since: Instant::now(),
            stats: None,
        }
    }

    fn metrics(&self) -> &Metrics {
        &self.state.world.metrics
    }

    fn send(&self, ctx: &mut ws::WebsocketContext<Self>, msg: &ServerMsg) {
        if let Some(json) = presence::encode(msg) {
            ctx.text(&*json);
        }
    }

    fn error(
        &self,
        ctx: &mut ws::WebsocketContext<Self>,
        code: ErrorCode,
        message: impl Into<String>,
    ) {
        self.metrics()
            .ws_errors_total
            .with_label_values(&[code.as_str()])
            .inc();
        self.send(
            ctx,
            &ServerMsg::Error {
                code,
                message: message.into(),
            },
        );
    }

    /// Token bucket per session; sustained abuse closes the socket (policy violation).
    fn admit(&mut self, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        if self.limiter.check().is_ok() {
            return true;
        }
        if self.refused_since.elapsed() > ABUSE_WINDOW {
            self.refused = 0;
            self.refused_since = Instant::now();
        }
        self.refused += 1;
        if self.refused == 1 {
            self.error(
                ctx,
                ErrorCode::RateLimited,
                format!(
                    "slow down: at most {} frames per second",
                    self.state.ws_frames_per_second
                ),
            );
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

    fn handle_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let msg = match ws_protocol::decode(text) {
            Ok(m) => m,
            Err(e) => return self.error(ctx, e.code, e.message),
        };
        match msg {
            ClientMsg::Ping => self.send(ctx, &ServerMsg::Pong),
            ClientMsg::Watch { pet_id } => self.watch(pet_id, ctx),
            ClientMsg::Unwatch { pet_id } => self.unwatch(pet_id),
            ClientMsg::Feed { pet_id } => self.feed(pet_id, ctx),
            ClientMsg::GiveTreat { pet_id } => self.give_treat(pet_id, ctx),
            ClientMsg::SubscribeStats => self.subscribe_stats(ctx),
        }
    }

    fn watch(&mut self, pet_id: PetId, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(pet) = self.state.world.registry.get(pet_id) else {
            return self.not_live(pet_id, ctx, false);
        };
        let watch = Watch {
            by: self.user,
            viewer: self.id,
            to: ctx.address().recipient(),
        };
        let addr = pet.clone();
        ctx.spawn(async move { pet.send(watch).await }.into_actor(self).map(
            move |res, act, ctx| match res {
                // The pet itself sent the first frame, in order with its later ones.
                Ok(Ok(view)) => {
                    act.watching.insert(pet_id, addr);
                    act.state.presence.do_send(Join {
                        viewer: act.id,
                        owner: act.user,
                        pet: ActivePet {
                            id: view.id,
                            name: view.name,
                            species: view.species,
                        },
                    });
                }
                Ok(Err(e)) => act.pet_error(e, ctx),
                // It died between the lookup and the message: show its stored state.
                Err(_) => act.not_live(pet_id, ctx, false),
            },
        ));
    }

    fn unwatch(&mut self, pet_id: PetId) {
        if let Some(pet) = self.watching.remove(&pet_id) {
            pet.do_send(Unwatch { viewer: self.id });
            self.state.presence.do_send(Leave {
                viewer: self.id,
                pet: pet_id,
            });
        }
    }

    fn feed(&mut self, pet_id: PetId, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(pet) = self.state.world.registry.get(pet_id) else {
            return self.not_live(pet_id, ctx, true);
        };
        let by = self.user;
        ctx.spawn(
            async move { pet.send(Feed { by }).await }
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    // A watching session gets the new state from the pet's broadcast.
                    Ok(Ok(view)) if !act.watching.contains_key(&pet_id) => {
                        act.send(ctx, &ServerMsg::Pet { pet: view })
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => act.pet_error(e, ctx),
                    Err(_) => act.not_live(pet_id, ctx, true),
                }),
        );
    }

    fn give_treat(&mut self, pet_id: PetId, ctx: &mut ws::WebsocketContext<Self>) {
        let user = self.user;
        let state = self.state.clone();
        ctx.spawn(
            async move { give_treat(&state, user, pet_id).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    if let Err((code, message)) = res {
                        act.error(ctx, code, message);
                    }
                }),
        );
    }

    /// The pet is not alive in this process: say why, from the database.
    fn not_live(&mut self, pet_id: PetId, ctx: &mut ws::WebsocketContext<Self>, acting: bool) {
        let pool = self.state.pool.clone();
        let user = self.user;
        ctx.spawn(
            web::block(move || -> anyhow::Result<_> {
                let mut conn = pool.get()?;
                Ok(queries::find_pet(&mut conn, pet_id)?)
            })
            .into_actor(self)
            .map(move |res, act, ctx| match res {
                Ok(Ok(Some(row))) if row.user_id != user.0 => {
                    act.pet_error(PetError::NotOwner, ctx)
                }
                Ok(Ok(Some(_))) if acting => act.pet_error(PetError::Dead, ctx),
                Ok(Ok(Some(row))) => match crate::api::stored_view(&row) {
                    Some(view) => act.send(ctx, &ServerMsg::Pet { pet: view }),
                    None => act.error(ctx, ErrorCode::Internal, "this pet's record is damaged"),
                },
                Ok(Ok(None)) => act.error(ctx, ErrorCode::NotFound, "there is no such pet"),
                Ok(Err(e)) => {
                    log::warn!("looking up pet {pet_id}: {e:#}");
                    act.error(
                        ctx,
                        ErrorCode::ServiceUnavailable,
                        "the database is unavailable",
                    )
                }
                Err(e) => act.error(ctx, ErrorCode::Internal, e.to_string()),
            }),
        );
    }

    fn pet_error(&self, e: PetError, ctx: &mut ws::WebsocketContext<Self>) {
        let code = match e {
            PetError::NotOwner => ErrorCode::Forbidden,
            PetError::Dead => ErrorCode::PetDead,
            PetError::OwnPet => ErrorCode::OwnPet,
        };
        self.error(ctx, code, e.to_string());
    }

    fn subscribe_stats(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if !self.state.dashboard {
            return self.error(ctx, ErrorCode::Forbidden, "the dashboard is turned off");
        }
        if self.stats.is_some() {
            return;
        }
        let mut last = (Instant::now(), self.metrics().ticks_total.get());
        let handle = ctx.run_interval(STATS_EVERY, move |act, ctx| {
            let now = Instant::now();
            let ticks = act.metrics().ticks_total.get();
            let rate = (ticks - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, ticks);
            let stats = act.state.stats(rate);
            act.send(ctx, &ServerMsg::Stats(stats));
        });
        self.stats = Some(handle);
    }
}

/// Spends a treat on someone else's active pet: checks, pays in the database first, then
/// feeds the pet and tells every session of the giver the new count.
async fn give_treat(
    state: &web::Data<AppState>,
    user: UserId,
    pet_id: PetId,
) -> Result<(), (ErrorCode, String)> {
    let owner = state
        .presence
        .send(ActiveOwner { pet: pet_id })
        .await
        .map_err(|_| (ErrorCode::Internal, "presence is unavailable".to_string()))?;
    match owner {
        None => {
            return Err((
                ErrorCode::NotActive,
                "that pet is not on anyone's screen".into(),
            ))
        }
        Some(o) if o == user => {
            return Err((
                ErrorCode::OwnPet,
                "treats are for other people's pets".into(),
            ))
        }
        Some(_) => {}
    }
    let pool = state.pool.clone();
    let spent = web::block(move || -> anyhow::Result<Option<i32>> {
        let mut conn = pool.get()?;
        Ok(queries::spend_treat(&mut conn, user.0)?)
    })
    .await
    .map_err(|e| (ErrorCode::Internal, e.to_string()))?
    .map_err(|e| {
        log::warn!("spending a treat: {e:#}");
        (
            ErrorCode::ServiceUnavailable,
            "the database is unavailable".to_string(),
        )
    })?;
    let Some(left) = spent else {
        return Err((ErrorCode::NoTreats, "you have no treats left".into()));
    };
    let fed = match state.world.registry.get(pet_id) {
        Some(pet) => matches!(pet.send(Treat { by: user }).await, Ok(Ok(_))),
        None => false,
    };
    let mut available = left.max(0) as u32;
    if !fed {
        // The pet died after we paid: give the treat back.
        let pool = state.pool.clone();
        let max = state.world.rules.max_treats;
        if let Ok(Ok(Some(n))) = web::block(move || -> anyhow::Result<Option<i32>> {
            let mut conn = pool.get()?;
            Ok(queries::refund_treat(&mut conn, user.0, max)?)
        })
        .await
        {
            available = n.max(0) as u32;
        }
        state.presence.do_send(TreatsChanged { user, available });
        return Err((
            ErrorCode::NotActive,
            "that pet is gone; your treat was returned".into(),
        ));
    }
    state.presence.do_send(TreatsChanged { user, available });
    Ok(())
}

impl Actor for ViewerSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounded on purpose: pets and Presence use try_send, so a client that stops reading
        // (its session is then no longer polled) costs at most this many queued frames.
        ctx.set_mailbox_capacity(SESSION_MAILBOX);
        self.metrics().ws_connections.inc();
        ctx.run_interval(HEARTBEAT, |act, ctx| {
            if act.last_seen.elapsed() > CLIENT_TIMEOUT {
                log::info!("session {} timed out", act.id);
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
        let connect = Connect {
            viewer: self.id,
            user: self.user,
            to: ctx.address().recipient(),
        };
        let presence = self.state.presence.clone();
        let pool = self.state.pool.clone();
        let user = self.user;
        // The list first, then the treats: both before anything else is handled.
        ctx.wait(
            async move {
                let pets = presence.send(connect).await.unwrap_or_default();
                let treats = web::block(move || -> anyhow::Result<Option<i32>> {
                    let mut conn = pool.get()?;
                    Ok(queries::find_user(&mut conn, user.0)?.map(|u| u.available_treats))
                })
                .await;
                (pets, treats)
            }
            .into_actor(self)
            .map(|(pets, treats), act, ctx| {
                act.send(ctx, &ServerMsg::ActivePets { pets });
                match treats {
                    Ok(Ok(Some(n))) => act.send(
                        ctx,
                        &ServerMsg::Treats {
                            available: n.max(0) as u32,
                        },
                    ),
                    _ => act.error(
                        ctx,
                        ErrorCode::ServiceUnavailable,
                        "could not read your treats",
                    ),
                }
            }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.metrics().ws_connections.dec();
        for (_, pet) in self.watching.drain() {
            pet.do_send(Unwatch { viewer: self.id });
        }
        self.state.presence.do_send(Disconnect { viewer: self.id });
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for ViewerSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_seen = Instant::now();
        let msg = match item {
            Ok(m) => m,
            Err(ws::ProtocolError::Overflow) => {
                self.error(
                    ctx,
                    ErrorCode::PayloadTooLarge,
                    format!("frames are limited to {MAX_FRAME} bytes"),
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
                self.metrics().ws_frames_in_total.inc();
                if self.admit(ctx) {
                    self.handle_text(&text, ctx);
                }
            }
            ws::Message::Binary(_) | ws::Message::Continuation(_) => {
                self.metrics().ws_frames_in_total.inc();
                if self.admit(ctx) {
                    self.error(ctx, ErrorCode::BinaryNotSupported, "send JSON text frames");
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

    fn handle(&mut self, frame: PetFrame, ctx: &mut Self::Context) {
        ctx.text(&*frame.json);
        if !frame.alive && self.watching.remove(&frame.pet_id).is_some() {
            self.state.presence.do_send(Leave {
                viewer: self.id,
                pet: frame.pet_id,
            });
        }
    }
}

impl Handler<Push> for ViewerSession {
    type Result = ();

    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) {
        match msg {
            Push::Frame(json) => ctx.text(&*json),
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

impl AppState {
    /// World-wide aggregates for the dashboard.
    pub fn stats(&self, ticks_per_second: f64) -> Stats {
        let m = &self.world.metrics;
        Stats {
            pets_alive: m.pets_alive.get().max(0) as u64,
            ticks_per_second,
            viewers: m.viewers.get().max(0) as u64,
            active_pets: m.active_pets.get().max(0) as u64,
            connections: m.ws_connections.get().max(0) as u64,
            last_flush_rows: m.persist_rows.get().max(0) as u64,
            last_flush_seconds: m.persist_seconds.get(),
            persist_lag_seconds: m.persist_lag(),
            resident_memory_bytes: Metrics::resident_memory_bytes(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}
