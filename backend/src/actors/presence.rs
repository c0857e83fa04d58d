//! Presence: which pets are on someone's screen right now (the "active pets"), and the
//! registry of connected viewer sessions so changes reach the ones they concern.
//!
//! The active list is a window: a session looks at one page of it, sorted by name, and
//! hears only about that page and the total count. Sessions on the same page share one
//! page record, so each change is computed and encoded once per page, not once per session.
//! Changes are coalesced: at most one frame per page every [`FLUSH_EVERY`] when the page's
//! pets change, and one every [`COUNT_EVERY`] when only the count does. A session's traffic
//! is bounded by its page size, whatever the number of active pets.

use crate::actors::encode;
use crate::actors::pet::ViewerId;
use crate::metrics::Metrics;
use actix::prelude::*;
use livepet_shared::wire::{ActivePet, ServerMsg, ACTIVE_PAGE_DEFAULT};
use livepet_shared::{PetId, UserId};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often changed pages go out.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How often a page whose pets did not change hears of a new count.
pub const COUNT_EVERY: Duration = Duration::from_secs(1);

/// A page of the active list: `limit` pets from `offset` in name order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageKey {
    pub offset: u32,
    pub limit: u32,
}

impl PageKey {
    /// The page a session starts on.
    pub const FIRST: PageKey = PageKey {
        offset: 0,
        limit: ACTIVE_PAGE_DEFAULT,
    };
}

/// What Presence tells a session.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum Push {
    /// A ready-made text frame, encoded once for every recipient.
    Frame(Arc<str>),
    /// A change to one page of the active list; a session that has moved to another page
    /// since it was sent ignores it.
    Page(PageKey, Arc<str>),
    /// The server is stopping: close with "going away" after what is already queued.
    GoingAway,
}

/// The server is stopping: every session closes with "going away".
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Shutdown;

/// A session connects; it starts on [`PageKey::FIRST`], and the reply is that page's
/// `active_pets` frame.
#[derive(Message)]
#[rtype(result = "Option<Arc<str>>")]
pub struct Connect {
    pub viewer: ViewerId,
    pub user: UserId,
    pub to: Recipient<Push>,
}

/// A session shows another page (`None`: no list at all). The reply is the page's
/// `active_pets` frame, to send before anything Presence pushes for that page.
#[derive(Message)]
#[rtype(result = "Option<Arc<str>>")]
pub struct ShowPage {
    pub viewer: ViewerId,
    pub page: Option<PageKey>,
}

/// A session is gone; everything it was watching is released.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub viewer: ViewerId,
}

/// An owner's session is showing this live pet.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Join {
    pub viewer: ViewerId,
    pub pet: ActivePet,
}

/// The session no longer shows this pet (unwatched, or it died).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub viewer: ViewerId,
    pub pet: PetId,
}

/// The owner of a pet if it is active now, else `None`.
#[derive(Message)]
#[rtype(result = "Option<UserId>")]
pub struct ActiveOwner {
    pub pet: PetId,
}

/// A user's treat count changed: tell each of their sessions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TreatsChanged {
    pub user: UserId,
    pub available: u32,
    /// It changed on another node (cluster mode), which has told the others itself.
    pub elsewhere: bool,
}

/// Every user was topped up to `available`: tell every session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TreatsRefreshed {
    pub available: u32,
    /// The top-up ran on another node (cluster mode), which has told the others itself.
    pub elsewhere: bool,
}

/// Cluster mode: where this node's changes go from now on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetOutbox(pub Outbox);

/// Cluster mode: another node (its [`remote_viewer`]) shows this pet now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteJoin {
    pub node: ViewerId,
    pub pet: ActivePet,
}

/// Cluster mode: no session on that node shows the pet any more.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteLeave {
    pub node: ViewerId,
    pub pet: PetId,
}

/// Cluster mode: that node is gone; the pets only it showed leave the list.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoteGone {
    pub node: ViewerId,
}

/// Cluster mode: the pets sessions on this node show (told to a node that just started).
#[derive(Message)]
#[rtype(result = "Vec<ActivePet>")]
pub struct LocalActive;

/// Where a pet sorts: by name without regard to case, then by id, so the order is total.
type SortKey = (Box<str>, PetId);

fn sort_key(pet: &ActivePet) -> SortKey {
    (pet.name.to_lowercase().into_boxed_str(), pet.id)
}

struct Active {
    info: ActivePet,
    key: SortKey,
    /// Sessions showing it; the pet stays active while any does (an owner's second tab).
    viewers: HashSet<ViewerId>,
}

struct Session {
    user: UserId,
    to: Recipient<Push>,
    page: Option<PageKey>,
    /// Pets this session made active, released when it goes.
    showing: HashSet<PetId>,
}

/// What a session was last told of its page: the pets' ids in order, and the count.
#[derive(Clone, PartialEq)]
struct Told {
    ids: Vec<PetId>,
    total: u64,
}

/// One page and its sessions.
struct Page {
    /// Sessions that were all told the same thing, `shown`: one frame serves them all.
    viewers: HashSet<ViewerId>,
    shown: Told,
    count_told: Instant,
    /// Sessions that arrived since the last flush with the page as it was then (newer than
    /// `shown`): each gets its own diff once, at the next flush, then joins `viewers`.
    fresh: HashMap<ViewerId, Told>,
    /// The page as it is now, with its `active_pets` frame: computed once for all the
    /// sessions that arrive until the list changes.
    now: Option<(Told, Arc<str>)>,
}

/// How the page `shown` becomes `now`: the pets that joined it and the ids that left it.
fn page_diff(shown: &[PetId], now: &[ActivePet]) -> (Vec<ActivePet>, Vec<PetId>) {
    let before: HashSet<PetId> = shown.iter().copied().collect();
    let after: HashSet<PetId> = now.iter().map(|p| p.id).collect();
    let joined = now
        .iter()
        .filter(|p| !before.contains(&p.id))
        .cloned()
        .collect();
    let left = shown
        .iter()
        .filter(|id| !after.contains(id))
        .copied()
        .collect();
    (joined, left)
}

pub struct Presence {
    active: HashMap<PetId, Active>,
    /// The active pets in name order: pages are read from it.
    order: BTreeSet<SortKey>,
    sessions: HashMap<ViewerId, Session>,
    pages: HashMap<PageKey, Page>,
    /// Something changed since the last flush that some page may not have heard of yet.
    pending: bool,
    metrics: Arc<Metrics>,
    /// Cluster mode: the other nodes, each one viewer (see [`remote_viewer`]) that shows the
    /// pets its sessions show, with those pets.
    remote: HashMap<ViewerId, HashSet<PetId>>,
    /// Cluster mode: where this node's own changes go (to the other nodes).
    outbox: Option<Outbox>,
}

/// Sends what changed on this node to the other nodes (cluster mode).
pub type Outbox = Box<dyn Fn(Outgoing) + Send>;

/// A change on this node the other nodes must hear of (cluster mode).
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A pet became active here (its first session on this node shows it).
    Joined(ActivePet),
    /// No session on this node shows the pet any more.
    Left(PetId),
    Treats {
        user: UserId,
        available: u32,
    },
    TreatsRefreshed {
        available: u32,
    },
}

/// Viewer ids with this bit stand for another node (cluster mode); a session's own id counts
/// up from 1 and never reaches it.
const REMOTE: ViewerId = 1 << 63;

/// The viewer that stands for another node in this node's active list: one per node, showing
/// every pet some session on that node shows.
pub fn remote_viewer(node: &str) -> ViewerId {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node.hash(&mut h);
    h.finish() | REMOTE
}

fn is_local(viewer: ViewerId) -> bool {
    viewer & REMOTE == 0
}

impl Presence {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Presence {
            active: HashMap::new(),
            order: BTreeSet::new(),
            sessions: HashMap::new(),
            pages: HashMap::new(),
            pending: false,
            metrics,
            remote: HashMap::new(),
            outbox: None,
        }
    }

    fn tell_others(&self, what: Outgoing) {
        if let Some(out) = &self.outbox {
            out(what);
        }
    }

    /// Makes `pet` active for `viewer` (a session here or another node); returns whether it
    /// was the first viewer on this node.
    fn join(&mut self, viewer: ViewerId, pet: ActivePet) -> bool {
        let id = pet.id;
        let entry = self.active.entry(id).or_insert_with(|| {
            let key = sort_key(&pet);
            Active {
                info: pet,
                key,
                viewers: HashSet::new(),
            }
        });
        let joins = entry.viewers.is_empty();
        let first_here = is_local(viewer) && !entry.viewers.iter().any(|v| is_local(*v));
        entry.viewers.insert(viewer);
        if joins {
            let key = entry.key.clone();
            self.order.insert(key);
            self.changed();
        }
        self.metrics.active_pets.set(self.active.len() as i64);
        first_here
    }

    fn total(&self) -> u64 {
        self.active.len() as u64
    }

    /// The pets of `page` as they are now.
    fn page_now(&self, page: PageKey) -> Vec<ActivePet> {
        self.order
            .iter()
            .skip(page.offset as usize)
            .take(page.limit as usize)
            .filter_map(|(_, id)| self.active.get(id).map(|a| a.info.clone()))
            .collect()
    }

    /// The active list changed: every page's "now" must be read again.
    fn changed(&mut self) {
        self.pending = true;
        for page in self.pages.values_mut() {
            page.now = None;
        }
    }

    /// Puts `viewer` on `page` (off any other) and returns the page's frame as it is now.
    fn show(&mut self, viewer: ViewerId, page: Option<PageKey>) -> Option<Arc<str>> {
        let session = self.sessions.get_mut(&viewer)?;
        let old = std::mem::replace(&mut session.page, page);
        if let Some(old) = old {
            if let Some(p) = self.pages.get_mut(&old) {
                p.viewers.remove(&viewer);
                p.fresh.remove(&viewer);
                if p.viewers.is_empty() && p.fresh.is_empty() {
                    self.pages.remove(&old);
                }
            }
        }
        let key = page?;
        let (told, frame) = match self.pages.get(&key).and_then(|p| p.now.clone()) {
            Some(now) => now,
            None => {
                let pets = self.page_now(key);
                let told = Told {
                    ids: pets.iter().map(|p| p.id).collect(),
                    total: self.total(),
                };
                let frame = encode(&ServerMsg::ActivePets {
                    offset: key.offset,
                    total: told.total,
                    pets,
                })?;
                (told, frame)
            }
        };
        let p = self.pages.entry(key).or_insert_with(|| Page {
            viewers: HashSet::new(),
            shown: told.clone(),
            count_told: Instant::now(),
            fresh: HashMap::new(),
            now: None,
        });
        if p.shown == told {
            p.viewers.insert(viewer);
        } else {
            p.fresh.insert(viewer, told.clone());
        }
        p.now = Some((told, frame.clone()));
        Some(frame)
    }

    fn release(&mut self, viewer: ViewerId, pet: PetId) {
        if let Some(s) = self.sessions.get_mut(&viewer) {
            s.showing.remove(&pet);
        }
        if let Some(a) = self.active.get_mut(&pet) {
            let removed = a.viewers.remove(&viewer);
            if removed && is_local(viewer) && !a.viewers.iter().any(|v| is_local(*v)) {
                if let Some(out) = &self.outbox {
                    out(Outgoing::Left(pet));
                }
            }
            if a.viewers.is_empty() {
                if let Some(gone) = self.active.remove(&pet) {
                    self.order.remove(&gone.key);
                }
                self.changed();
            }
        }
        self.metrics.active_pets.set(self.active.len() as i64);
    }

    /// Sends `push` to each of `viewers`; returns the sessions whose mailbox is full.
    fn send_to<'a>(
        sessions: &HashMap<ViewerId, Session>,
        viewers: impl Iterator<Item = &'a ViewerId>,
        push: &Push,
    ) -> Vec<ViewerId> {
        viewers
            .filter(|v| {
                sessions
                    .get(v)
                    .is_some_and(|s| s.to.try_send(push.clone()).is_err())
            })
            .copied()
            .collect()
    }

    fn broadcast(&mut self, msg: &ServerMsg) {
        let Some(frame) = encode(msg) else { return };
        let stuck = Self::send_to(&self.sessions, self.sessions.keys(), &Push::Frame(frame));
        self.drop_stuck(stuck);
    }

    /// Forgets sessions whose mailbox is full (their client stopped reading): they get no
    /// more frames, and the pets they showed leave the active list.
    fn drop_stuck(&mut self, stuck: Vec<ViewerId>) {
        for viewer in stuck {
            log::info!("dropping session {viewer}: it is not keeping up");
            self.metrics.slow_viewers_dropped_total.inc();
            self.disconnect(viewer);
        }
    }

    fn disconnect(&mut self, viewer: ViewerId) {
        self.show(viewer, None);
        let Some(session) = self.sessions.remove(&viewer) else {
            return;
        };
        for pet in session.showing {
            self.release(viewer, pet);
        }
    }

    /// Tells every page whose pets changed what changed, and every page whose count changed
    /// the new count (at most every [`COUNT_EVERY`]); sessions that arrived since the last
    /// flush get their own diff and join the page's shared frame from then on.
    fn flush(&mut self) {
        if !self.pending {
            return;
        }
        self.pending = false;
        let total = self.total();
        let now = Instant::now();
        // One walk of the name order as far as the deepest page reaches, whatever the
        // number of pages: each page is then a slice of it.
        let reach = self
            .pages
            .keys()
            .map(|k| k.offset as usize + k.limit as usize)
            .max()
            .unwrap_or(0);
        let prefix: Vec<&ActivePet> = self
            .order
            .iter()
            .take(reach)
            .filter_map(|(_, id)| self.active.get(id).map(|a| &a.info))
            .collect();
        let currents: Vec<(PageKey, Vec<ActivePet>)> = self
            .pages
            .keys()
            .map(|&k| {
                let from = (k.offset as usize).min(prefix.len());
                let to = (k.offset as usize + k.limit as usize).min(prefix.len());
                (k, prefix[from..to].iter().map(|p| (*p).clone()).collect())
            })
            .collect();
        // Frames to send: to a whole page's shared sessions, or to one fresh session.
        let mut shared: Vec<(PageKey, Push)> = Vec::new();
        let mut single: Vec<(ViewerId, Push)> = Vec::new();
        for (key, current) in currents {
            let Some(page) = self.pages.get_mut(&key) else {
                continue;
            };
            let told = Told {
                ids: current.iter().map(|p| p.id).collect(),
                total,
            };
            let frame = |base: &Told| {
                let (joined, left) = page_diff(&base.ids, &current);
                encode(&ServerMsg::ActivePetsChanged {
                    joined,
                    left,
                    total,
                })
            };
            for (viewer, base) in page.fresh.drain() {
                if base != told {
                    if let Some(f) = frame(&base) {
                        single.push((viewer, Push::Page(key, f)));
                    }
                }
                page.viewers.insert(viewer);
            }
            if page.shown == told {
                continue;
            }
            if page.shown.ids == told.ids && now.duration_since(page.count_told) < COUNT_EVERY {
                self.pending = true; // the count goes out on a later flush
                continue;
            }
            if let Some(f) = frame(&page.shown) {
                shared.push((key, Push::Page(key, f)));
            }
            page.shown = told;
            page.count_told = now;
        }
        let mut stuck = Vec::new();
        for (key, push) in shared {
            if let Some(page) = self.pages.get(&key) {
                stuck.extend(Self::send_to(&self.sessions, page.viewers.iter(), &push));
            }
        }
        for (viewer, push) in single {
            stuck.extend(Self::send_to(
                &self.sessions,
                std::iter::once(&viewer),
                &push,
            ));
        }
        self.drop_stuck(stuck);
    }
}

impl Actor for Presence {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Many sessions: a big mailbox keeps do_send callers from waiting on us.
        ctx.set_mailbox_capacity(1 << 16);
        ctx.run_interval(FLUSH_EVERY, |act, _| act.flush());
    }
}

impl Handler<Connect> for Presence {
    type Result = Option<Arc<str>>;

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> Self::Result {
        self.sessions.insert(
            msg.viewer,
            Session {
                user: msg.user,
                to: msg.to,
                page: None,
                showing: HashSet::new(),
            },
        );
        self.show(msg.viewer, Some(PageKey::FIRST))
    }
}

impl Handler<ShowPage> for Presence {
    type Result = Option<Arc<str>>;

    fn handle(&mut self, msg: ShowPage, _: &mut Context<Self>) -> Self::Result {
        self.show(msg.viewer, msg.page)
    }
}

impl Handler<Disconnect> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        self.disconnect(msg.viewer);
    }
}

impl Handler<Join> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) {
        let id = msg.pet.id;
        // A session that is already gone (or was dropped) makes nothing active.
        let Some(session) = self.sessions.get_mut(&msg.viewer) else {
            return;
        };
        session.showing.insert(id);
        let pet = msg.pet.clone();
        if self.join(msg.viewer, msg.pet) {
            self.tell_others(Outgoing::Joined(pet));
        }
    }
}

impl Handler<Leave> for Presence {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.release(msg.viewer, msg.pet);
    }
}

impl Handler<ActiveOwner> for Presence {
    type Result = Option<UserId>;

    fn handle(&mut self, msg: ActiveOwner, _: &mut Context<Self>) -> Option<UserId> {
        self.active.get(&msg.pet).map(|a| a.info.owner_id)
    }
}

impl Handler<TreatsChanged> for Presence {
    type Result = ();

    fn handle(&mut self, msg: TreatsChanged, _: &mut Context<Self>) {
        if !msg.elsewhere {
            self.tell_others(Outgoing::Treats {
                user: msg.user,
                available: msg.available,
            });
        }
        let Some(frame) = encode(&ServerMsg::Treats {
            available: msg.available,
        }) else {
            return;
        };
        let theirs = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user == msg.user)
            .map(|(id, _)| id);
        let stuck = Self::send_to(&self.sessions, theirs, &Push::Frame(frame));
        self.drop_stuck(stuck);
    }
}

impl Handler<TreatsRefreshed> for Presence {
    type Result = ();

    fn handle(&mut self, msg: TreatsRefreshed, _: &mut Context<Self>) {
        if !msg.elsewhere {
            self.tell_others(Outgoing::TreatsRefreshed {
                available: msg.available,
            });
        }
        self.broadcast(&ServerMsg::Treats {
            available: msg.available,
        });
    }
}

impl Handler<SetOutbox> for Presence {
    type Result = ();

    fn handle(&mut self, msg: SetOutbox, _: &mut Context<Self>) {
        self.outbox = Some(msg.0);
    }
}

impl Handler<RemoteJoin> for Presence {
    type Result = ();

    fn handle(&mut self, msg: RemoteJoin, _: &mut Context<Self>) {
        self.remote.entry(msg.node).or_default().insert(msg.pet.id);
        self.join(msg.node, msg.pet);
    }
}

impl Handler<RemoteLeave> for Presence {
    type Result = ();

    fn handle(&mut self, msg: RemoteLeave, _: &mut Context<Self>) {
        if let Some(pets) = self.remote.get_mut(&msg.node) {
            pets.remove(&msg.pet);
        }
        self.release(msg.node, msg.pet);
    }
}

impl Handler<RemoteGone> for Presence {
    type Result = ();

    fn handle(&mut self, msg: RemoteGone, _: &mut Context<Self>) {
        for pet in self.remote.remove(&msg.node).unwrap_or_default() {
            self.release(msg.node, pet);
        }
    }
}

impl Handler<LocalActive> for Presence {
    type Result = MessageResult<LocalActive>;

    fn handle(&mut self, _: LocalActive, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.active
                .values()
                .filter(|a| a.viewers.iter().any(|v| is_local(*v)))
                .map(|a| a.info.clone())
                .collect(),
        )
    }
}

impl Handler<Shutdown> for Presence {
    type Result = usize;

    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> usize {
        for s in self.sessions.values() {
            s.to.do_send(Push::GoingAway);
        }
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livepet_shared::Species;

    fn pet(id: i64, name: &str) -> ActivePet {
        ActivePet {
            id: PetId(id),
            name: name.into(),
            species: Species::Dog,
            owner_id: UserId(1),
        }
    }

    #[test]
    fn a_diff_turns_the_shown_page_into_the_current_one() {
        let shown = [PetId(1), PetId(2), PetId(3)];
        let (joined, left) = page_diff(&shown, &[pet(1, "Ada"), pet(3, "Cy"), pet(4, "Di")]);
        assert_eq!(joined, vec![pet(4, "Di")]);
        assert_eq!(left, vec![PetId(2)]);
        let (joined, left) = page_diff(&shown, &[pet(1, "Ada"), pet(2, "Bo"), pet(3, "Cy")]);
        assert!(joined.is_empty() && left.is_empty());
    }

    #[test]
    fn names_sort_without_regard_to_case_then_by_id() {
        let mut keys = [
            sort_key(&pet(5, "bo")),
            sort_key(&pet(2, "Bo")),
            sort_key(&pet(9, "Ada")),
            sort_key(&pet(1, "cy")),
        ];
        keys.sort();
        let ids: Vec<i64> = keys.iter().map(|(_, id)| id.0).collect();
        assert_eq!(ids, vec![9, 2, 5, 1]);
    }
}
