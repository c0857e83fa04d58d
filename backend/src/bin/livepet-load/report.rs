//! The `viewers` report: what the watching viewers saw in the window (latency, frames
//! missing, round trips), why the others never watched, the bytes a session receives by
//! frame type, and, with a storm, how the storm's own viewers fared.

use crate::stats::Percentiles;
use crate::viewer::{ByKind, FailKind, FrameKind, ViewerStats};
use serde::Serialize;
use std::collections::BTreeMap;

/// The whole run, printed as `RESULT <json>`. The fields before `connection_failure_kinds`
/// are the original format that `cargo xtask bench` reads for its viewers and persist rows.
#[derive(Debug, Serialize)]
pub struct Report {
    pub kind: &'static str,
    pub users: usize,
    pub viewers: usize,
    pub viewers_watching: usize,
    pub connection_failures: usize,
    /// The first words of each failure's error, counted.
    pub connection_failure_reasons: BTreeMap<String, usize>,
    pub closed_early: usize,
    pub window_s: f64,
    pub tick_ms: u64,
    pub frames_received: u64,
    pub frames_expected: u64,
    /// Of the connected viewers, plus every tick of the window for each viewer that never
    /// connected.
    pub frames_missing: u64,
    pub tick_latency_ms: Percentiles,
    /// Time between two ticks of a pet minus the tick period: how late ticks run.
    pub tick_lateness_ms: Percentiles,
    pub feed_rtt_ms: Percentiles,
    pub feeds_sent: u64,
    pub feeds_skipped_hunger_zero: u64,
    pub feeds_unanswered: u64,
    pub treat_rtt_ms: Percentiles,
    pub treats_sent: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    pub frames_total: u64,
    pub bytes_total: u64,
    pub presence_frames: u64,
    pub setup_s: f64,
    pub connect_s: f64,
    pub load_cpu_percent: f64,
    /// Failures by kind: timeout, refused_503, refused_tcp, reset, other (all present).
    pub connection_failure_kinds: BTreeMap<&'static str, usize>,
    /// How long a failed attempt took to fail (a refusal should be immediate).
    pub connection_failure_ms: Percentiles,
    /// Connected viewers: first attempt → first `pet` frame.
    pub connect_ms: Percentiles,
    pub connect_timeout_s: f64,
    /// Frames missing among the viewers that did connect.
    pub frames_missing_connected: u64,
    /// Viewers that had not reported when the run gave up waiting for them.
    pub viewers_unfinished: usize,
    pub traffic: TrafficReport,
    pub storm: Option<StormReport>,
}

/// Bytes and frames a session receives, by frame type (`all` is the sum).
#[derive(Debug, Default, Serialize)]
pub struct TrafficReport {
    /// Per watching viewer, per minute of the window.
    pub window_bytes_per_session_per_minute: BTreeMap<&'static str, f64>,
    pub window_frames_per_session_per_minute: BTreeMap<&'static str, f64>,
    /// Per watching viewer, from its upgrade to the start of the window: the connect ramp
    /// (while the others join) and the warm-up.
    pub before_window_bytes_per_session: BTreeMap<&'static str, f64>,
    pub before_window_frames_per_session: BTreeMap<&'static str, f64>,
    pub before_window_s: f64,
    /// The first `active_pets` frame of each session: its size and entries.
    pub first_active_pets_bytes: Percentiles,
    pub first_active_pets_entries: Percentiles,
    /// Mean bytes per listed pet in `active_pets` frames (the frame's envelope shared out):
    /// what one entry of a full list costs.
    pub active_entry_bytes: f64,
    /// The largest active count any frame announced (`total`; 0 from a server without it).
    pub active_total_max: u64,
    /// Mean bytes of one entry (`{"id","name","species","owner_id"}` and a comma) for this
    /// run's own pets: N active pets in one list cost about N times this.
    pub list_entry_bytes: f64,
    /// Per session, the most `active_pets_changed` frames within one second of the clock.
    pub presence_frames_max_per_second: Percentiles,
    /// The most pets any one active-list frame listed (`pets` or `joined`).
    pub active_list_entries_max: u64,
}

/// The extra viewers that connected all at once during the window.
#[derive(Debug, Serialize)]
pub struct StormReport {
    pub viewers: usize,
    pub connected: usize,
    pub failures: usize,
    pub failure_kinds: BTreeMap<&'static str, usize>,
    pub failure_reasons: BTreeMap<String, usize>,
    pub failure_ms: Percentiles,
    /// When the storm started (epoch ms) and how far into the window.
    pub started_ms: i64,
    pub started_after_window_s: f64,
    /// From the storm's start until every storm viewer was watching; null when some never
    /// did (then `last_connected_s` says when the last one that did was).
    pub all_connected_s: Option<f64>,
    pub last_connected_s: f64,
    /// First attempt → first `pet` frame, of the storm viewers that connected.
    pub connect_ms: Percentiles,
    /// The storm viewers' own ticks once watching, to the end of the window.
    pub tick_latency_ms: Percentiles,
    pub frames_received: u64,
    pub frames_missing: u64,
    /// Bytes per storm viewer from its upgrade to the end of the window.
    pub bytes_per_session: BTreeMap<&'static str, f64>,
}

/// The parts of the run the report needs besides the viewers' stats.
pub struct RunInfo {
    pub users: usize,
    pub viewers: usize,
    pub storm: usize,
    pub tick_ms: u64,
    pub connect_timeout_s: f64,
    pub setup_s: f64,
    pub connect_s: f64,
    /// When the viewers started connecting (epoch ms).
    pub connecting_ms: i64,
    pub window: (i64, i64),
    pub storm_start: i64,
    pub load_cpu_s: f64,
    pub unfinished: usize,
    pub list_entry_bytes: f64,
}

fn kinds(counts: &[usize; 5]) -> BTreeMap<&'static str, usize> {
    FailKind::ALL
        .iter()
        .zip(counts)
        .map(|(k, n)| (k.as_str(), *n))
        .collect()
}

fn by_kind(sum: &ByKind, per: f64, bytes: bool) -> BTreeMap<&'static str, f64> {
    let mut m: BTreeMap<&'static str, f64> = FrameKind::ALL
        .iter()
        .zip(sum)
        .map(|(k, t)| {
            (
                k.as_str(),
                if bytes { t.bytes } else { t.frames } as f64 / per,
            )
        })
        .collect();
    let all = m.values().sum();
    m.insert("all", all);
    m
}

fn add(into: &mut ByKind, from: &ByKind) {
    for (a, b) in into.iter_mut().zip(from) {
        a.frames += b.frames;
        a.bytes += b.bytes;
    }
}

/// Ticks a viewer should have seen after its frames stopped, up to the window's end.
fn silent_ticks(s: &ViewerStats, start: i64, end: i64, tick: i64) -> u64 {
    let silent_from = s.last_tick_ms.max(start);
    if end - silent_from > tick + tick / 2 {
        ((end - silent_from) / tick) as u64
    } else {
        0
    }
}

fn reason(detail: &str) -> String {
    // Keep reasons short and few: the first words name the failure.
    detail.chars().take(80).collect()
}

pub fn summarize(info: &RunInfo, all: Vec<ViewerStats>) -> Report {
    let (start, end) = info.window;
    let window_ms = end - start;
    let tick = info.tick_ms.max(1) as i64;
    let window_s = window_ms as f64 / 1000.0;
    let (mut lat, mut late, mut feed, mut treat) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut fail_ms, mut connect_ms) = (Vec::new(), Vec::new());
    let mut fail_counts = [0usize; 5];
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut window_sum, mut before_sum) = (ByKind::default(), ByKind::default());
    let (mut first_bytes, mut first_entries, mut presence_max) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut entries, mut entry_bytes, mut total_max) = (0u64, 0u64, 0u64);
    let mut entries_max = 0u64;
    let mut r = Report {
        kind: "viewers",
        users: info.users,
        viewers: info.viewers,
        viewers_watching: 0,
        connection_failures: 0,
        connection_failure_reasons: BTreeMap::new(),
        closed_early: 0,
        window_s,
        tick_ms: info.tick_ms,
        frames_received: 0,
        frames_expected: 0,
        frames_missing: 0,
        tick_latency_ms: Percentiles::default(),
        tick_lateness_ms: Percentiles::default(),
        feed_rtt_ms: Percentiles::default(),
        feeds_sent: 0,
        feeds_skipped_hunger_zero: 0,
        feeds_unanswered: 0,
        treat_rtt_ms: Percentiles::default(),
        treats_sent: 0,
        errors_by_code: BTreeMap::new(),
        frames_total: 0,
        bytes_total: 0,
        presence_frames: 0,
        setup_s: info.setup_s,
        connect_s: info.connect_s,
        load_cpu_percent: 100.0 * info.load_cpu_s / window_s.max(1e-9),
        connection_failure_kinds: BTreeMap::new(),
        connection_failure_ms: Percentiles::default(),
        connect_ms: Percentiles::default(),
        connect_timeout_s: info.connect_timeout_s,
        frames_missing_connected: 0,
        viewers_unfinished: info.unfinished,
        traffic: TrafficReport::default(),
        storm: None,
    };
    let mut storm_stats = Vec::new();
    for mut s in all {
        if s.storm {
            storm_stats.push(s);
            continue;
        }
        if let Some(f) = &s.failure {
            r.connection_failures += 1;
            fail_counts[FailKind::ALL.iter().position(|k| *k == f.kind).unwrap_or(4)] += 1;
            fail_ms.push(f.after_ms);
            *reasons.entry(reason(&f.detail)).or_default() += 1;
        }
        if s.connected {
            r.viewers_watching += 1;
            connect_ms.push(s.connect_ms);
            s.ticks_missing += silent_ticks(&s, start, end, tick);
            r.frames_missing_connected += s.ticks_missing;
            add(&mut window_sum, &s.in_window);
            add(&mut before_sum, &s.before_window);
            if let Some((bytes, n, _)) = s.first_active {
                first_bytes.push(bytes as f64);
                first_entries.push(n as f64);
            }
            presence_max.push(f64::from(s.presence_max_per_s));
        }
        entries += s.active_entries;
        entry_bytes += s.active_entry_bytes;
        total_max = total_max.max(s.active_total_max);
        entries_max = entries_max.max(s.presence_entries_max);
        r.closed_early += usize::from(s.closed_early);
        r.frames_received += s.ticks_received;
        r.frames_missing += s.ticks_missing;
        r.feeds_sent += s.feeds_sent;
        r.feeds_skipped_hunger_zero += s.feeds_skipped;
        r.feeds_unanswered += s.feeds_lost;
        r.treats_sent += s.treats_sent;
        r.frames_total += s.frames_total;
        r.bytes_total += s.bytes_total;
        r.presence_frames += s.presence_frames;
        lat.extend(s.latencies.iter().map(|(_, ms, _)| *ms));
        late.extend(
            s.latencies
                .iter()
                .filter(|(_, _, i)| *i >= 0)
                .map(|(_, _, i)| (*i - tick) as f64),
        );
        feed.extend(s.feed_rtts);
        treat.extend(s.treat_rtts);
        for (k, v) in s.errors {
            *errors.entry(k).or_default() += v;
        }
    }
    // A viewer that never connected (or never reported) was expected to see every tick.
    let per_viewer = (window_ms / tick).max(0) as u64;
    let absent = info.viewers.saturating_sub(r.viewers_watching);
    r.frames_missing += absent as u64 * per_viewer;
    r.frames_expected = r.frames_received + r.frames_missing;
    r.tick_latency_ms = Percentiles::of(lat);
    r.tick_lateness_ms = Percentiles::of(late);
    r.feed_rtt_ms = Percentiles::of(feed);
    r.treat_rtt_ms = Percentiles::of(treat);
    r.errors_by_code = errors;
    r.connection_failure_reasons = reasons;
    r.connection_failure_kinds = kinds(&fail_counts);
    r.connection_failure_ms = Percentiles::of(fail_ms);
    r.connect_ms = Percentiles::of(connect_ms);
    let watching = r.viewers_watching.max(1) as f64;
    let minutes = (window_s / 60.0).max(1e-9);
    r.traffic = TrafficReport {
        window_bytes_per_session_per_minute: by_kind(&window_sum, watching * minutes, true),
        window_frames_per_session_per_minute: by_kind(&window_sum, watching * minutes, false),
        before_window_bytes_per_session: by_kind(&before_sum, watching, true),
        before_window_frames_per_session: by_kind(&before_sum, watching, false),
        before_window_s: (start - info.connecting_ms).max(0) as f64 / 1000.0,
        first_active_pets_bytes: Percentiles::of(first_bytes),
        first_active_pets_entries: Percentiles::of(first_entries),
        active_entry_bytes: if entries > 0 {
            entry_bytes as f64 / entries as f64
        } else {
            0.0
        },
        active_total_max: total_max,
        list_entry_bytes: info.list_entry_bytes,
        presence_frames_max_per_second: Percentiles::of(presence_max),
        active_list_entries_max: entries_max,
    };
    if info.storm > 0 {
        r.storm = Some(storm(info, storm_stats));
    }
    r
}

fn storm(info: &RunInfo, all: Vec<ViewerStats>) -> StormReport {
    let (_, end) = info.window;
    let tick = info.tick_ms.max(1) as i64;
    let mut fail_counts = [0usize; 5];
    let (mut reasons, mut fail_ms, mut connect_ms, mut lat) =
        (BTreeMap::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut connected, mut last_ready, mut received, mut missing) = (0usize, 0i64, 0u64, 0u64);
    let mut traffic = ByKind::default();
    for s in &all {
        if let Some(f) = &s.failure {
            fail_counts[FailKind::ALL.iter().position(|k| *k == f.kind).unwrap_or(4)] += 1;
            fail_ms.push(f.after_ms);
            *reasons.entry(reason(&f.detail)).or_default() += 1;
        }
        if s.connected {
            connected += 1;
            connect_ms.push(s.connect_ms);
            last_ready = last_ready.max(s.ready_at);
            received += s.ticks_received;
            missing += s.ticks_missing + silent_ticks(s, s.ready_at, end, tick);
            lat.extend(s.latencies.iter().map(|(_, ms, _)| *ms));
            add(&mut traffic, &s.in_window);
            add(&mut traffic, &s.before_window);
        }
    }
    let failures = fail_counts.iter().sum();
    let last_connected_s = (last_ready - info.storm_start).max(0) as f64 / 1000.0;
    StormReport {
        viewers: info.storm,
        connected,
        failures,
        failure_kinds: kinds(&fail_counts),
        failure_reasons: reasons,
        failure_ms: Percentiles::of(fail_ms),
        started_ms: info.storm_start,
        started_after_window_s: (info.storm_start - info.window.0) as f64 / 1000.0,
        all_connected_s: (connected == info.storm).then_some(last_connected_s),
        last_connected_s,
        connect_ms: Percentiles::of(connect_ms),
        tick_latency_ms: Percentiles::of(lat),
        frames_received: received,
        frames_missing: missing,
        bytes_per_session: by_kind(&traffic, connected.max(1) as f64, true),
    }
}
