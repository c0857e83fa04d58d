//! Per-user limits, so one account cannot take what is meant for everyone: live pets and
//! how fast they are adopted, open WebSockets, watched pets (each one is on every viewer's
//! active list), and frames per second across all of a user's sockets. Past a limit the
//! user gets a clear error (HTTP 422/429 or a WebSocket `error` frame) and nothing changes
//! for anyone else. Every number is a flag (see `config.rs`).

use crate::error::AppError;
use governor::{DefaultKeyedRateLimiter, Quota};
use livepet_shared::UserId;
use std::num::NonZeroU32;

/// The numbers, as configured.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Live pets one user may have.
    pub pets: u32,
    /// Adoptions one user may make per minute.
    pub adoptions_per_minute: u32,
    /// WebSockets one user may have open at once.
    pub sockets: u32,
    /// Frames one user may send per second across all its sockets (twice that as a burst).
    pub frames_per_second: u32,
    /// Pets one user may watch at once (across its sockets; a pet watched in two tabs
    /// counts once).
    pub watched: u32,
}

/// The limits and the per-user rate state.
pub struct UserLimits {
    pub settings: LimitSettings,
    adoptions: DefaultKeyedRateLimiter<UserId>,
    frames: DefaultKeyedRateLimiter<UserId>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl UserLimits {
    pub fn new(settings: LimitSettings) -> UserLimits {
        let frames = Quota::per_second(nonzero(settings.frames_per_second))
            .allow_burst(nonzero(settings.frames_per_second.saturating_mul(2)));
        UserLimits {
            settings,
            adoptions: governor::RateLimiter::keyed(Quota::per_minute(nonzero(
                settings.adoptions_per_minute,
            ))),
            frames: governor::RateLimiter::keyed(frames),
        }
    }

    /// Counts one adoption; `RateLimited` with the wait past the per-minute limit.
    pub fn check_adoption(&self, user: UserId) -> Result<(), AppError> {
        self.adoptions.check_key(&user).map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited(wait.as_secs().max(1))
        })
    }

    /// Counts one frame of the user's; false past the user's budget.
    pub fn admit_frame(&self, user: UserId) -> bool {
        self.frames.check_key(&user).is_ok()
    }

    /// The error for an adoption past the live-pet limit.
    pub fn too_many_pets(&self) -> AppError {
        AppError::LimitReached(format!(
            "you already have {} live pets, the most one person can have",
            self.settings.pets
        ))
    }

    /// The error for a socket past the per-user limit.
    pub fn too_many_sockets(&self) -> AppError {
        AppError::TooManyOpen(format!(
            "you already have {} live connections open; close a tab and try again",
            self.settings.sockets
        ))
    }

    /// The message for a watch past the per-user limit.
    pub fn too_many_watched(&self) -> String {
        format!(
            "you are already watching {} pets; close one of their pages first",
            self.settings.watched
        )
    }

    /// Drops rate state of users who have been quiet (bounded memory).
    pub fn forget_quiet_users(&self) {
        self.adoptions.retain_recent();
        self.frames.retain_recent();
    }
}
