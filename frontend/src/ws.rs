//! The tab's one WebSocket to `/ws`, and the only code that opens or closes it: the socket
//! follows the session ([`WsClient::follow_session`]), so pages only read its signals and
//! send frames. It reconnects with exponential backoff after a drop, re-sends its `watch`
//! and `subscribe_stats` on every new connection (so a server restart heals the tab by
//! itself), pings every 15 s, and hands pages what arrives as signals: connection status,
//! the last pet state, the active list, the treat count, the stats history and errors (as
//! toasts). A socket the server closes with [`CLOSE_SESSION_ENDED`] is never reopened: the
//! session is over, and the tab logs out.

use crate::auth::Auth;
use crate::toasts::Toasts;
use futures::channel::{mpsc, oneshot};
use futures::{FutureExt as _, Sink as _, SinkExt as _, StreamExt as _};
use gloo_net::websocket::{futures::WebSocket, Message, State, WebSocketError};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use livepet_shared::wire::{
    ActivePet, ClientMsg, ErrorCode, PetView, ServerMsg, Stats, CLOSE_SESSION_ENDED,
};
use livepet_shared::{PetId, UserId};
use std::collections::{BTreeSet, VecDeque};
use std::pin::Pin;

/// App-level keep-alive: the server drops a client it has not heard from in 30 s.
const PING_MS: u32 = 15_000;
/// No frame at all (not even a pong) for this long means the connection is dead.
const SILENT_MS: f64 = 40_000.0;
/// A handshake that takes longer than this is given up and retried.
const HANDSHAKE_MS: u32 = 10_000;
/// Reconnect delays: the first retry after this, doubling up to the cap.
const BACKOFF_FIRST_MS: u32 = 250;
const BACKOFF_MAX_MS: u32 = 8_000;
/// After this many failed attempts in a row, ask `/api/me` whether the session still exists
/// (a refused upgrade gives the browser no status code to read).
const CHECK_SESSION_AFTER: u32 = 3;
/// Seconds of dashboard figures kept for the sparklines.
pub const STATS_HISTORY: usize = 60;

/// The state of the tab's connection, as the indicator shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnStatus {
    /// Nobody is logged in, so there is no socket.
    Offline,
    /// The first attempt after logging in.
    Connecting,
    Connected,
    /// The connection dropped (or never came up) and the next attempt is scheduled.
    Reconnecting,
}

impl ConnStatus {
    /// The indicator's text (also what the browser tests read).
    pub fn as_str(self) -> &'static str {
        match self {
            ConnStatus::Offline => "offline",
            ConnStatus::Connecting => "connecting",
            ConnStatus::Connected => "connected",
            ConnStatus::Reconnecting => "reconnecting",
        }
    }
}

/// Delay before reconnect attempt number `failures` (1, 2, …): exponential, capped, with up
/// to 25 % jitter (`jitter` in 0..1) so a restarted server is not hit by every tab at once.
pub fn backoff_ms(failures: u32, jitter: f64) -> u32 {
    let exp = failures.saturating_sub(1).min(16);
    let base = BACKOFF_FIRST_MS
        .saturating_mul(1 << exp)
        .min(BACKOFF_MAX_MS);
    base + (f64::from(base) * 0.25 * jitter.clamp(0.0, 1.0)) as u32
}

/// Applies an `active_pets_changed` frame. Idempotent: a joined pet that is already listed is
/// updated in place, a left id that is unknown is ignored.
pub fn apply_active_changes(list: &mut Vec<ActivePet>, joined: Vec<ActivePet>, left: &[PetId]) {
    list.retain(|p| !left.contains(&p.id));
    for pet in joined {
        match list.iter_mut().find(|p| p.id == pet.id) {
            Some(existing) => *existing = pet,
            None => list.push(pet),
        }
    }
}

/// The socket's handle and signals, shared through context. `Copy`: every field is an arena
/// handle.
#[derive(Debug, Clone, Copy)]
pub struct WsClient {
    pub status: RwSignal<ConnStatus>,
    /// The latest `pet` frame (pages check its id).
    pub last_pet: RwSignal<Option<PetView>>,
    /// Pets on someone's screen right now (including the user's own: pages filter them).
    pub active: RwSignal<Vec<ActivePet>>,
    /// The user's treats, once the server has said.
    pub treats: RwSignal<Option<u32>>,
    /// The last [`STATS_HISTORY`] `stats` frames, oldest first.
    pub stats: RwSignal<VecDeque<Stats>>,
    /// Set when the session ended without this tab asking: the server closed the socket
    /// with [`CLOSE_SESSION_ENDED`] (logout in another tab, a password change, expiry…), or
    /// reconnecting failed because the server no longer knows the session. The app then
    /// logs the tab out and goes to the login page (`app::SessionEnded`).
    pub session_ended: RwSignal<bool>,
    /// Which connection is current. Bumped whenever a socket is stopped, so a stopped
    /// connection's task, which may still be waking up (a frame already received, a session
    /// check in flight), can never write a new session's signals.
    generation: StoredValue<u64>,
    /// This tab itself is ending the session (log out, log out everywhere, delete account):
    /// the socket's close is expected and says nothing; the action shows its own message.
    ending: StoredValue<bool>,
    /// The name of the pet the last treat went to, until the server confirms it with the
    /// new treat count (or refuses it).
    treat_for: StoredValue<Option<String>>,
    /// Pets this tab watches; sent again on every new connection.
    watching: StoredValue<BTreeSet<PetId>>,
    wants_stats: StoredValue<bool>,
    outbox: StoredValue<Option<mpsc::UnboundedSender<ClientMsg>>>,
    stop: StoredValue<Option<oneshot::Sender<()>>>,
    toasts: Toasts,
}

impl WsClient {
    pub fn new(toasts: Toasts) -> Self {
        WsClient {
            status: RwSignal::new(ConnStatus::Offline),
            last_pet: RwSignal::new(None),
            active: RwSignal::new(Vec::new()),
            treats: RwSignal::new(None),
            stats: RwSignal::new(VecDeque::new()),
            session_ended: RwSignal::new(false),
            generation: StoredValue::new(0),
            ending: StoredValue::new(false),
            treat_for: StoredValue::new(None),
            watching: StoredValue::new(BTreeSet::new()),
            wants_stats: StoredValue::new(false),
            outbox: StoredValue::new(None),
            stop: StoredValue::new(None),
            toasts,
        }
    }

    /// Ties the socket's lifetime to the session, once, from the app's root: open while
    /// someone is logged in, replaced by a new one for every new session (another user, or
    /// the same user logging in again), closed (its signals emptied) when nobody is.
    /// Logging in and out only changes [`Auth`]; this is what follows. (A session that ends
    /// under the tab sets [`WsClient::session_ended`]; the app logs the tab out.)
    pub fn follow_session(&self, auth: Auth) {
        let this = *self;
        // The session, not the whole user: a changed treat count is the same session.
        let session = Memo::new(move |_| {
            (
                auth.sessions.get(),
                auth.user.with(|u| u.as_ref().map(|u| u.id)),
            )
        });
        Effect::new(move |was: Option<(u32, Option<UserId>)>| {
            let now = session.get();
            // Someone else or nobody now: the last session's socket, watches and treat
            // count go first, so they are never inherited.
            if was.is_some_and(|(_, user)| user.is_some()) {
                this.disconnect();
            }
            if now.1.is_some() {
                this.connect();
            }
            now
        });
    }

    /// Says that this tab is about to end its own session (`true`), or that it failed to
    /// (`false`): meanwhile the server closing the socket is no news.
    pub fn expect_end(&self, yes: bool) {
        self.ending.set_value(yes);
    }

    /// Whether `generation` is still the current connection.
    fn is_current(&self, generation: u64) -> bool {
        self.generation.try_get_value() == Some(generation)
    }

    /// The session of connection `generation` is over: no more reconnecting.
    fn session_over(&self, generation: u64) {
        if !self.is_current(generation) {
            return;
        }
        self.status.set(ConnStatus::Offline);
        if !self.ending.get_value() {
            self.session_ended.set(true);
        }
    }

    /// Opens a socket for the current session, replacing any socket still open: a socket
    /// belongs to the session it was opened with.
    fn connect(&self) {
        self.stop_socket();
        let (tx, rx) = mpsc::unbounded();
        let (stop_tx, stop_rx) = oneshot::channel();
        self.outbox.set_value(Some(tx));
        self.stop.set_value(Some(stop_tx));
        self.session_ended.set(false);
        self.ending.set_value(false);
        self.status.set(ConnStatus::Connecting);
        let generation = self.generation.get_value();
        leptos::task::spawn_local(run(*self, generation, rx, stop_rx));
    }

    /// Stops the current connection's task, if any; its late wake-ups change nothing.
    fn stop_socket(&self) {
        self.generation.try_update_value(|g| *g += 1);
        if let Some(stop) = self.stop.try_update_value(Option::take).flatten() {
            let _ = stop.send(());
        }
        self.outbox.try_set_value(None);
    }

    /// Closes the socket and forgets everything it brought (logging out).
    fn disconnect(&self) {
        self.stop_socket();
        self.watching.try_update_value(BTreeSet::clear);
        self.wants_stats.try_set_value(false);
        self.treat_for.try_set_value(None);
        self.status.try_set(ConnStatus::Offline);
        self.last_pet.try_set(None);
        self.active.try_set(Vec::new());
        self.treats.try_set(None);
        self.stats.try_set(VecDeque::new());
    }

    /// Queues a frame. Frames queued while disconnected are dropped on reconnect: what must
    /// survive (watches, the stats subscription) is re-sent from state instead.
    pub fn send(&self, msg: ClientMsg) {
        self.outbox.with_value(|tx| {
            if let Some(tx) = tx {
                let _ = tx.unbounded_send(msg);
            }
        });
    }

    /// Starts watching one of the user's pets (puts it in everyone's active list).
    pub fn watch(&self, pet_id: PetId) {
        if self
            .watching
            .try_update_value(|w| w.insert(pet_id))
            .unwrap_or(false)
        {
            self.send(ClientMsg::Watch { pet_id });
        }
    }

    /// Stops watching a pet.
    pub fn unwatch(&self, pet_id: PetId) {
        if self
            .watching
            .try_update_value(|w| w.remove(&pet_id))
            .unwrap_or(false)
        {
            self.send(ClientMsg::Unwatch { pet_id });
        }
    }

    pub fn feed(&self, pet_id: PetId) {
        self.send(ClientMsg::Feed { pet_id });
    }

    /// Gives a treat; the server's new treat count confirms it with a message naming the pet.
    pub fn give_treat(&self, pet_id: PetId) {
        let name = self
            .active
            .with_untracked(|list| list.iter().find(|p| p.id == pet_id).map(|p| p.name.clone()));
        self.treat_for.set_value(name);
        self.send(ClientMsg::GiveTreat { pet_id });
    }

    /// Asks for `stats` frames (the dashboard); kept across reconnects.
    pub fn subscribe_stats(&self) {
        if !self.wants_stats.get_value() {
            self.wants_stats.set_value(true);
            self.send(ClientMsg::SubscribeStats);
        }
    }

    /// The frames a fresh connection needs to restore this tab's state.
    fn resume_frames(&self) -> Vec<ClientMsg> {
        let mut frames: Vec<ClientMsg> = self
            .watching
            .get_value()
            .into_iter()
            .map(|pet_id| ClientMsg::Watch { pet_id })
            .collect();
        if self.wants_stats.get_value() {
            frames.push(ClientMsg::SubscribeStats);
        }
        frames
    }

    /// Applies one frame from the server to the signals.
    pub fn handle(&self, msg: ServerMsg) {
        match msg {
            ServerMsg::Pet { pet } => {
                if !pet.alive {
                    // The server forgets a dead pet's watchers; so do we (no re-watch).
                    self.watching.update_value(|w| {
                        w.remove(&pet.id);
                    });
                }
                self.last_pet.set(Some(pet));
            }
            ServerMsg::ActivePets { pets } => self.active.set(pets),
            ServerMsg::ActivePetsChanged { joined, left } => self
                .active
                .update(|list| apply_active_changes(list, joined, &left)),
            ServerMsg::Treats { available } => {
                if let Some(name) = self.treat_for.try_update_value(Option::take).flatten() {
                    self.toasts.info(format!("{name} got your treat!"));
                }
                self.treats.set(Some(available));
            }
            ServerMsg::Pong => {}
            ServerMsg::Error { code, message } => {
                self.treat_for.try_set_value(None);
                self.toasts.error(error_text(code, &message));
            }
            ServerMsg::Stats(stats) => self.stats.update(|h| {
                h.push_back(stats);
                while h.len() > STATS_HISTORY {
                    h.pop_front();
                }
            }),
        }
    }
}

/// The sentence a toast shows for an `error` frame.
pub fn error_text(code: ErrorCode, message: &str) -> String {
    match code {
        ErrorCode::NoTreats => "You have no treats left. They refill every 30 minutes.".into(),
        ErrorCode::NotActive => "That pet has just left.".into(),
        ErrorCode::PetDead => "That pet has died.".into(),
        ErrorCode::RateLimited => "Slow down a little: too many clicks at once.".into(),
        _ => crate::api::capitalize(message),
    }
}

fn ws_url() -> String {
    let location = window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    format!("{scheme}://{host}/ws")
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// How a connection attempt or a connection ended.
enum End {
    /// `disconnect()` was called, or the client is gone.
    Stopped,
    /// The network or the server ended it; try again.
    Dropped,
    /// The server closed it because the session ended: never try again.
    SessionEnded,
}

type Stop = futures::future::Fuse<oneshot::Receiver<()>>;

/// The connection loop of connection `generation`: runs until `disconnect()` or the end of
/// the session.
async fn run(
    client: WsClient,
    generation: u64,
    mut outbox: mpsc::UnboundedReceiver<ClientMsg>,
    stop: oneshot::Receiver<()>,
) {
    let mut stop = stop.fuse();
    let mut failures: u32 = 0;
    loop {
        let end = match open(&mut stop).await {
            Ok(ws) => {
                if !client.is_current(generation) {
                    return;
                }
                client.status.set(ConnStatus::Connected);
                failures = 0;
                pump(client, ws, &mut outbox, &mut stop).await
            }
            Err(end) => end,
        };
        match end {
            End::Stopped => return,
            End::SessionEnded => return client.session_over(generation),
            End::Dropped => {
                failures += 1;
                if failures >= CHECK_SESSION_AFTER {
                    if let Ok(None) = crate::api::me().await {
                        return client.session_over(generation);
                    }
                }
            }
        }
        if !client.is_current(generation)
            || client.status.try_set(ConnStatus::Reconnecting).is_some()
        {
            return; // replaced, or the app is gone
        }
        let delay = backoff_ms(failures, js_sys::Math::random());
        futures::select_biased! {
            _ = stop => return,
            _ = TimeoutFuture::new(delay).fuse() => {}
        }
    }
}

/// Opens a socket and waits for the handshake.
async fn open(mut stop: &mut Stop) -> Result<WebSocket, End> {
    let mut ws = WebSocket::open(&ws_url()).map_err(|_| End::Dropped)?;
    {
        // Resolves once the socket is open or has failed (it is no longer CONNECTING).
        let ready = futures::future::poll_fn(|cx| Pin::new(&mut ws).poll_ready(cx)).fuse();
        futures::pin_mut!(ready);
        futures::select_biased! {
            _ = stop => return Err(End::Stopped),
            _ = ready => {}
            _ = TimeoutFuture::new(HANDSHAKE_MS).fuse() => return Err(End::Dropped),
        }
    }
    if matches!(ws.state(), State::Open) {
        Ok(ws)
    } else {
        Err(End::Dropped)
    }
}

/// Moves frames both ways until the connection ends. `stop` is polled first, so a stopped
/// connection handles no frame that was already waiting.
async fn pump(
    client: WsClient,
    ws: WebSocket,
    outbox: &mut mpsc::UnboundedReceiver<ClientMsg>,
    mut stop: &mut Stop,
) -> End {
    // Whatever was queued while offline is stale; the state-based frames replace it.
    while outbox.try_recv().is_ok() {}
    let (mut tx, rx) = ws.split();
    let mut rx = rx.fuse();
    for frame in client.resume_frames() {
        if send(&mut tx, &frame).await.is_err() {
            return End::Dropped;
        }
    }
    let mut last_heard = now_ms();
    let mut ping = TimeoutFuture::new(PING_MS).fuse();
    loop {
        futures::select_biased! {
            _ = stop => return End::Stopped,
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    last_heard = now_ms();
                    match crate::frames::decode(&text) {
                        Ok(msg) => client.handle(msg),
                        Err(e) => leptos::logging::warn!("unreadable frame from the server: {e}"),
                    }
                }
                Some(Ok(Message::Bytes(_))) => last_heard = now_ms(),
                Some(Err(WebSocketError::ConnectionClose(e))) if e.code == CLOSE_SESSION_ENDED => {
                    return End::SessionEnded;
                }
                Some(Err(_)) | None => return End::Dropped,
            },
            outgoing = outbox.next() => match outgoing {
                Some(frame) => {
                    if send(&mut tx, &frame).await.is_err() {
                        return End::Dropped;
                    }
                }
                None => return End::Stopped,
            },
            _ = ping => {
                if now_ms() - last_heard > SILENT_MS {
                    return End::Dropped;
                }
                if send(&mut tx, &ClientMsg::Ping).await.is_err() {
                    return End::Dropped;
                }
                ping = TimeoutFuture::new(PING_MS).fuse();
            },
        }
    }
}

async fn send(
    tx: &mut futures::stream::SplitSink<WebSocket, Message>,
    frame: &ClientMsg,
) -> Result<(), ()> {
    let json = serde_json::to_string(frame).map_err(|_| ())?;
    tx.send(Message::Text(json)).await.map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use livepet_shared::Species;

    fn pet(id: i64, name: &str) -> ActivePet {
        ActivePet {
            id: PetId(id),
            name: name.into(),
            species: Species::Cat,
            owner_id: UserId(7),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        assert_eq!(backoff_ms(1, 0.0), 250);
        assert_eq!(backoff_ms(2, 0.0), 500);
        assert_eq!(backoff_ms(3, 0.0), 1_000);
        assert_eq!(backoff_ms(10, 0.0), 8_000);
        assert_eq!(backoff_ms(u32::MAX, 0.0), 8_000);
        assert_eq!(backoff_ms(1, 1.0), 312);
        assert_eq!(backoff_ms(10, 1.0), 10_000);
    }

    #[test]
    fn active_changes_apply_idempotently() {
        let mut list = vec![pet(1, "Ada"), pet(2, "Bo")];
        apply_active_changes(&mut list, vec![pet(3, "Cy")], &[PetId(1)]);
        assert_eq!(list, vec![pet(2, "Bo"), pet(3, "Cy")]);
        // A joined pet already present, a left pet never seen.
        apply_active_changes(&mut list, vec![pet(3, "Cy2")], &[PetId(99)]);
        assert_eq!(list, vec![pet(2, "Bo"), pet(3, "Cy2")]);
        // Left and joined in the same frame: the join wins.
        apply_active_changes(&mut list, vec![pet(2, "Bo")], &[PetId(2)]);
        assert_eq!(list, vec![pet(3, "Cy2"), pet(2, "Bo")]);
    }

    #[test]
    fn status_texts_match_what_the_tests_read() {
        assert_eq!(ConnStatus::Connected.as_str(), "connected");
        assert_eq!(ConnStatus::Reconnecting.as_str(), "reconnecting");
    }
}
