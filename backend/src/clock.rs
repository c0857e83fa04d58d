//! The wall clock, for timestamps only: the wire and the database carry times as ms since the
//! Unix epoch. Anything that schedules or measures (the tick grid, timeouts, heartbeats) uses
//! the monotonic clock (`Instant`) instead, so an NTP step of the wall clock neither freezes
//! nor bursts the world.
//!
//! With the `test-hooks` feature, tests can step the wall clock of one thread (see
//! [`step_this_thread`]) as an NTP step would; without it, [`now_ms`] is a plain read of the
//! system clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    #[cfg(feature = "test-hooks")]
    let real = real + test_hooks::OFFSET_MS.with(|o| o.get());
    real
}

#[cfg(feature = "test-hooks")]
pub use test_hooks::step_this_thread;

#[cfg(feature = "test-hooks")]
mod test_hooks {
    use std::cell::Cell;

    thread_local! {
        // Per thread, not per process: a test steps the clock of its own server's pet threads
        // without moving the clock of every other test running in the same process.
        pub(super) static OFFSET_MS: Cell<i64> = const { Cell::new(0) };
    }

    /// Steps this thread's wall clock by `ms` (negative: backwards), as an NTP step would.
    pub fn step_this_thread(ms: i64) {
        OFFSET_MS.with(|o| o.set(o.get() + ms));
    }
}
