//! The process's logger: env_logger, with failed accepts turned into one line per episode.
//! When the server runs out of file descriptors, the HTTP accept loop fails, pauses half a
//! second and tries again, logging every failure: a line twice a second for as long as it
//! lasts, which buried everything else. Here the first failure of an episode is logged with
//! what it means and what to do, the rest are only counted, and the end of the episode is
//! logged once by [`AcceptErrors::end_episode_if_quiet`].

use log::{Level, Log, Metadata, Record};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where actix-server logs a failed accept, and how the line starts.
const ACCEPT_TARGET: &str = "actix_server::accept";
const ACCEPT_FAILED: &str = "Error accepting connection";

/// An episode ends after this long without a failed accept.
pub const QUIET_AFTER: Duration = Duration::from_secs(3);

/// Failed accepts of this process, counted by the logger. Global because the logger is:
/// there is one accept loop per process.
pub struct AcceptErrors {
    total: AtomicU64,
    in_episode: AtomicBool,
    episode_errors: AtomicU64,
    episode_began_ms: AtomicI64,
    last_ms: AtomicI64,
}

pub static ACCEPT_ERRORS: AcceptErrors = AcceptErrors {
    total: AtomicU64::new(0),
    in_episode: AtomicBool::new(false),
    episode_errors: AtomicU64::new(0),
    episode_began_ms: AtomicI64::new(0),
    last_ms: AtomicI64::new(0),
};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl AcceptErrors {
    /// Every failed accept since start.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Counts one failure; true when it opens an episode (and so should be logged).
    fn record(&self) -> bool {
        let now = now_ms();
        self.total.fetch_add(1, Ordering::Relaxed);
        self.episode_errors.fetch_add(1, Ordering::Relaxed);
        self.last_ms.store(now, Ordering::Relaxed);
        let opened = !self.in_episode.swap(true, Ordering::AcqRel);
        if opened {
            self.episode_began_ms.store(now, Ordering::Relaxed);
        }
        opened
    }

    /// Called about once a second: logs the end of an episode once no accept has failed for
    /// [`QUIET_AFTER`].
    pub fn end_episode_if_quiet(&self) {
        if !self.in_episode.load(Ordering::Acquire) {
            return;
        }
        let now = now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if now - last < QUIET_AFTER.as_millis() as i64 {
            return;
        }
        if self.in_episode.swap(false, Ordering::AcqRel) {
            let errors = self.episode_errors.swap(0, Ordering::Relaxed);
            let began = self.episode_began_ms.load(Ordering::Relaxed);
            log::warn!(
                "accepting connections again: {errors} accept(s) failed over {:.1} s",
                (last - began) as f64 / 1000.0
            );
        }
    }
}

/// env_logger, with the accept loop's failures reduced to one line an episode.
struct Logger {
    inner: env_logger::Logger,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if record.target() == ACCEPT_TARGET && record.level() == Level::Error {
            let text = record.args().to_string();
            if text.starts_with(ACCEPT_FAILED) {
                if ACCEPT_ERRORS.record() {
                    log::error!(
                        "new connections are failing ({}): out of file descriptors, new \
                         viewers cannot connect until some close. Pets, the persister and \
                         open sessions carry on. Raise the hard open-file limit (ulimit -Hn, \
                         LimitNOFILE=, docker ulimits) or lower --max-connections; logged once \
                         until it passes",
                        text.trim_start_matches(ACCEPT_FAILED)
                            .trim_start_matches(": ")
                    );
                }
                return;
            }
        }
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs the logger: `RUST_LOG` as usual, `default` when it is unset.
pub fn init(default: &str) {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Logger { inner })).is_ok() {
        log::set_max_level(max);
    }
}
