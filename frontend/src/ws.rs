//! The tab's one WebSocket to `/ws`, and the only code that opens or closes it: the socket
//! follows the session ([`WsClient::follow_session`]), so pages only read its signals and
//! send frames. It reconnects with exponential backoff after a drop, re-sends its `watch`,
//! `subscribe_stats` and `active_pets_page` on every new connection (so a server restart
//! heals the tab by itself), pings every 15 s, and hands pages what arrives as signals:
//! connection status, the last pet state, the page of the active list, the treat count, the
//! stats history and errors (as toasts). A socket the server closes with
//! [`CLOSE_SESSION_ENDED`] is never reopened: the session is over, and the tab logs out.

use crate::auth::Auth;
use crate::toasts::Toasts;
use futures::channel::{mpsc, oneshot};
use futures::{FutureExt as _, Sink as _, SinkExt as _, StreamExt as _};
use gloo_net::websocket::{futures::WebSocket, Message, State, WebSocketError};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use livepet_shared::wire::{
    ActivePet, ClientMsg, ErrorCode, PetView, ServerMsg, Stats, ACTIVE_PAGE_DEFAULT,
    CLOSE_SESSION_ENDED,
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
/// The WebSocket close code "going away": the server is shutting down (a restart or a
/// deploy), and every tab it served heard the same close at the same moment.
const CLOSE_GOING_AWAY: u16 = 1001;
/// After a "going away" close, the first attempt comes at a random moment in this window.
const RESTART_SPREAD_MS: u32 = 3_000;
/// How many pets a page of the active list shows.
pub const ACTIVE_PAGE: u32 = ACTIVE_PAGE_DEFAULT;
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

/// Delay before reconnect attempt number `failures` (1, 2, …): exponential and capped, drawn
/// uniformly from half to one and a half times that base (`random` in 0..1). That wide on
/// purpose: tabs that lost the server at the same moment retry in step unless their delays
/// differ by about as much as the delay itself. With up to 25 % on top of the base (what
/// this once was), every tab's first retry came within the same ~60 ms.
pub fn backoff_ms(failures: u32, random: f64) -> u32 {
    let exp = failures.saturating_sub(1).min(16);
    let base = BACKOFF_FIRST_MS
        .saturating_mul(1 << exp)
        .min(BACKOFF_MAX_MS);
    base / 2 + (f64::from(base) * random.clamp(0.0, 1.0)) as u32
}

/// Delay before the next attempt, after `failures` failures in a row; `going_away` when the
/// last connection ended with a "going away" close. Such a close reaches every tab of the
/// server in the same instant, and the server is probably back within seconds: the first
/// attempt is spread over [`RESTART_SPREAD_MS`] so the new process is not greeted by every
/// tab at once, and the attempts after it (which fail with an ordinary drop) back off as usual.
pub fn reconnect_delay_ms(failures: u32, going_away: bool, random: f64) -> u32 {
    if going_away {
        (f64::from(RESTART_SPREAD_MS) * random.clamp(0.0, 1.0)) as u32
    } else {
        backoff_ms(failures, random)
    }
}

/// The offset of the page before the one at `offset`, or `None` on the first page.
pub fn prev_page(offset: u32) -> Option<u32> {
    (offset > 0).then(|| offset.saturating_sub(ACTIVE_PAGE))
}

/// The offset of the page after the one at `offset`, or `None` when no pet is beyond it.
pub fn next_page(offset: u32, total: u64) -> Option<u32> {
    let next = offset.checked_add(ACTIVE_PAGE)?;
    (u64::from(next) < total).then_some(next)
}

/// Where to go when the page at `offset` is past the end of a list of `total` pets (pets left
/// while it was shown, so it is empty): the last page; `None` while the page is in the list.
pub fn page_past_the_end(offset: u32, total: u64) -> Option<u32> {
    if offset == 0 || u64::from(offset) < total {
        return None;
    }
    let last = total.saturating_sub(1) / u64::from(ACTIVE_PAGE) * u64::from(ACTIVE_PAGE);
    // `last` is below `offset`, a u32.
    Some(last as u32)
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

/// The session's page of the active list, as the server last showed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivePage {
    /// Where the page starts in the whole list (sorted by name).
    pub offset: u32,
    /// How many pets are active in all, on every page, the user's own included.
    pub total: u64,
    /// The page's pets, in no particular order (the user's own included: pages filter them).
    pub pets: Vec<ActivePet>,
}

/// The socket's handle and signals, shared through context. `Copy`: every field is an arena
/// handle.
#[derive(Debug, Clone, Copy)]
pub struct WsClient {
    pub status: RwSignal<ConnStatus>,
    /// The latest `pet` frame (pages check its id).
    pub last_pet: RwSignal<Option<PetView>>,
    /// This tab's page of the pets on someone's screen right now, and how many they are.
    pub active: RwSignal<ActivePage>,
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
    /// The offset of the active list's page this tab last asked for; sent again on every
    /// new connection unless 0, where a new session starts by itself.
    wants_page: StoredValue<u32>,
    outbox: StoredValue<Option<mpsc::UnboundedSender<ClientMsg>>>,
    stop: StoredValue<Option<oneshot::Sender<()>>>,
    toasts: Toasts,
}

impl WsClient {
    pub fn new(toasts: Toasts) -> Self {
        WsClient {
            status: RwSignal::new(ConnStatus::Offline),
            last_pet: RwSignal::new(None),
            active: RwSignal::new(ActivePage::default()),
            treats: RwSignal::new(None),
            stats: RwSignal::new(VecDeque::new()),
            session_ended: RwSignal::new(false),
            generation: StoredValue::new(0),
            ending: StoredValue::new(false),
            treat_for: StoredValue::new(None),
            watching: StoredValue::new(BTreeSet::new()),
            wants_stats: StoredValue::new(false),
            wants_page: StoredValue::new(0),
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
        self.wants_page.try_set_value(0);
        self.treat_for.try_set_value(None);
        self.status.try_set(ConnStatus::Offline);
        self.last_pet.try_set(None);
        self.active.try_set(ActivePage::default());
        self.treats.try_set(None);
        self.stats.try_set(VecDeque::new());
    }

    /// Queues a frame. Frames queued while disconnected are dropped on reconnect: what must
    /// survive (watches, the stats subscription, the page of the active list) is re-sent
    /// from state instead.
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
        let name = self.active.with_untracked(|page| {
            page.pets
                .iter()
                .find(|p| p.id == pet_id)
                .map(|p| p.name.clone())
        });
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

    /// Shows the page of the active list that starts at `offset` ([`ACTIVE_PAGE`] pets);
    /// kept across reconnects. The server answers with the page.
    pub fn show_active_page(&self, offset: u32) {
        self.wants_page.set_value(offset);
        self.send(ClientMsg::ActivePetsPage {
            offset,
            limit: ACTIVE_PAGE,
        });
    }

    /// Pets left while the last page was shown, and none is on it any more: shows the last
    /// page that has some, rather than an empty page saying nobody is around. Asked once:
    /// frames for the old page may still come before the answer.
    fn step_back_if_past_the_end(&self) {
        let (offset, total) = self.active.with_untracked(|p| (p.offset, p.total));
        if let Some(offset) = page_past_the_end(offset, total) {
            if self.wants_page.get_value() != offset {
                self.show_active_page(offset);
            }
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
        let offset = self.wants_page.get_value();
        if offset != 0 {
            frames.push(ClientMsg::ActivePetsPage {
                offset,
                limit: ACTIVE_PAGE,
            });
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
            ServerMsg::ActivePets {
                offset,
                total,
                pets,
            } => {
                self.active.set(ActivePage {
                    offset,
                    total,
                    pets,
                });
                self.step_back_if_past_the_end();
            }
            ServerMsg::ActivePetsChanged {
                joined,
                left,
                total,
            } => {
                self.active.update(|page| {
                    apply_active_changes(&mut page.pets, joined, &left);
                    page.total = total;
                });
                self.step_back_if_past_the_end();
            }
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
    /// The server closed it with "going away": it is shutting down, probably to restart.
    GoingAway,
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
        let going_away = matches!(end, End::GoingAway);
        match end {
            End::Stopped => return,
            End::SessionEnded => return client.session_over(generation),
            End::Dropped | End::GoingAway => {
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
        let delay = reconnect_delay_ms(failures, going_away, js_sys::Math::random());
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
                Some(Err(WebSocketError::ConnectionClose(e))) if e.code == CLOSE_GOING_AWAY => {
                    return End::GoingAway;
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
    fn backoff_doubles_up_to_the_cap_spread_over_half_to_one_and_a_half() {
        // The middle of the spread is the base: 250 ms, doubling, capped at 8 s.
        assert_eq!(backoff_ms(1, 0.5), 250);
        assert_eq!(backoff_ms(2, 0.5), 500);
        assert_eq!(backoff_ms(3, 0.5), 1_000);
        assert_eq!(backoff_ms(10, 0.5), 8_000);
        assert_eq!(backoff_ms(u32::MAX, 0.5), 8_000);
        // The ends: half the base and one and a half times it.
        assert_eq!(backoff_ms(1, 0.0), 125);
        assert_eq!(backoff_ms(1, 1.0), 375);
        assert_eq!(backoff_ms(10, 0.0), 4_000);
        assert_eq!(backoff_ms(10, 1.0), 12_000);
        // Whatever the random source says, the delay stays in that window.
        assert_eq!(backoff_ms(10, -3.0), 4_000);
        assert_eq!(backoff_ms(10, f64::NAN), 4_000);
    }

    #[test]
    fn tabs_that_lost_the_server_together_come_back_spread_out() {
        // 1,000 tabs, evenly spread random numbers: the first retries of an ordinary drop
        // cover 125..375 ms, a whole base wide, not a few tens of milliseconds.
        let delays: Vec<u32> = (0..1_000)
            .map(|i| reconnect_delay_ms(1, false, f64::from(i) / 1_000.0))
            .collect();
        assert_eq!(delays.iter().min(), Some(&125));
        assert!(delays.iter().max().is_some_and(|&d| d >= 374));
        // A "going away" close (the server restarting): the first attempt anywhere in 0..3 s,
        // so about a third of the tabs fall in each second.
        let delays: Vec<u32> = (0..1_000)
            .map(|i| reconnect_delay_ms(1, true, f64::from(i) / 1_000.0))
            .collect();
        assert_eq!(delays.iter().min(), Some(&0));
        assert!(delays
            .iter()
            .max()
            .is_some_and(|&d| (2_990..3_000).contains(&d)));
        let first_second = delays.iter().filter(|&&d| d < 1_000).count();
        assert_eq!(first_second, 334);
        assert_eq!(reconnect_delay_ms(1, true, 1.0), 3_000);
        // The attempts after it back off as after any drop.
        assert_eq!(reconnect_delay_ms(2, false, 0.5), 500);
    }

    #[test]
    fn pages_step_by_fifty_and_stop_at_the_ends() {
        assert_eq!(ACTIVE_PAGE, 50);
        assert_eq!(prev_page(0), None);
        assert_eq!(prev_page(50), Some(0));
        assert_eq!(prev_page(100), Some(50));
        // An offset off the grid (another tab's old page) still steps back to 0, not below.
        assert_eq!(prev_page(30), Some(0));
        assert_eq!(next_page(0, 0), None);
        assert_eq!(next_page(0, 50), None);
        assert_eq!(next_page(0, 51), Some(50));
        assert_eq!(next_page(50, 1_234), Some(100));
        assert_eq!(next_page(1_200, 1_234), None);
        assert_eq!(next_page(u32::MAX - 10, u64::MAX), None);
    }

    #[test]
    fn a_page_past_the_end_goes_to_the_last_page() {
        assert_eq!(
            page_past_the_end(0, 0),
            None,
            "the first page is always there"
        );
        assert_eq!(page_past_the_end(50, 51), None);
        assert_eq!(page_past_the_end(50, 50), Some(0));
        assert_eq!(page_past_the_end(150, 120), Some(100));
        assert_eq!(page_past_the_end(150, 100), Some(50));
        assert_eq!(page_past_the_end(150, 0), Some(0));
    }

    /// A client whose frames land in the returned receiver instead of a socket.
    fn client_with_outbox() -> (WsClient, mpsc::UnboundedReceiver<ClientMsg>) {
        let client = WsClient::new(Toasts::new());
        let (tx, rx) = mpsc::unbounded();
        client.outbox.set_value(Some(tx));
        (client, rx)
    }

    fn sent(rx: &mut mpsc::UnboundedReceiver<ClientMsg>) -> Vec<ClientMsg> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn the_page_and_the_count_follow_the_frames() {
        let (client, _rx) = client_with_outbox();
        client.handle(ServerMsg::ActivePets {
            offset: 0,
            total: 1_234,
            pets: vec![pet(1, "Ada"), pet(2, "Bo")],
        });
        let page = client.active.get_untracked();
        assert_eq!((page.offset, page.total), (0, 1_234));
        assert_eq!(page.pets, vec![pet(1, "Ada"), pet(2, "Bo")]);
        client.handle(ServerMsg::ActivePetsChanged {
            joined: vec![pet(3, "Cy")],
            left: vec![PetId(1)],
            total: 1_300,
        });
        let page = client.active.get_untracked();
        assert_eq!((page.offset, page.total), (0, 1_300));
        assert_eq!(page.pets, vec![pet(2, "Bo"), pet(3, "Cy")]);
        // Only the count changed.
        client.handle(ServerMsg::ActivePetsChanged {
            joined: vec![],
            left: vec![],
            total: 1_299,
        });
        assert_eq!(client.active.get_untracked().total, 1_299);
        assert_eq!(client.active.get_untracked().pets.len(), 2);
    }

    #[test]
    fn another_page_is_asked_for_and_asked_again_after_a_reconnect() {
        let (client, mut rx) = client_with_outbox();
        // The first page is where a new session starts: nothing to re-send.
        assert_eq!(client.resume_frames(), vec![]);
        client.show_active_page(50);
        let page = |offset| ClientMsg::ActivePetsPage { offset, limit: 50 };
        assert_eq!(sent(&mut rx), vec![page(50)]);
        client.watch(PetId(7));
        let _ = sent(&mut rx);
        assert_eq!(
            client.resume_frames(),
            vec![ClientMsg::Watch { pet_id: PetId(7) }, page(50)]
        );
        // Back on the first page: a new connection shows it anyway.
        client.show_active_page(0);
        assert_eq!(sent(&mut rx), vec![page(0)]);
        assert_eq!(
            client.resume_frames(),
            vec![ClientMsg::Watch { pet_id: PetId(7) }]
        );
    }

    #[test]
    fn an_emptied_last_page_steps_back_once() {
        let (client, mut rx) = client_with_outbox();
        client.show_active_page(100);
        let _ = sent(&mut rx);
        client.handle(ServerMsg::ActivePets {
            offset: 100,
            total: 101,
            pets: vec![pet(1, "Zed")],
        });
        assert_eq!(sent(&mut rx), vec![]);
        // The last pet of the page leaves: the page is past the end, show the last one.
        let gone = ServerMsg::ActivePetsChanged {
            joined: vec![],
            left: vec![PetId(1)],
            total: 100,
        };
        client.handle(gone.clone());
        assert_eq!(
            sent(&mut rx),
            vec![ClientMsg::ActivePetsPage {
                offset: 50,
                limit: 50
            }]
        );
        // Another frame for the old page before the answer asks nothing more.
        client.handle(ServerMsg::ActivePetsChanged {
            joined: vec![],
            left: vec![],
            total: 99,
        });
        assert_eq!(sent(&mut rx), vec![]);
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
