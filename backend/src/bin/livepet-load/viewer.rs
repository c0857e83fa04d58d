//! One WebSocket viewer: connect within a bounded time, watch its pet, time and count every
//! frame (by type, in bytes), feed and give treats on schedule, and hand back what it saw.
//!
//! A viewer that is not watching `connect_timeout` after it started trying (TCP connect,
//! upgrade and its first `pet` frame) gives up and says why: timeout, refused (HTTP 503 or
//! TCP), reset, or other. Nothing it does can block for longer than that, so a run always
//! reaches its window and its report.

use crate::setup;
use crate::stats::now_ms;
use actix_codec::Framed;
use awc::error::{ConnectError, SendRequestError, WsClientError};
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt as _, StreamExt as _};
use livepet_shared::wire::ServerMsg;
use livepet_shared::PetId;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest one send may take once connected: a server that stops reading must not hang us.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a viewer could not start watching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailKind {
    /// Nothing came back in time (TCP connect, upgrade or first `pet` frame).
    Timeout,
    /// The server answered the upgrade with HTTP 503: refused at once, as designed.
    Refused503,
    /// The TCP connection was refused (nobody listening, or the backlog is full).
    RefusedTcp,
    /// The connection was reset or closed before the first `pet` frame.
    Reset,
    /// Anything else (another HTTP status, an error frame, a local resource problem).
    Other,
}

impl FailKind {
    pub const ALL: [FailKind; 5] = [
        FailKind::Timeout,
        FailKind::Refused503,
        FailKind::RefusedTcp,
        FailKind::Reset,
        FailKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailKind::Timeout => "timeout",
            FailKind::Refused503 => "refused_503",
            FailKind::RefusedTcp => "refused_tcp",
            FailKind::Reset => "reset",
            FailKind::Other => "other",
        }
    }
}

/// A viewer that never started watching.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailKind,
    /// The error as the client saw it (reports keep the first words).
    pub detail: String,
    /// Milliseconds from the first attempt to the failure.
    pub after_ms: f64,
}

/// Server frame types, for the byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Pet,
    ActivePets,
    ActivePetsChanged,
    Treats,
    Error,
    Other,
}

impl FrameKind {
    pub const ALL: [FrameKind; 6] = [
        FrameKind::Pet,
        FrameKind::ActivePets,
        FrameKind::ActivePetsChanged,
        FrameKind::Treats,
        FrameKind::Error,
        FrameKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FrameKind::Pet => "pet",
            FrameKind::ActivePets => "active_pets",
            FrameKind::ActivePetsChanged => "active_pets_changed",
            FrameKind::Treats => "treats",
            FrameKind::Error => "error",
            FrameKind::Other => "other",
        }
    }

    /// The frame's `type`, read from its first bytes (the server writes the tag first), so
    /// a large active list is not parsed just to be counted.
    fn of(bytes: &[u8]) -> FrameKind {
        let tag = bytes
            .strip_prefix(br#"{"type":""#)
            .and_then(|rest| rest.split(|&b| b == b'"').next());
        match tag {
            Some(tag) => FrameKind::from_tag(tag),
            // Not in the usual shape: let serde find the tag wherever it is.
            None => serde_json::from_slice::<Tagged>(bytes)
                .map_or(FrameKind::Other, |t| FrameKind::from_tag(t.kind.as_bytes())),
        }
    }

    fn from_tag(tag: &[u8]) -> FrameKind {
        match tag {
            b"pet" => FrameKind::Pet,
            b"active_pets" => FrameKind::ActivePets,
            b"active_pets_changed" => FrameKind::ActivePetsChanged,
            b"treats" => FrameKind::Treats,
            b"error" => FrameKind::Error,
            _ => FrameKind::Other,
        }
    }

    fn slot(self) -> usize {
        FrameKind::ALL.iter().position(|k| *k == self).unwrap_or(5)
    }
}

#[derive(Deserialize)]
struct Tagged {
    #[serde(rename = "type")]
    kind: String,
}

/// An `active_pets` or `active_pets_changed` frame, counted but not kept.
#[derive(Deserialize)]
struct PresenceFrame {
    total: Option<u64>,
    #[serde(default)]
    pets: Vec<IgnoredAny>,
    #[serde(default)]
    joined: Vec<IgnoredAny>,
}

/// Frames and bytes of one kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traffic {
    pub frames: u64,
    pub bytes: u64,
}

/// Traffic by [`FrameKind`], in the order of [`FrameKind::ALL`].
pub type ByKind = [Traffic; 6];

/// What one viewer saw.
#[derive(Debug, Default)]
pub struct ViewerStats {
    pub storm: bool,
    /// The pet this viewer watches (a cluster bench tells local watches from remote ones by
    /// its shard).
    pub pet: i64,
    pub connected: bool,
    pub failure: Option<Failure>,
    /// Milliseconds from the first attempt to the first `pet` frame.
    pub connect_ms: f64,
    /// When the first `pet` frame came (epoch ms).
    pub ready_at: i64,
    /// When the newest tick frame came (epoch ms): a viewer whose frames stop before the
    /// window ends is charged the ticks it should have seen after it.
    pub last_tick_ms: i64,
    pub closed_early: bool,
    pub ticks_received: u64,
    pub ticks_missing: u64,
    /// (receive ms, tick→client latency ms, ms since the previous tick's `at` or -1).
    pub latencies: Vec<(i64, f64, i64)>,
    pub feed_rtts: Vec<f64>,
    pub feeds_sent: u64,
    pub feeds_skipped: u64,
    pub feeds_lost: u64,
    pub treat_rtts: Vec<f64>,
    pub treats_sent: u64,
    pub errors: BTreeMap<String, u64>,
    pub frames_total: u64,
    pub bytes_total: u64,
    pub presence_frames: u64,
    /// Frames received inside the measured window, by kind.
    pub in_window: ByKind,
    /// Frames received from the upgrade to the start of the window (the ramp and warm-up).
    pub before_window: ByKind,
    /// The first `active_pets` frame: (bytes, entries, total).
    pub first_active: Option<(u64, u64, u64)>,
    /// Entries and bytes of every `active_pets` frame that listed at least one pet.
    pub active_entries: u64,
    pub active_entry_bytes: u64,
    /// The largest active count any frame announced.
    pub active_total_max: u64,
    /// The most pets one active-list frame listed (`pets` or `joined`).
    pub presence_entries_max: u64,
    /// The most `active_pets_changed` frames received within one second of the clock.
    pub presence_max_per_s: u32,
}

/// One viewer's assignment.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub index: usize,
    pub cookie: Arc<str>,
    pub pet: PetId,
    pub feed: bool,
    pub treat_to: Option<PetId>,
    /// One of the extra viewers that connect all at once during the window.
    pub storm: bool,
}

/// What every viewer of a run shares with the others and with the main thread.
pub struct Shared {
    pub ready: AtomicUsize,
    pub failed: AtomicUsize,
    pub storm_ready: AtomicUsize,
    pub storm_failed: AtomicUsize,
    /// 0 until every (non-storm) viewer is watching; then the measured window in epoch ms.
    pub window_start: AtomicI64,
    pub window_end: AtomicI64,
    /// 0 until the window is set; then when the storm's viewers start connecting.
    pub storm_start: AtomicI64,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            ready: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            storm_ready: AtomicUsize::new(0),
            storm_failed: AtomicUsize::new(0),
            window_start: AtomicI64::new(0),
            window_end: AtomicI64::new(0),
            storm_start: AtomicI64::new(0),
        }
    }

    fn count(&self, storm: bool, ready: bool) {
        let c = match (storm, ready) {
            (false, true) => &self.ready,
            (false, false) => &self.failed,
            (true, true) => &self.storm_ready,
            (true, false) => &self.storm_failed,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Settings every viewer of a run follows.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub feed_every_s: f64,
    pub treat_every_s: f64,
    pub connect_timeout: Duration,
    /// Ask for this page size of the active list once connected (None: the server's default).
    pub page_limit: Option<u32>,
}

/// What the viewers of one client thread share.
pub struct Env {
    pub client: awc::Client,
    pub base: Rc<str>,
    pub settings: Settings,
    /// Handshakes in flight at once for ordinary viewers; the storm ignores it.
    pub permits: Rc<tokio::sync::Semaphore>,
    pub shared: Arc<Shared>,
    pub done: Sender<ViewerStats>,
}

/// Runs one viewer to the end of the window and sends what it saw to the main thread.
pub async fn viewer(a: Assignment, env: Rc<Env>) {
    let st = watch(a, &env).await;
    // The main thread stops listening after its deadline; a late viewer is simply dropped.
    let _ = env.done.send(st);
}

/// Opens the WebSocket (cookie and same-origin `Origin`); the error says why not.
async fn connect(
    client: &awc::Client,
    base: &str,
    cookie: &str,
) -> Result<Framed<BoxedSocket, Codec>, (FailKind, String)> {
    let url = format!("{}/ws", base.replacen("http", "ws", 1));
    let (res, framed) = client
        .ws(url)
        .origin(base)
        .cookie(awc::cookie::Cookie::new(setup::COOKIE, cookie.to_string()))
        // The old server's first frame listed every active pet: large with many viewers.
        .max_frame_size(64 << 20)
        .connect()
        .await
        .map_err(|e| (classify(&e), e.to_string()))?;
    if res.status().as_u16() != 101 {
        return Err((FailKind::Other, format!("status {}", res.status())));
    }
    Ok(framed)
}

fn classify(e: &WsClientError) -> FailKind {
    match e {
        WsClientError::InvalidResponseStatus(s) if s.as_u16() == 503 => FailKind::Refused503,
        WsClientError::SendRequest(e) => match e {
            SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => {
                FailKind::Timeout
            }
            SendRequestError::Connect(ConnectError::Io(io)) | SendRequestError::Send(io) => {
                io_kind(io.kind())
            }
            // The response's parse error type is not exported by awc; its text is enough.
            SendRequestError::Response(p) => {
                let text = p.to_string().to_lowercase();
                if ["incomplete", "reset", "broken pipe", "eof"]
                    .iter()
                    .any(|w| text.contains(w))
                {
                    FailKind::Reset
                } else {
                    FailKind::Other
                }
            }
            _ => FailKind::Other,
        },
        _ => FailKind::Other,
    }
}

fn io_kind(k: ErrorKind) -> FailKind {
    match k {
        ErrorKind::ConnectionRefused => FailKind::RefusedTcp,
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof => FailKind::Reset,
        ErrorKind::TimedOut => FailKind::Timeout,
        _ => FailKind::Other,
    }
}

/// Sends one frame, bounded by [`SEND_TIMEOUT`]; false when it could not.
async fn send(ws: &mut Framed<BoxedSocket, Codec>, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, ws.send(msg)).await,
        Ok(Ok(()))
    )
}

async fn watch(a: Assignment, env: &Env) -> ViewerStats {
    let set = env.settings;
    let shared = &env.shared;
    let mut st = ViewerStats {
        storm: a.storm,
        pet: a.pet.0,
        ..ViewerStats::default()
    };
    // The storm connects all at once; ordinary viewers ramp up a few at a time.
    let mut permit = if a.storm {
        None
    } else {
        env.permits.acquire().await.ok()
    };
    let began = Instant::now();
    let deadline = began + set.connect_timeout;
    let fail = |st: &mut ViewerStats, kind: FailKind, detail: String| {
        st.failure = Some(Failure {
            kind,
            detail,
            after_ms: began.elapsed().as_secs_f64() * 1000.0,
        });
        shared.count(a.storm, false);
    };
    let timeout_s = set.connect_timeout.as_secs_f64();
    let mut ws =
        match tokio::time::timeout_at(deadline.into(), connect(&env.client, &env.base, &a.cookie))
            .await
        {
            Ok(Ok(ws)) => ws,
            Ok(Err((kind, detail))) => {
                fail(&mut st, kind, detail);
                return st;
            }
            Err(_) => {
                fail(
                    &mut st,
                    FailKind::Timeout,
                    format!("no upgrade within {timeout_s} s"),
                );
                return st;
            }
        };
    let mut hello = vec![format!(r#"{{"type":"watch","pet_id":{}}}"#, a.pet.0)];
    if let Some(limit) = set.page_limit {
        hello.push(format!(
            r#"{{"type":"active_pets_page","offset":0,"limit":{limit}}}"#
        ));
    }
    for msg in hello {
        if !send(&mut ws, Message::Text(msg.into())).await {
            fail(
                &mut st,
                FailKind::Reset,
                "could not send watch after the upgrade".into(),
            );
            return st;
        }
    }
    let mut ready = false;
    let mut last: Option<(u32, u32)> = None; // (age, hunger) of the newest pet frame
    let mut last_tick_ms = 0i64;
    let mut last_at = 0i64;
    let mut presence_second = 0i64;
    let mut presence_in_second = 0u32;
    // Offsets spread feeds and treats over their period so they do not come in waves.
    let spread = |every: f64| {
        let frac = (a.index as f64 * 0.618_033_988_75).fract();
        Duration::from_secs_f64(every.max(0.001) * frac)
    };
    let mut next_feed = Instant::now() + spread(set.feed_every_s);
    let mut next_treat = Instant::now() + spread(set.treat_every_s);
    let mut pending_feed: Option<(Instant, u32)> = None;
    let mut pending_treat: Option<Instant> = None;
    loop {
        let now = now_ms();
        let end = shared.window_end.load(Ordering::Relaxed);
        let start = shared.window_start.load(Ordering::Relaxed);
        // A grace of one second lets the last frames of the window arrive. A viewer still
        // waiting for its first frame keeps to its own deadline.
        if ready && start != 0 && now > end + 1000 {
            break;
        }
        let mut wake = Instant::now() + Duration::from_millis(200);
        if !ready {
            wake = wake.min(deadline);
        }
        let frame = tokio::select! {
            f = ws.next() => Some(f),
            _ = tokio::time::sleep_until(wake.into()) => None,
        };
        let now = now_ms();
        let in_window = start != 0 && now >= start && now <= end;
        let before_window = start == 0 || now < start;
        match frame {
            None => {}
            Some(None) | Some(Some(Err(_))) => {
                st.closed_early = true;
                break;
            }
            Some(Some(Ok(Frame::Ping(p)))) => {
                let _ = send(&mut ws, Message::Pong(p)).await;
            }
            Some(Some(Ok(Frame::Close(reason)))) => {
                st.closed_early = true;
                if !ready {
                    fail(
                        &mut st,
                        FailKind::Reset,
                        format!("closed before the first pet frame ({reason:?})"),
                    );
                    return st;
                }
                break;
            }
            Some(Some(Ok(Frame::Text(bytes)))) => {
                st.frames_total += 1;
                st.bytes_total += bytes.len() as u64;
                let kind = FrameKind::of(&bytes);
                let slot = kind.slot();
                let traffic = if in_window {
                    Some(&mut st.in_window[slot])
                } else if before_window {
                    Some(&mut st.before_window[slot])
                } else {
                    None
                };
                if let Some(t) = traffic {
                    t.frames += 1;
                    t.bytes += bytes.len() as u64;
                }
                if matches!(kind, FrameKind::ActivePets | FrameKind::ActivePetsChanged) {
                    st.presence_frames += 1;
                    // Changes only: a page sent on connect or on request is an answer.
                    if kind == FrameKind::ActivePetsChanged {
                        let second = now / 1000;
                        if second != presence_second {
                            presence_second = second;
                            presence_in_second = 0;
                        }
                        presence_in_second += 1;
                        st.presence_max_per_s = st.presence_max_per_s.max(presence_in_second);
                    }
                    match serde_json::from_slice::<PresenceFrame>(&bytes) {
                        Ok(p) => {
                            let total = p.total.unwrap_or(0);
                            st.active_total_max = st.active_total_max.max(total);
                            st.presence_entries_max = st
                                .presence_entries_max
                                .max((p.pets.len() + p.joined.len()) as u64);
                            if kind == FrameKind::ActivePets {
                                let entries = p.pets.len() as u64;
                                let size = bytes.len() as u64;
                                st.first_active.get_or_insert((size, entries, total));
                                if entries > 0 {
                                    st.active_entries += entries;
                                    st.active_entry_bytes += size;
                                }
                            }
                        }
                        Err(_) => {
                            *st.errors.entry("unparsable_frame".into()).or_default() += 1;
                        }
                    }
                    continue;
                }
                match serde_json::from_slice::<ServerMsg>(&bytes) {
                    Ok(ServerMsg::Pet { pet }) if pet.id == a.pet => {
                        if let Some((age, _)) = last {
                            if pet.age > age {
                                if in_window {
                                    st.ticks_received += 1;
                                    st.ticks_missing += u64::from(pet.age - age - 1);
                                    let interval = if pet.age == age + 1 && last_at > 0 {
                                        pet.at - last_at
                                    } else {
                                        -1
                                    };
                                    st.latencies.push((
                                        now,
                                        (now - pet.at).max(0) as f64,
                                        interval,
                                    ));
                                }
                                last_tick_ms = now;
                                last_at = pet.at;
                            }
                        } else {
                            last_tick_ms = now;
                        }
                        if let Some((sent, hunger)) = pending_feed {
                            if pet.hunger < hunger {
                                if in_window {
                                    st.feed_rtts.push(sent.elapsed().as_secs_f64() * 1000.0);
                                }
                                pending_feed = None;
                            }
                        }
                        last = Some((pet.age, pet.hunger));
                        if !ready {
                            ready = true;
                            st.connected = true;
                            st.connect_ms = began.elapsed().as_secs_f64() * 1000.0;
                            st.ready_at = now;
                            drop(permit.take());
                            shared.count(a.storm, true);
                        }
                    }
                    Ok(ServerMsg::Pet { .. }) => {}
                    Ok(ServerMsg::Treats { .. }) => {
                        if let Some(sent) = pending_treat.take() {
                            if in_window {
                                st.treat_rtts.push(sent.elapsed().as_secs_f64() * 1000.0);
                            }
                        }
                    }
                    Ok(ServerMsg::Error { code, .. }) => {
                        *st.errors.entry(code.as_str().to_string()).or_default() += 1;
                        pending_treat = None;
                        if !ready {
                            fail(
                                &mut st,
                                FailKind::Other,
                                format!("error frame {}", code.as_str()),
                            );
                            return st;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        *st.errors.entry("unparsable_frame".into()).or_default() += 1;
                    }
                }
            }
            Some(Some(Ok(_))) => {}
        }
        if !ready {
            if Instant::now() >= deadline {
                fail(
                    &mut st,
                    FailKind::Timeout,
                    format!("upgraded, but no pet frame within {timeout_s} s"),
                );
                return st;
            }
            continue;
        }
        let now_i = Instant::now();
        if let Some((sent, _)) = pending_feed {
            if sent.elapsed() > Duration::from_secs(10) {
                st.feeds_lost += 1;
                pending_feed = None;
            }
        }
        if a.feed && pending_feed.is_none() && now_i >= next_feed {
            next_feed = now_i + Duration::from_secs_f64(set.feed_every_s.max(0.001));
            match last {
                Some((_, hunger)) if hunger > 0 => {
                    let msg = format!(r#"{{"type":"feed","pet_id":{}}}"#, a.pet.0);
                    if !send(&mut ws, Message::Text(msg.into())).await {
                        st.closed_early = true;
                        break;
                    }
                    pending_feed = Some((Instant::now(), hunger));
                    if in_window {
                        st.feeds_sent += 1;
                    }
                }
                _ => st.feeds_skipped += u64::from(in_window),
            }
        }
        if let Some(target) = a.treat_to {
            if pending_treat.is_none() && now_i >= next_treat {
                next_treat = now_i + Duration::from_secs_f64(set.treat_every_s.max(0.001));
                let msg = format!(r#"{{"type":"give_treat","pet_id":{}}}"#, target.0);
                if !send(&mut ws, Message::Text(msg.into())).await {
                    st.closed_early = true;
                    break;
                }
                pending_treat = Some(Instant::now());
                if in_window {
                    st.treats_sent += 1;
                }
            }
        }
    }
    if !ready {
        fail(
            &mut st,
            FailKind::Reset,
            "closed before the first pet frame".into(),
        );
        return st;
    }
    st.last_tick_ms = last_tick_ms;
    let _ = send(&mut ws, Message::Close(None)).await;
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_kind_is_read_from_the_tag() {
        let of = |s: &str| FrameKind::of(s.as_bytes());
        assert_eq!(of(r#"{"type":"pet","pet":{}}"#), FrameKind::Pet);
        assert_eq!(
            of(r#"{"type":"active_pets","offset":0,"total":1,"pets":[]}"#),
            FrameKind::ActivePets
        );
        assert_eq!(
            of(r#"{"type":"active_pets_changed","joined":[],"left":[],"total":0}"#),
            FrameKind::ActivePetsChanged
        );
        // The tag elsewhere than first still counts; a stranger frame is "other".
        assert_eq!(of(r#"{"available":4,"type":"treats"}"#), FrameKind::Treats);
        assert_eq!(of(r#"{"type":"pong"}"#), FrameKind::Other);
        assert_eq!(of("not json"), FrameKind::Other);
    }

    #[test]
    fn refusals_and_resets_are_told_apart() {
        let status = |code: u16| {
            WsClientError::InvalidResponseStatus(
                awc::http::StatusCode::from_u16(code).expect("a status"),
            )
        };
        assert_eq!(classify(&status(503)), FailKind::Refused503);
        assert_eq!(classify(&status(429)), FailKind::Other);
        let io = |k: ErrorKind| {
            WsClientError::SendRequest(SendRequestError::Connect(ConnectError::Io(k.into())))
        };
        assert_eq!(
            classify(&io(ErrorKind::ConnectionRefused)),
            FailKind::RefusedTcp
        );
        assert_eq!(classify(&io(ErrorKind::ConnectionReset)), FailKind::Reset);
        assert_eq!(
            classify(&WsClientError::SendRequest(SendRequestError::Timeout)),
            FailKind::Timeout
        );
    }
}
