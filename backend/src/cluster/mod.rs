//! Cluster mode (`livepet serve --nats-url`): several processes run one world on one
//! PostgreSQL database. Ownership lives in PostgreSQL (membership and shard leases, see
//! [`leases`]); traffic between nodes goes over NATS (requests to the node owning a pet,
//! frames of remotely watched pets, presence, treats and revocations, see [`remote`] and the
//! events below). Nothing here is a protocol of our own: PostgreSQL decides who owns what,
//! NATS carries the messages.
//!
//! This module sits between the services and the pet core: the services ask it to reach pets
//! on other nodes; it uses the world, the actors and the database, and never the services or
//! the edges (what it must do to them, like closing revoked sockets, it does through
//! callbacks the startup code hands it).

pub mod leases;
pub mod messages;
pub mod remote;

use crate::actors::pet::PetFrame;
use crate::actors::presence::{
    remote_viewer, LocalActive, Outgoing, Presence, RemoteGone, RemoteJoin, RemoteLeave, SetOutbox,
    TreatsChanged, TreatsRefreshed,
};
use crate::db::{DbPool, DbUrl};
use crate::world::{Fence, World};
use actix::prelude::*;
use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt;
use livepet_shared::UserId;
use messages::Event;
use remote::{Relayed, RemoteWatch};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

/// How a node takes part in a cluster (from the command line).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub nats_url: String,
    /// This node's name: unique among the nodes of one world.
    pub node: String,
    /// How long a lease lasts unless renewed (PostgreSQL's clock).
    pub lease_ttl: Duration,
    /// How often a node renews its leases and looks at who is alive.
    pub heartbeat: Duration,
}

/// Closes the sockets of ended sessions on this node (handed in by the startup code).
pub type EndHere = Box<dyn Fn(UserId, serde_json::Value) + Send + Sync>;

/// This node's part in the cluster.
pub struct Cluster {
    pub cfg: ClusterConfig,
    pub fence: Arc<Fence>,
    nats: async_nats::Client,
    /// Everything this node publishes goes through one task, in order.
    outbox: mpsc::UnboundedSender<Out>,
    world: Arc<World>,
    url: DbUrl,
    pool: DbPool,
    presence: Addr<Presence>,
    /// The address this node serves on (recorded in `cluster_nodes`).
    addr: String,
    /// The nodes alive at the last heartbeat, itself included, sorted by name.
    nodes: Mutex<Vec<String>>,
    node_count: AtomicUsize,
    /// Whether this node holds every shard the placement gives it.
    ready: AtomicBool,
    /// Set once the node is stopping: it takes nothing more.
    leaving: AtomicBool,
    /// Runs the lease loop now instead of at the next heartbeat (a shard was released).
    wake: Notify,
    /// When the last successful renewal was sent: past a lease term from then, this node's
    /// leases may have gone to others, so it answers nothing for them.
    renewed: Arc<Mutex<Option<std::time::Instant>>>,
    /// Held by the lease loop for each round, so leaving never interleaves with one.
    turn: tokio::sync::Mutex<()>,
    /// The subscriptions to the subjects of the shards this node holds: dropping the sender
    /// ends one (and unsubscribes it).
    serving: Mutex<HashMap<usize, oneshot::Sender<oneshot::Sender<()>>>>,
    /// Owner side: pets of this node whose frames are published for other nodes.
    relayed: Mutex<HashMap<livepet_shared::PetId, Relayed>>,
    /// Viewer side: pets of other nodes that sessions here watch.
    watched: Mutex<HashMap<livepet_shared::PetId, RemoteWatch>>,
    /// Where the owner side's pets send their frames, to be published.
    relay: OnceLock<Recipient<PetFrame>>,
    end_here: OnceLock<EndHere>,
}

/// Locks a map that stays consistent even if a holder panicked (every change is one insert
/// or remove).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cluster {
    /// Connects to NATS and joins the cluster: subscribes to the events, says hello, and
    /// starts the lease loop, which takes this node's shards (see [`leases`]). Returns at once;
    /// `/readyz` tells when the node holds its shards.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        cfg: ClusterConfig,
        fence: Arc<Fence>,
        world: Arc<World>,
        url: DbUrl,
        pool: DbPool,
        presence: Addr<Presence>,
        addr: String,
    ) -> anyhow::Result<Arc<Cluster>> {
        let nats = async_nats::ConnectOptions::new()
            .name(format!("livepet {}", cfg.node))
            .connection_timeout(Duration::from_secs(5))
            .connect(cfg.nats_url.as_str())
            .await
            .with_context(|| format!("cannot connect to NATS at {}", cfg.nats_url))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let cluster = Arc::new(Cluster {
            cfg,
            fence,
            nats,
            outbox: tx,
            world,
            url,
            pool,
            presence,
            addr,
            nodes: Mutex::new(Vec::new()),
            node_count: AtomicUsize::new(0),
            ready: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            wake: Notify::new(),
            turn: tokio::sync::Mutex::new(()),
            renewed: Arc::new(Mutex::new(None)),
            serving: Mutex::new(HashMap::new()),
            relayed: Mutex::new(HashMap::new()),
            watched: Mutex::new(HashMap::new()),
            relay: OnceLock::new(),
            end_here: OnceLock::new(),
        });
        actix::spawn(publish_loop(cluster.nats.clone(), rx));
        let relay = remote::Relay {
            cluster: Arc::downgrade(&cluster),
        }
        .start();
        let _ = cluster.relay.set(relay.recipient());

        let events = cluster
            .nats
            .subscribe(messages::EVENTS)
            .await
            .context("cannot subscribe to cluster events on NATS")?;
        actix::spawn(event_loop(Arc::clone(&cluster), events));
        let outbox = Arc::downgrade(&cluster);
        cluster.presence.do_send(SetOutbox(Box::new(move |what| {
            if let Some(c) = outbox.upgrade() {
                c.presence_changed(what);
            }
        })));
        cluster.announce(&Event::Hello {
            node: cluster.cfg.node.clone(),
        });
        log::info!(
            "cluster: node {} joined through NATS at {}; leases last {} ms, heartbeat every {} ms",
            cluster.cfg.node,
            cluster.cfg.nats_url,
            cluster.cfg.lease_ttl.as_millis(),
            cluster.cfg.heartbeat.as_millis()
        );
        actix::spawn(leases::run(Arc::clone(&cluster)));
        Ok(cluster)
    }

    /// Where the sockets of sessions another node ended are closed on this node.
    pub fn on_sessions_ended(&self, end_here: EndHere) {
        let _ = self.end_here.set(end_here);
    }

    /// Tells the other nodes that sessions of `user` ended (`revocation` says which).
    pub fn sessions_ended(&self, user: UserId, revocation: serde_json::Value) {
        self.announce(&Event::Revoked {
            node: self.cfg.node.clone(),
            user,
            revocation,
        });
    }

    /// Whether this node holds every shard the placement gives it (`/readyz`).
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.leaving.load(Ordering::SeqCst)
    }

    /// Whether this node's leases are surely still its own: renewed less than a lease term
    /// ago (a node that was paused or cut off must not answer for pets others now own).
    pub fn leases_fresh(&self) -> bool {
        lock(&self.renewed).is_some_and(|at| at.elapsed() < self.cfg.lease_ttl)
    }

    /// Nodes alive at the last heartbeat, this one included.
    pub fn node_count(&self) -> usize {
        self.node_count.load(Ordering::SeqCst)
    }

    /// Whether this node runs the cluster-wide chores (the treat top-up): the holder of
    /// shard 0, so exactly one node does, and another takes over when it goes.
    pub fn runs_chores(&self) -> bool {
        self.fence.epoch(0) != 0
    }

    fn announce(&self, event: &Event) {
        match serde_json::to_vec(event) {
            Ok(json) => self.publish(messages::EVENTS.to_string(), json.into()),
            Err(e) => log::error!("cannot encode a cluster event: {e}"),
        }
    }

    fn publish(&self, subject: String, payload: Bytes) {
        let _ = self.outbox.send(Out::Publish(subject, payload));
    }

    /// This node's presence changed: tell the others.
    fn presence_changed(&self, what: Outgoing) {
        let node = self.cfg.node.clone();
        self.announce(&match what {
            Outgoing::Joined(pet) => Event::Joined { node, pet },
            Outgoing::Left(pet) => Event::Left { node, pet },
            Outgoing::Treats { user, available } => Event::Treats {
                node,
                user,
                available,
            },
            Outgoing::TreatsRefreshed { available } => Event::TreatsRefreshed { node, available },
        });
    }

    /// Something happened on another node.
    async fn heard(self: &Arc<Self>, event: Event) {
        if event.node() == self.cfg.node {
            return;
        }
        match event {
            Event::Hello { node } => {
                // A new node knows nothing of what our sessions show: tell it (everyone
                // hears it, and a join that is already known changes nothing).
                if let Ok(pets) = self.presence.send(LocalActive).await {
                    for pet in pets {
                        self.announce(&Event::Joined {
                            node: self.cfg.node.clone(),
                            pet,
                        });
                    }
                }
                log::info!("cluster: node {node} said hello");
                self.wake.notify_one();
            }
            Event::Gone { node } => {
                self.forget_node(&node);
                self.wake.notify_one();
            }
            Event::Joined { node, pet } => self.presence.do_send(RemoteJoin {
                node: remote_viewer(&node),
                pet,
            }),
            Event::Left { node, pet } => self.presence.do_send(RemoteLeave {
                node: remote_viewer(&node),
                pet,
            }),
            Event::Treats {
                user, available, ..
            } => self.presence.do_send(TreatsChanged {
                user,
                available,
                elsewhere: true,
            }),
            Event::TreatsRefreshed { available, .. } => self.presence.do_send(TreatsRefreshed {
                available,
                elsewhere: true,
            }),
            Event::Revoked {
                user, revocation, ..
            } => {
                if let Some(end) = self.end_here.get() {
                    end(user, revocation);
                }
            }
            Event::Acquired { shards, .. } => self.rewatch(&shards),
            Event::Released { .. } => self.wake.notify_one(),
        }
    }

    /// A node left or died: the pets its sessions showed leave the active list (unless
    /// shown elsewhere), and its watches of our pets end.
    fn forget_node(&self, node: &str) {
        self.presence.do_send(RemoteGone {
            node: remote_viewer(node),
        });
        self.unrelay_node(node);
    }

    /// Stops this node: it takes no more shards and hands every one it holds to the others
    /// (their pets stopped, written and released), then leaves. Returns (shards, pets) handed
    /// off.
    pub async fn leave(self: &Arc<Self>) -> (usize, usize) {
        self.leaving.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let out = leases::leave(self).await;
        self.announce(&Event::Gone {
            node: self.cfg.node.clone(),
        });
        // Everything announced must reach NATS before the process exits.
        self.flushed(Duration::from_secs(2)).await;
        out
    }

    /// Waits (at most `within`) until everything published so far has reached NATS.
    async fn flushed(&self, within: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.outbox.send(Out::Flush(tx)).is_ok() {
            let _ = tokio::time::timeout(within, rx).await;
        }
    }
}

/// What the publishing task is given.
enum Out {
    Publish(String, Bytes),
    /// Answer once everything before it has reached the server.
    Flush(oneshot::Sender<()>),
}

/// Publishes what the node sends, in the order it was sent.
async fn publish_loop(nats: async_nats::Client, mut rx: mpsc::UnboundedReceiver<Out>) {
    while let Some(out) = rx.recv().await {
        match out {
            Out::Publish(subject, payload) => {
                if let Err(e) = nats.publish(subject, payload).await {
                    log::warn!("cluster: cannot publish to NATS: {e}");
                }
            }
            Out::Flush(done) => {
                let _ = nats.flush().await;
                let _ = done.send(());
            }
        }
    }
}

async fn event_loop(cluster: Arc<Cluster>, mut events: async_nats::Subscriber) {
    while let Some(msg) = events.next().await {
        match serde_json::from_slice::<Event>(&msg.payload) {
            Ok(event) => cluster.heard(event).await,
            Err(e) => log::warn!("cluster: ignoring an event that does not parse: {e}"),
        }
    }
    log::warn!("cluster: the event subscription ended");
}

/// Where a shard belongs among `nodes`: the node with the highest score for it (rendezvous
/// hashing). Every node computes the same answer from the same list, and when a node comes
/// or goes only the shards it wins or held move.
pub fn owner_of(shard: usize, nodes: &[String]) -> Option<&str> {
    nodes
        .iter()
        .max_by_key(|n| (score(n, shard), n.as_str()))
        .map(String::as_str)
}

/// A stable hash (FNV-1a, then a 64-bit mix with the shard): the same on every node and
/// every build, unlike the standard library's hasher.
fn score(node: &str, shard: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h ^ (shard as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::fence::SHARDS;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn shards_spread_over_the_nodes_and_only_a_leaving_nodes_shards_move() {
        let three = names(&["a", "b", "c"]);
        let two = names(&["a", "c"]);
        let mut per = HashMap::new();
        let mut moved = 0;
        for s in 0..SHARDS {
            let before = owner_of(s, &three).unwrap_or_default();
            *per.entry(before).or_insert(0) += 1;
            let after = owner_of(s, &two).unwrap_or_default();
            if before != "b" {
                assert_eq!(before, after, "shard {s} moved though its node stayed");
            } else {
                moved += 1;
            }
        }
        for n in ["a", "b", "c"] {
            let share = per[n];
            assert!((250..=440).contains(&share), "{n} owns {share} of 1024");
        }
        assert_eq!(moved, per["b"]);
    }
}
