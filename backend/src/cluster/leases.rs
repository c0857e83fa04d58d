//! Membership and shard leases: the loop that makes a node own its shards, and nothing else.
//!
//! Every heartbeat the node records itself in `cluster_nodes`, renews its unexpired leases,
//! and reads which nodes are alive. Each shard belongs to the rendezvous winner among them
//! ([`owner_of`]): the node hands off the shards it should not hold (stops their pets, writes
//! them under its lease, releases the lease, tells the others) and takes the free or expired
//! leases of the shards it should hold (at the next epoch, then loads and starts their pets).
//! A lease it failed to renew is lost: its pets stop at once and are not written (the next
//! owner loads them from the database). A watchdog does the same for every shard when no
//! renewal has succeeded for a lease's lifetime, measured from when the last successful one
//! was sent, so it fires no later than the database expires the lease, even if the database
//! is unreachable and the loop is stuck waiting for it.

use super::messages::Event;
use super::{lock, owner_of, Cluster};
use crate::actors::persister::Flush;
use crate::db::cluster::{self as db, Lease};
use crate::db::{queries, DbConn, DbUrl};
use crate::world::fence::{shard_of, SHARDS};
use crate::world::PetRecord;
use anyhow::Context as _;
use diesel::pg::PgConnection;
use diesel::Connection;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shards loaded per query when a node takes over shards: at a million pets, about 30,000
/// rows.
const LOAD_SHARDS: usize = 32;

/// The lease loop's own connection, opened again after a failure. Times out instead of
/// hanging when the database is unreachable.
struct LeaseDb {
    url: String,
    conn: Arc<Mutex<Option<PgConnection>>>,
}

impl LeaseDb {
    fn new(url: &DbUrl) -> Self {
        let raw = match url {
            DbUrl::Postgres(raw) => raw.clone(),
            DbUrl::Sqlite(_) => String::new(),
        };
        // Fail within seconds on a dead network instead of TCP's minutes; the watchdog does
        // not depend on it, but the loop should get going again soon after the database is
        // back.
        let sep = if raw.contains('?') { '&' } else { '?' };
        LeaseDb {
            url: format!(
                "{raw}{sep}connect_timeout=3&keepalives_idle=2&keepalives_interval=1&\
                 keepalives_count=2&tcp_user_timeout=4000"
            ),
            conn: Arc::new(Mutex::new(None)),
        }
    }

    async fn call<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> diesel::QueryResult<T> + Send + 'static,
    {
        let (url, conn) = (self.url.clone(), self.conn.clone());
        actix_web::rt::task::spawn_blocking(move || {
            let mut slot = lock(&conn);
            if slot.is_none() {
                *slot = Some(
                    PgConnection::establish(&url)
                        .context("cannot connect to PostgreSQL for the leases")?,
                );
            }
            let Some(c) = slot.as_mut() else {
                anyhow::bail!("no lease connection");
            };
            match f(c) {
                Ok(v) => Ok(v),
                Err(e) => {
                    // The connection may be broken: open a fresh one next time.
                    *slot = None;
                    Err(e.into())
                }
            }
        })
        .await
        .context("lease task failed")?
    }
}

/// Runs until the node leaves.
pub async fn run(c: Arc<Cluster>) {
    let db = LeaseDb::new(&c.url);
    let node = c.cfg.node.clone();
    let ttl_ms = c.cfg.lease_ttl.as_millis() as i64;
    let renewed = Arc::clone(&c.renewed);

    // A node of the same name that is still alive (or was killed a moment ago): its leases
    // carry its name, so wait until it has gone quiet rather than run twice under one name.
    let mut said = false;
    loop {
        let name = node.clone();
        match db
            .call(move |conn| db::last_heartbeat_of(conn, &name))
            .await
        {
            Ok(Some(ms)) if ms < ttl_ms => {
                if !said {
                    log::warn!(
                        "cluster: a node named {node} sent a heartbeat {ms} ms ago; waiting until \
                         it has been quiet for {ttl_ms} ms (if it is another running node, give \
                         this one another --node-name)"
                    );
                    said = true;
                }
            }
            Ok(_) => break,
            Err(e) => log::warn!("cluster: cannot read the nodes table yet ({e:#}); retrying"),
        }
        if c.leaving.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(c.cfg.heartbeat).await;
    }

    actix::spawn(watchdog(Arc::clone(&c), Arc::clone(&renewed)));
    let mut known: Vec<String> = Vec::new();
    let mut failing = false;
    let mut settled = false;
    let mut told = (0usize, 0usize, 0usize);
    loop {
        let began = Instant::now();
        {
            let _turn = c.turn.lock().await;
            if c.leaving.load(Ordering::SeqCst) {
                return;
            }
            let connected = matches!(
                c.nats.connection_state(),
                async_nats::connection::State::Connected
            );
            let beat = if connected {
                let (name, addr) = (node.clone(), c.addr.clone());
                db.call(move |conn| {
                    let alive = db::heartbeat(conn, &name, &addr, ttl_ms)?;
                    let leases = db::renew(conn, &name, ttl_ms)?;
                    Ok((alive, leases))
                })
                .await
            } else {
                Err(anyhow::anyhow!("NATS is unreachable"))
            };
            match beat {
                Err(e) => {
                    c.world.metrics.lease_renew_failures_total.inc();
                    if !failing {
                        failing = true;
                        log::error!(
                            "cluster: cannot renew this node's leases ({e:#}); its pets stop if \
                             this lasts {} ms",
                            ttl_ms
                        );
                    }
                }
                Ok((alive, leases)) => {
                    if failing {
                        failing = false;
                        log::info!("cluster: leases renewed again");
                    }
                    *lock(&renewed) = Some(began);
                    let still: HashMap<usize, i64> =
                        leases.iter().map(|l| (l.shard as usize, l.epoch)).collect();
                    let lost: Vec<usize> = held(&c)
                        .into_iter()
                        .filter(|s| still.get(s) != Some(&c.fence.epoch(*s)))
                        .collect();
                    if !lost.is_empty() {
                        drop_shards(&c, lost, "lost the lease of").await;
                    }
                    for gone in known.iter().filter(|n| !alive.contains(n)) {
                        log::info!("cluster: node {gone} is gone");
                        c.forget_node(gone);
                    }
                    for new in alive.iter().filter(|n| !known.contains(n) && **n != node) {
                        log::info!("cluster: node {new} is alive");
                    }
                    known = alive.clone();
                    *lock(&c.nodes) = alive.clone();
                    c.node_count.store(alive.len(), Ordering::SeqCst);
                    c.world.metrics.cluster_nodes.set(alive.len() as i64);

                    // The first heartbeat only announces this node: nodes starting together
                    // see each other before anyone takes shards, instead of one node loading
                    // everything and handing most of it off a moment later.
                    if settled {
                        let desired: BTreeSet<usize> = (0..SHARDS)
                            .filter(|s| owner_of(*s, &alive) == Some(node.as_str()))
                            .collect();
                        let mine: BTreeSet<usize> = held(&c).into_iter().collect();
                        let away: Vec<usize> = mine.difference(&desired).copied().collect();
                        if !away.is_empty() {
                            hand_off(&c, &db, away).await;
                        }
                        let want: Vec<usize> = desired.difference(&mine).copied().collect();
                        if !want.is_empty() {
                            acquire(&c, &db, want).await;
                        }
                        let now: BTreeSet<usize> = held(&c).into_iter().collect();
                        c.ready.store(now == desired, Ordering::SeqCst);
                    }
                    settled = true;
                }
            }
            let shards = c.fence.held();
            c.world.metrics.owned_shards.set(shards as i64);
            let pets = c.world.registry.len();
            let now = (c.node_count(), shards, pets);
            if now != told {
                told = now;
                log::info!(
                    "cluster: node {node}, {} node(s) alive, owns {shards} shard(s), {pets} pet(s)",
                    now.0
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until((began + c.cfg.heartbeat).into()) => {}
            _ = c.wake.notified() => {}
        }
    }
}

/// The shards this node holds now.
fn held(c: &Cluster) -> Vec<usize> {
    (0..SHARDS).filter(|s| c.fence.epoch(*s) != 0).collect()
}

/// Drops every shard once no renewal has succeeded for a lease's lifetime (counted from when
/// the last successful one was sent, so never later than the database expires the leases).
async fn watchdog(c: Arc<Cluster>, renewed: Arc<Mutex<Option<Instant>>>) {
    let every = (c.cfg.heartbeat / 2).max(Duration::from_millis(20));
    loop {
        tokio::time::sleep(every).await;
        if c.leaving.load(Ordering::SeqCst) {
            return;
        }
        let last = *lock(&renewed);
        if let Some(at) = last {
            if at.elapsed() >= c.cfg.lease_ttl && c.fence.held() > 0 {
                let shards = held(&c);
                drop_shards(
                    &c,
                    shards,
                    "lost the lease (no renewal for a whole lease term) of",
                )
                .await;
            }
        }
    }
}

/// Stops answering for these shards, then stops their pets (see [`World::stop_pets`]);
/// returns how many pets stopped.
///
/// [`World::stop_pets`]: crate::world::World::stop_pets
async fn stop_shards(c: &Arc<Cluster>, shards: &[usize]) -> usize {
    let mut leaving = vec![false; SHARDS];
    for s in shards {
        leaving[*s] = true;
    }
    c.stop_serving(shards).await;
    let world = Arc::clone(&c.world);
    actix_web::rt::task::spawn_blocking(move || world.stop_pets(|id| leaving[shard_of(id)]))
        .await
        .unwrap_or(0)
}

/// Lets shards go without writing their pets: their leases are no longer this node's (or may
/// not be), so the database holds the truth and the next owner loads it.
async fn drop_shards(c: &Arc<Cluster>, shards: Vec<usize>, why: &str) {
    for s in &shards {
        c.fence.set(*s, 0);
    }
    let stopped = stop_shards(c, &shards).await;
    c.world
        .metrics
        .shards_lost_total
        .inc_by(shards.len() as u64);
    c.ready.store(false, Ordering::SeqCst);
    log::warn!(
        "cluster: {why} {} shard(s); stopped their {stopped} pet(s) without writing them (their \
         next owner loads them from the database)",
        shards.len()
    );
}

/// Hands shards to the nodes that should own them: stops serving their pets, stops the pets,
/// writes them under this node's leases, releases the leases and says so, so the new owner
/// starts them at once from exactly the state they stopped in. Returns how many pets moved.
async fn hand_off(c: &Arc<Cluster>, db: &LeaseDb, shards: Vec<usize>) -> usize {
    let began = Instant::now();
    let stopped = stop_shards(c, &shards).await;
    match c.world.persister.send(Flush).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => log::error!(
            "cluster: writing the pets of {} shard(s) before handing them off failed ({e}); their \
             next owner starts them from their last written state",
            shards.len()
        ),
        Err(e) => log::error!("cluster: the persister is gone ({e})"),
    }
    let leases: Vec<Lease> = shards
        .iter()
        .map(|s| Lease {
            shard: *s as i64,
            epoch: c.fence.epoch(*s),
        })
        .collect();
    for s in &shards {
        c.fence.set(*s, 0);
    }
    let name = c.cfg.node.clone();
    if let Err(e) = db.call(move |conn| db::release(conn, &name, &leases)).await {
        log::warn!(
            "cluster: cannot release {} lease(s) ({e:#}); they expire on their own",
            shards.len()
        );
    }
    c.announce(&Event::Released {
        node: c.cfg.node.clone(),
        shards: shards.clone(),
    });
    c.world
        .metrics
        .shards_handed_off_total
        .inc_by(shards.len() as u64);
    log::info!(
        "handed off {} shard(s) ({stopped} pet(s)) in {:.3} s",
        shards.len(),
        began.elapsed().as_secs_f64()
    );
    stopped
}

/// Takes the free leases among `shards`, loads and starts their pets, serves their subjects
/// and says so (so watches of their pets are renewed here).
async fn acquire(c: &Arc<Cluster>, db: &LeaseDb, shards: Vec<usize>) {
    let began = Instant::now();
    let (name, ttl_ms) = (c.cfg.node.clone(), c.cfg.lease_ttl.as_millis() as i64);
    let wanted: Vec<i64> = shards.iter().map(|s| *s as i64).collect();
    let got = match db
        .call(move |conn| db::acquire(conn, &name, &wanted, ttl_ms))
        .await
    {
        Ok(got) => got,
        Err(e) => {
            log::warn!("cluster: cannot take leases ({e:#}); trying again next heartbeat");
            return;
        }
    };
    if got.is_empty() {
        return;
    }
    for l in &got {
        c.fence.set(l.shard as usize, l.epoch);
    }
    let taken: Vec<usize> = got.iter().map(|l| l.shard as usize).collect();
    let (url, world, chunks) = (
        c.url.clone(),
        Arc::clone(&c.world),
        taken
            .chunks(LOAD_SHARDS)
            .map(|c| c.iter().map(|s| *s as i64).collect::<Vec<_>>())
            .collect::<Vec<_>>(),
    );
    let loaded = actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<usize> {
        let mut conn: DbConn = crate::db::establish(&url)?;
        let mut started = 0;
        for chunk in chunks {
            let rows = queries::live_pets_of_shards(&mut conn, &chunk)
                .context("reading the pets of the shards taken")?;
            let mut recs = Vec::with_capacity(rows.len());
            for row in rows {
                match PetRecord::try_from(row) {
                    Ok(rec) => recs.push(rec),
                    Err(e) => log::error!("{e}; pet {} not started", e.id),
                }
            }
            started += world.start_pets(recs);
        }
        Ok(started)
    })
    .await
    .context("pet loader task failed");
    let started = match loaded.and_then(|r| r) {
        Ok(n) => n,
        Err(e) => {
            // Without its pets the shard must not be served: give the leases back.
            log::error!(
                "cluster: cannot load the pets of {} shard(s): {e:#}",
                taken.len()
            );
            drop_shards(c, taken, "could not load").await;
            return;
        }
    };
    c.serve(&taken).await;
    c.announce(&Event::Acquired {
        node: c.cfg.node.clone(),
        shards: taken.clone(),
    });
    // Sessions here may watch pets of these shards through another node: watch them here
    // now (a node does not hear its own events).
    c.rewatch(&taken);
    c.world
        .metrics
        .shards_acquired_total
        .inc_by(taken.len() as u64);
    log::info!(
        "cluster: took {} shard(s), started {started} pet(s) in {:.3} s",
        taken.len(),
        began.elapsed().as_secs_f64()
    );
}

/// The node is stopping: no more heartbeats; it leaves the membership (so the others place
/// its shards among themselves) and hands off every shard. Returns (shards, pets) handed off.
pub async fn leave(c: &Arc<Cluster>) -> (usize, usize) {
    let _turn = c.turn.lock().await;
    let db = LeaseDb::new(&c.url);
    let name = c.cfg.node.clone();
    if let Err(e) = db.call(move |conn| db::leave(conn, &name)).await {
        log::warn!("cluster: cannot record that this node leaves ({e:#})");
    }
    let shards = held(c);
    if shards.is_empty() {
        return (0, 0);
    }
    log::info!("cluster: handing off {} shard(s)", shards.len());
    let n = shards.len();
    let pets = hand_off(c, &db, shards).await;
    c.world.metrics.owned_shards.set(0);
    (n, pets)
}
