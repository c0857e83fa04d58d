//! Heartbeat bookkeeping of one WebSocket session: when to ping, and when a silent client is
//! gone. Plain code on explicit instants, so the stall rule is tested without sockets.
//!
//! Only time the server itself was running counts as the client's silence. A server that was
//! paused (a VM pause, SIGSTOP, a starved thread) wakes with every client looking silent for
//! the whole pause, although their frames may be waiting unread in the socket buffers; judging
//! them then would drop every healthy viewer at once. So a beat that comes late pings and
//! leaves the judgement to a later beat, when the client has had time to answer.

use std::time::{Duration, Instant};

/// What a beat asks the session to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Ping the client.
    Ping,
    /// Nothing: one of the beats that queued up while the server was paused.
    Skip,
    /// The client has been silent past the timeout: drop it.
    TimedOut,
}

#[derive(Debug, Clone)]
pub struct Heartbeat {
    every: Duration,
    timeout: Duration,
    last_seen: Instant,
    last_beat: Instant,
}

impl Heartbeat {
    /// A client silent for `timeout` is dropped; it is pinged every third of that, so it gets
    /// at least two pings to answer before it is judged.
    pub fn new(timeout: Duration, now: Instant) -> Self {
        Heartbeat {
            every: (timeout / 3).max(Duration::from_millis(1)),
            timeout,
            last_seen: now,
            last_beat: now,
        }
    }

    /// How often [`beat`](Self::beat) should run.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// The client sent something (any frame, a pong included).
    pub fn seen(&mut self, now: Instant) {
        self.last_seen = now;
    }

    /// One heartbeat at `now`.
    pub fn beat(&mut self, now: Instant) -> Beat {
        let gap = now.saturating_duration_since(self.last_beat);
        self.last_beat = now;
        // actix fires the beats missed during a pause back to back; the first one decides.
        if gap < self.every / 2 {
            return Beat::Skip;
        }
        let late = gap.saturating_sub(self.every);
        if late > self.every / 2 {
            // The server was not running for about `late`: that is not the client's silence.
            self.last_seen = (self.last_seen + late).min(now);
            return Beat::Ping;
        }
        if now.saturating_duration_since(self.last_seen) > self.timeout {
            Beat::TimedOut
        } else {
            Beat::Ping
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Runs beats every `every` from `from` for `n` beats; returns the last outcome.
    fn beats(hb: &mut Heartbeat, from: Instant, n: u32) -> (Instant, Beat) {
        let mut t = from;
        let mut last = Beat::Skip;
        for _ in 0..n {
            t += hb.every();
            last = hb.beat(t);
            if last == Beat::TimedOut {
                break;
            }
        }
        (t, last)
    }

    #[test]
    fn a_silent_client_is_dropped_after_the_timeout() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(30 * S, t0);
        assert_eq!(hb.every(), 10 * S);
        let (t, b) = beats(&mut hb, t0, 3);
        assert_eq!(
            (t - t0, b),
            (30 * S, Beat::Ping),
            "exactly the timeout is allowed"
        );
        assert_eq!(beats(&mut hb, t, 1).1, Beat::TimedOut);
    }

    #[test]
    fn an_answering_client_stays() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(30 * S, t0);
        let mut t = t0;
        for _ in 0..20 {
            t += hb.every();
            assert_eq!(hb.beat(t), Beat::Ping);
            hb.seen(t + S); // the pong
        }
    }

    #[test]
    fn a_server_pause_is_not_the_clients_silence() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(30 * S, t0);
        let (t, _) = beats(&mut hb, t0, 1);
        hb.seen(t + S);
        // Paused for 35 s: the beat due at t + 10 s runs at t + 45 s, and the missed ones right
        // after it.
        let resumed = t + 45 * S;
        assert_eq!(hb.beat(resumed), Beat::Ping);
        assert_eq!(hb.beat(resumed), Beat::Skip);
        assert_eq!(hb.beat(resumed + Duration::from_millis(1)), Beat::Skip);
        // The client answers every ping and stays.
        let mut t = resumed;
        for _ in 0..10 {
            hb.seen(t + Duration::from_millis(50));
            t += hb.every();
            assert_eq!(hb.beat(t), Beat::Ping);
        }
    }

    #[test]
    fn a_client_that_does_not_answer_after_a_pause_is_still_dropped() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(30 * S, t0);
        let resumed = t0 + 60 * S;
        assert_eq!(hb.beat(resumed), Beat::Ping);
        // Silent from here on: dropped once the running time since it was last seen passes
        // the timeout, never on the pause itself.
        let (t, b) = beats(&mut hb, resumed, 10);
        assert_eq!(b, Beat::TimedOut);
        assert!(
            t - resumed >= 20 * S,
            "judged {:?} after the pause",
            t - resumed
        );
    }
}
