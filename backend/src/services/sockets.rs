//! Which WebSockets each login session has open, so that ending a session (logout, log out
//! everywhere, a password change or reset, account deletion) reaches every socket opened
//! with it at once, not at its next request.
//!
//! Ending happens in two steps around the database commit. Before it, the sockets are
//! *suspended*: their flag is set, and a socket checks it before acting on any frame, so
//! nothing a client sends once the revocation is under way is applied. After the commit they
//! are told to close (code 4001). If the commit fails the flags are cleared again and the
//! sockets carry on, since their session still stands.
//!
//! The same registry counts each user's open sockets and watched pets for the per-user
//! limits (`services::limits`).
//!
//! A socket registers itself when it starts and then checks its session in the database
//! once more; a revocation committed between the upgrade's check and the registration is
//! caught by that second check, one committed after it finds the registration.

use actix::prelude::*;
use livepet_shared::{PetId, UserId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Tells a socket that its session has ended: it closes with code 4001.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct SessionEnded;

/// Which of a user's sessions end.
#[derive(Debug, Clone, Copy)]
pub enum Ending<'a> {
    /// The session with this token hash (logout, expiry).
    One(&'a str),
    /// All of them (log out everywhere, a reset, account deletion).
    All,
    /// All but the one with this token hash (a password change keeps the changer's).
    AllBut(&'a str),
}

impl Ending<'_> {
    fn covers(&self, session: &str) -> bool {
        match self {
            Ending::One(h) => *h == session,
            Ending::All => true,
            Ending::AllBut(h) => *h != session,
        }
    }
}

struct Socket {
    id: u64,
    session: Arc<str>,
    ended: Arc<AtomicBool>,
    to: Recipient<SessionEnded>,
    /// The pets this socket watches.
    watching: Vec<PetId>,
}

/// The open sockets of every user, by session.
#[derive(Default)]
pub struct LiveSockets {
    by_user: Mutex<HashMap<UserId, Vec<Socket>>>,
    /// Cluster mode: tells the other nodes of every ending, so sockets there close too.
    elsewhere: OnceLock<EndElsewhere>,
}

/// Passes an ending on to the other nodes (cluster mode).
pub type EndElsewhere = Box<dyn Fn(UserId, Revocation) + Send + Sync>;

/// An [`Ending`] as it travels to other nodes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "sessions", content = "token_hash", rename_all = "snake_case")]
pub enum Revocation {
    One(String),
    All,
    AllBut(String),
}

impl Revocation {
    pub fn of(ending: Ending<'_>) -> Self {
        match ending {
            Ending::One(h) => Revocation::One(h.to_string()),
            Ending::All => Revocation::All,
            Ending::AllBut(h) => Revocation::AllBut(h.to_string()),
        }
    }

    pub fn ending(&self) -> Ending<'_> {
        match self {
            Revocation::One(h) => Ending::One(h),
            Revocation::All => Ending::All,
            Revocation::AllBut(h) => Ending::AllBut(h),
        }
    }
}

/// A suspension of some sessions' sockets: [`commit`](Suspended::commit) closes them,
/// dropping it without committing lets them carry on.
#[must_use = "commit once the revocation is durable, or drop to resume the sockets"]
pub struct Suspended<'a> {
    live: &'a LiveSockets,
    user: UserId,
    ending: Ending<'a>,
    flags: Vec<Arc<AtomicBool>>,
    committed: bool,
}

impl LiveSockets {
    /// Registers a socket of `user` opened with the session `session` (its token hash);
    /// returns the flag the socket checks before acting on a frame.
    pub fn register(
        &self,
        user: UserId,
        id: u64,
        session: Arc<str>,
        to: Recipient<SessionEnded>,
    ) -> Arc<AtomicBool> {
        let ended = Arc::new(AtomicBool::new(false));
        self.lock().entry(user).or_default().push(Socket {
            id,
            session,
            ended: ended.clone(),
            to,
            watching: Vec::new(),
        });
        ended
    }

    /// How many sockets the user has open.
    pub fn open_of(&self, user: UserId) -> usize {
        self.lock().get(&user).map_or(0, Vec::len)
    }

    /// Records that socket `id` of `user` watches `pet`, unless that would make the user
    /// watch more than `max` distinct pets (a pet already watched in another tab is free).
    pub fn try_watch(&self, user: UserId, id: u64, pet: PetId, max: usize) -> bool {
        let mut map = self.lock();
        let Some(list) = map.get_mut(&user) else {
            return false;
        };
        let mut distinct: Vec<PetId> = list
            .iter()
            .flat_map(|s| s.watching.iter().copied())
            .collect();
        distinct.sort_unstable();
        distinct.dedup();
        if !distinct.contains(&pet) && distinct.len() >= max {
            return false;
        }
        match list.iter_mut().find(|s| s.id == id) {
            Some(s) => {
                if !s.watching.contains(&pet) {
                    s.watching.push(pet);
                }
                true
            }
            None => false,
        }
    }

    /// Socket `id` of `user` no longer watches `pet`.
    pub fn unwatch(&self, user: UserId, id: u64, pet: PetId) {
        if let Some(s) = self
            .lock()
            .get_mut(&user)
            .and_then(|list| list.iter_mut().find(|s| s.id == id))
        {
            s.watching.retain(|p| *p != pet);
        }
    }

    /// Forgets a socket that has stopped.
    pub fn unregister(&self, user: UserId, id: u64) {
        let mut map = self.lock();
        if let Some(list) = map.get_mut(&user) {
            list.retain(|s| s.id != id);
            if list.is_empty() {
                map.remove(&user);
            }
        }
    }

    /// Open sockets in all (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Suspends the sockets of the sessions that are about to end: from now on they act on
    /// no frame. Commit after the revocation is durable.
    pub fn suspend<'a>(&'a self, user: UserId, ending: Ending<'a>) -> Suspended<'a> {
        let flags = self.mark(user, ending, |_| {});
        Suspended {
            live: self,
            user,
            ending,
            flags,
            committed: false,
        }
    }

    /// Ends sessions whose revocation is already durable (or that expired): their sockets
    /// act on nothing more and close, here and (cluster mode) on every other node. Returns
    /// how many sockets were told here.
    pub fn end(&self, user: UserId, ending: Ending<'_>) -> usize {
        if let Some(tell) = self.elsewhere.get() {
            tell(user, Revocation::of(ending));
        }
        self.end_here(user, ending)
    }

    /// Like [`end`](Self::end), for this node's sockets only (an ending another node told of).
    pub fn end_here(&self, user: UserId, ending: Ending<'_>) -> usize {
        self.mark(user, ending, |s| s.to.do_send(SessionEnded))
            .len()
    }

    /// Cluster mode: from now on every ending is also told to the other nodes through `tell`.
    pub fn tell_elsewhere(&self, tell: EndElsewhere) {
        let _ = self.elsewhere.set(tell);
    }

    /// Sets the flag of every socket `ending` covers, calls `then` on it, and returns the
    /// flags.
    fn mark(
        &self,
        user: UserId,
        ending: Ending<'_>,
        then: impl Fn(&Socket),
    ) -> Vec<Arc<AtomicBool>> {
        let map = self.lock();
        let covered = map.get(&user).into_iter().flatten();
        covered
            .filter(|s| ending.covers(&s.session))
            .map(|s| {
                s.ended.store(true, Ordering::SeqCst);
                then(s);
                s.ended.clone()
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Vec<Socket>>> {
        // The map stays consistent even if a holder panicked: every change is one push/retain.
        self.by_user.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Suspended<'_> {
    /// The revocation is durable: close every socket it covers, including any registered
    /// since the suspension. Returns how many sockets were told.
    pub fn commit(mut self) -> usize {
        self.committed = true;
        self.live.end(self.user, self.ending)
    }
}

impl Drop for Suspended<'_> {
    fn drop(&mut self) {
        if !self.committed {
            for f in &self.flags {
                f.store(false, Ordering::SeqCst);
            }
        }
    }
}
