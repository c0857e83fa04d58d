//! The world under test, all real: a `nats-server` of its own, a fresh PostgreSQL database
//! (dropped afterwards) seeded by the real `livepet seed`, and three real `livepet serve`
//! processes (`a`, `b`, `c`) joined through NATS. Plus what the scenarios read: `/readyz`,
//! `/metrics`, the `shard_leases` / `cluster_nodes` / `pets` rows, and WebSockets.
//!
//! Every wait is a bounded poll of something observable (a log line, a metric, a row, a
//! frame) with a deadline; nothing waits by sleeping a guessed time.
//!
//! One cluster runs at a time (a lock held by [`Cluster`]): three debug servers per test
//! already keep a 2-core box busy, and the scenarios measure timing (leases, flushes).

use crate::client::Client;
use crate::nats::NatsServer;
use crate::pgdb::PgDb;
use crate::process::{livepet, ServerProcess};
use actix_codec::Framed;
use awc::ws::{Codec, Frame, Message};
use awc::BoxedSocket;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Text};
use futures_util::{SinkExt, StreamExt};
use livepet_shared::wire::{PetView, ServerMsg};
use livepet_shared::{PetId, Rules};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Shards pets fall into (`id % 1024`).
pub const SHARDS: i64 = 1024;
/// The timing every node runs with: fast enough that leases expire and flushes happen
/// within a test, with heartbeats well inside the lease.
pub const TICK_MS: u64 = 200;
pub const PERSIST_MS: u64 = 1_000;
pub const LEASE_TTL_MS: u64 = 2_000;
pub const HEARTBEAT_MS: u64 = 300;
/// Seeded owners (each with [`PETS_PER_OWNER`] pets), besides the users the scenarios sign up.
pub const SEED_OWNERS: usize = 3;
pub const PETS_PER_OWNER: u64 = 400;
/// How long three fresh nodes may take to agree on who owns what (debug builds on 2 cores).
pub const SETTLE: Duration = Duration::from_secs(90);
/// How long anything smaller (a frame, a log line, a presence change) may take.
pub const STEP: Duration = Duration::from_secs(15);
/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(100);
/// The node names, in start order.
pub const NODES: [&str; 3] = ["a", "b", "c"];

/// One cluster at a time (see the module comment). An async lock: a test holds it across
/// awaits, and each test has its own runtime.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Writes a line straight to stderr, past the test harness's capture, so skips and measured
/// figures show in the log even when the test passes.
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Skips the test with a loud line, or fails it under `CI`, where every piece must be there.
fn skip<T>(why: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("the cluster tests need this under CI: {why}");
    }
    report(&format!("SKIPPED(cluster): {why}"));
    None
}

/// Wall-clock milliseconds since the Unix epoch (the servers stamp states with the same
/// clock: they run on this machine).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The shard of a pet.
pub fn shard_of(id: PetId) -> i64 {
    id.0.rem_euclid(SHARDS)
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

/// Records every UPDATE that moves a pet's stored age backwards. Ages only grow (a tick adds
/// one, nothing takes any away), so such a write is a stale state: a node writing pets it no
/// longer owns, or a new owner that started from an older state than the last one written.
/// A trigger sees every write, not only those a poll happens to catch.
const AGE_PROBE: &str = "
CREATE TABLE test_age_regressions (
    id BIGINT NOT NULL,
    old_age INT NOT NULL,
    new_age INT NOT NULL,
    old_updated_at BIGINT NOT NULL,
    new_updated_at BIGINT NOT NULL,
    seen_at_ms BIGINT NOT NULL
);
CREATE FUNCTION test_record_age_regression() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_age_regressions
    VALUES (OLD.id, OLD.age, NEW.age, OLD.updated_at, NEW.updated_at,
            (extract(epoch from clock_timestamp()) * 1000)::int8);
    RETURN NEW;
END
$$;
CREATE TRIGGER test_age_regressions AFTER UPDATE ON pets
    FOR EACH ROW WHEN (NEW.age < OLD.age) EXECUTE FUNCTION test_record_age_regression();
";

/// `(extract(epoch …) * 1000)`: PostgreSQL's clock in ms, the clock leases are kept on.
const PG_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::int8";

/// One row of `shard_leases`, with what PostgreSQL says about it now.
#[derive(Debug, Clone, QueryableByName)]
pub struct Lease {
    #[diesel(sql_type = BigInt)]
    pub shard: i64,
    #[diesel(sql_type = Text)]
    pub node: String,
    #[diesel(sql_type = BigInt)]
    pub epoch: i64,
    /// `expires_at` is in the future on PostgreSQL's clock.
    #[diesel(sql_type = Bool)]
    pub unexpired: bool,
    /// The node's `cluster_nodes` row says `up` with a heartbeat within one lease TTL.
    #[diesel(sql_type = Bool)]
    pub node_alive: bool,
}

/// The stored state of a pet.
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct PetRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Integer)]
    pub age: i32,
    #[diesel(sql_type = BigInt)]
    pub updated_at: i64,
}

/// A write the [`AGE_PROBE`] caught (read through `Debug`, in failure messages).
#[allow(dead_code)]
#[derive(Debug, Clone, QueryableByName)]
pub struct Regression {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Integer)]
    pub old_age: i32,
    #[diesel(sql_type = Integer)]
    pub new_age: i32,
    #[diesel(sql_type = BigInt)]
    pub old_updated_at: i64,
    #[diesel(sql_type = BigInt)]
    pub new_updated_at: i64,
    #[diesel(sql_type = BigInt)]
    pub seen_at_ms: i64,
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(Debug, QueryableByName)]
struct NodeCount {
    #[diesel(sql_type = Text)]
    node: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct NodeRow {
    #[diesel(sql_type = Text)]
    pub node: String,
    #[diesel(sql_type = Text)]
    pub addr: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    /// Heartbeat within one lease TTL of PostgreSQL's now.
    #[diesel(sql_type = Bool)]
    pub fresh: bool,
}

// ---------------------------------------------------------------------------------------
// Metrics

/// A metric without labels from Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The sum of a metric's samples whose labels include every `labels` pair (0 when none).
pub fn metric_with(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let labels_text = rest.strip_prefix('{')?.strip_suffix('}')?;
            labels
                .iter()
                .all(|(k, v)| {
                    labels_text
                        .split(',')
                        .any(|pair| pair.trim() == format!("{k}=\"{v}\""))
                })
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// An HTTP client that never waits long: a node may be dead or paused.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Nodes

/// One `livepet serve` of the cluster.
pub struct Node {
    pub name: &'static str,
    pub server: ServerProcess,
}

/// What `/readyz` answered.
#[derive(Debug, Clone)]
pub struct Ready {
    pub status: u16,
    pub body: Value,
}

impl Node {
    pub fn base(&self) -> &str {
        &self.server.base
    }

    /// `/metrics`, or `None` if the node does not answer.
    pub async fn try_metrics(&self) -> Option<String> {
        let res = http()
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .ok()?;
        res.text().await.ok()
    }

    /// `/metrics` (the node must answer).
    pub async fn metrics(&self) -> String {
        match self.try_metrics().await {
            Some(t) => t,
            None => panic!(
                "node {} does not answer /metrics; its log:\n{}",
                self.name,
                self.server.log()
            ),
        }
    }

    /// A metric without labels (the node must answer and have it).
    pub async fn gauge(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        metric(&text, name).unwrap_or_else(|| panic!("node {}: no {name} in /metrics", self.name))
    }

    /// `/readyz`, or `None` if the node does not answer.
    pub async fn readyz(&self) -> Option<Ready> {
        let res = http()
            .get(format!("{}/readyz", self.base()))
            .send()
            .await
            .ok()?;
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        Some(Ready { status, body })
    }

    /// How many lines the node has logged so far: a mark for [`logged_after`](Self::logged_after).
    pub fn log_mark(&self) -> usize {
        self.server.log().lines().count()
    }

    /// The node's log lines after `mark` that contain `needle`.
    pub fn logged_after(&self, mark: usize, needle: &str) -> Vec<String> {
        self.server
            .log()
            .lines()
            .skip(mark)
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    pub fn signal(&self, sig: &str) {
        self.server.signal(sig);
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.server.wait_exit(timeout).await
    }

    /// The last `n` lines of its log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.server.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// What the cluster looked like once it settled.
#[derive(Debug, Clone)]
pub struct Settled {
    /// Shards each node holds (its `livepet_owned_shards`).
    pub owned: BTreeMap<String, i64>,
    /// Pets each node runs (its `livepet_pets_alive`).
    pub alive: BTreeMap<String, i64>,
    /// Live pets in the database.
    pub total: i64,
    /// How long settling took.
    pub took: Duration,
}

/// The whole world under test. Fields drop in order: the servers first, then NATS, then the
/// database (with `WITH (FORCE)`), then the lock that lets the next test start its cluster.
pub struct Cluster {
    nodes: Vec<Node>,
    nats: NatsServer,
    conn: Mutex<PgConnection>,
    /// Kept for its drop (the database goes with the cluster).
    _db: PgDb,
    _mail: tempfile::TempDir,
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// NATS, a seeded database and nodes `a`, `b`, `c`, settled: every node ready, every
    /// shard leased once, every live pet running once. `None` (with a loud line) when
    /// PostgreSQL or nats-server is missing outside CI; under `CI` that fails the test.
    pub async fn start(test: &str) -> Option<Cluster> {
        let lock = ONE_CLUSTER_AT_A_TIME.lock().await;
        let nats_bin = NatsServer::binary();
        if !nats_bin.is_file() {
            return skip(&format!(
                "{test}: nats-server not found at {} (apt-get install -y nats-server, or set \
                 NATS_SERVER)",
                nats_bin.display()
            ));
        }
        let db = match PgDb::create("livepet_cluster") {
            Ok(db) => db,
            Err(why) => return skip(&why),
        };
        // The real seeding code path, one owner at a time (`seed` makes one owner per run);
        // it also creates the schema (every subcommand migrates first).
        for owner in 0..SEED_OWNERS {
            let out = livepet()
                .args([
                    "seed",
                    "--pets",
                    &PETS_PER_OWNER.to_string(),
                    "--owner",
                    &format!("seed-{owner}@example.com"),
                    "--database-url",
                    &db.url,
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "livepet seed failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut conn = db.connect();
        conn.batch_execute(AGE_PROBE).unwrap();
        let nats = NatsServer::start();
        let mail = tempfile::tempdir().unwrap();
        let starts = NODES.map(|name| {
            let url = db.url.clone();
            let nats_url = nats.url.clone();
            let mail_dir = mail.path().display().to_string();
            async move {
                let args = node_args(name, &nats_url, &mail_dir);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Node {
                    name,
                    server: ServerProcess::start(&url, &args).await,
                }
            }
        });
        let nodes = futures_util::future::join_all(starts).await;
        let cluster = Cluster {
            nodes,
            nats,
            conn: Mutex::new(conn),
            _db: db,
            _mail: mail,
            _one_at_a_time: lock,
        };
        let settled = cluster.wait_settled(&NODES, SETTLE).await;
        report(&format!(
            "cluster({test}): settled in {:.1} s: shards {:?}, pets {:?}, {} live pets",
            settled.took.as_secs_f64(),
            settled.owned,
            settled.alive,
            settled.total
        ));
        Some(cluster)
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Runs `f` on the test's own connection to the database.
    fn sql<T>(&self, f: impl FnOnce(&mut PgConnection) -> QueryResult<T>) -> T {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).unwrap_or_else(|e| panic!("test query failed: {e}"))
    }

    /// Every row of `shard_leases`, by shard.
    pub fn leases(&self) -> Vec<Lease> {
        let q = format!(
            "SELECT l.shard, l.node, l.epoch, l.expires_at > {PG_NOW_MS} AS unexpired, \
             COALESCE(n.status = 'up' AND n.heartbeat_at > {PG_NOW_MS} - $1, false) \
             AS node_alive \
             FROM shard_leases l LEFT JOIN cluster_nodes n ON n.node = l.node \
             ORDER BY l.shard"
        );
        self.sql(|c| {
            diesel::sql_query(q)
                .bind::<BigInt, _>(LEASE_TTL_MS as i64)
                .load(c)
        })
    }

    /// Every row of `cluster_nodes`.
    pub fn node_rows(&self) -> Vec<NodeRow> {
        let q = format!(
            "SELECT node, addr, status, heartbeat_at > {PG_NOW_MS} - $1 AS fresh \
             FROM cluster_nodes ORDER BY node"
        );
        self.sql(|c| {
            diesel::sql_query(q)
                .bind::<BigInt, _>(LEASE_TTL_MS as i64)
                .load(c)
        })
    }

    /// The shards `node` holds an unexpired lease on.
    pub fn shards_of(&self, node: &str) -> Vec<i64> {
        self.leases()
            .into_iter()
            .filter(|l| l.node == node && l.unexpired)
            .map(|l| l.shard)
            .collect()
    }

    /// The node holding an unexpired lease on this pet's shard.
    pub fn owner_of(&self, id: PetId) -> Option<String> {
        let q =
            format!("SELECT node FROM shard_leases WHERE shard = $1 AND expires_at > {PG_NOW_MS}");
        #[derive(QueryableByName)]
        struct Owner {
            #[diesel(sql_type = Text)]
            node: String,
        }
        let rows: Vec<Owner> =
            self.sql(|c| diesel::sql_query(q).bind::<BigInt, _>(shard_of(id)).load(c));
        rows.into_iter().next().map(|o| o.node)
    }

    /// Live pets in the database.
    pub fn live_pets(&self) -> i64 {
        let rows: Vec<Count> = self
            .sql(|c| diesel::sql_query("SELECT count(*) AS n FROM pets WHERE is_alive").load(c));
        rows[0].n
    }

    /// Live pets in the database by the node holding their shard's lease.
    pub fn live_pets_by_lease(&self) -> BTreeMap<String, i64> {
        let rows: Vec<NodeCount> = self.sql(|c| {
            diesel::sql_query(
                "SELECT l.node, count(*) AS n FROM pets p \
                 JOIN shard_leases l ON l.shard = p.id % 1024 \
                 WHERE p.is_alive GROUP BY l.node",
            )
            .load(c)
        });
        rows.into_iter().map(|r| (r.node, r.n)).collect()
    }

    /// The stored state of the live pets of these shards, by id.
    pub fn pets_in_shards(&self, shards: &[i64]) -> BTreeMap<i64, PetRow> {
        let rows: Vec<PetRow> = self.sql(|c| {
            diesel::sql_query(
                "SELECT id, age, updated_at FROM pets \
                 WHERE is_alive AND (id % 1024) = ANY($1) ORDER BY id",
            )
            .bind::<Array<BigInt>, _>(shards.to_vec())
            .load(c)
        });
        rows.into_iter().map(|r| (r.id, r)).collect()
    }

    /// Every write so far that moved a stored age backwards (see [`AGE_PROBE`]).
    pub fn age_regressions(&self) -> Vec<Regression> {
        self.sql(|c| {
            diesel::sql_query(
                "SELECT id, old_age, new_age, old_updated_at, new_updated_at, seen_at_ms \
                 FROM test_age_regressions ORDER BY seen_at_ms",
            )
            .load(c)
        })
    }

    /// No stored age ever went backwards: no node wrote a pet it did not own, and no new
    /// owner started a pet from an older state than the last one written.
    pub fn assert_no_stale_writes(&self) {
        let found = self.age_regressions();
        assert!(
            found.is_empty(),
            "{} write(s) moved a stored pet age backwards (a stale state written), first: \
             {:?}",
            found.len(),
            &found[..found.len().min(10)]
        );
    }

    /// Waits until the nodes `names` (and no others) run the world: each answers `/readyz`
    /// 200 (ready, seeing `names.len()` nodes) and sees that many nodes in
    /// `livepet_cluster_nodes`; the database has 1,024 unexpired leases, all held by these
    /// nodes, each node's count matching its `livepet_owned_shards`; and the nodes'
    /// `livepet_pets_alive` add up to the live pets in the database, each node running
    /// exactly the live pets of its shards. Only the nodes named are asked (a paused one would
    /// hang a request).
    pub async fn wait_settled(&self, names: &[&str], timeout: Duration) -> Settled {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            let last_why = match self.settled_now(names).await {
                Ok(mut s) => {
                    s.took = start.elapsed();
                    return s;
                }
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                let logs: Vec<String> = names
                    .iter()
                    .map(|n| format!("--- node {n} (last lines):\n{}", self.node(n).log_tail(40)))
                    .collect();
                panic!(
                    "nodes {names:?} did not settle within {timeout:?}: {last_why}\n{}\n\
                     --- nats-server on port {}:\n{}",
                    logs.join("\n"),
                    self.nats.port,
                    self.nats.log()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One look at whether `names` run the world (see [`wait_settled`]); why not, if not.
    async fn settled_now(&self, names: &[&str]) -> Result<Settled, String> {
        let want_nodes = names.len() as f64;
        let mut owned = BTreeMap::new();
        let mut alive = BTreeMap::new();
        for name in names {
            let node = self.node(name);
            let ready = node
                .readyz()
                .await
                .ok_or_else(|| format!("{name}: /readyz does not answer"))?;
            if ready.status != 200 || ready.body["ready"] != json!(true) {
                return Err(format!("{name}: /readyz {} {}", ready.status, ready.body));
            }
            if ready.body["nodes"].as_f64() != Some(want_nodes) || ready.body["node"] != *name {
                return Err(format!("{name}: /readyz says {}", ready.body));
            }
            let text = node
                .try_metrics()
                .await
                .ok_or_else(|| format!("{name}: /metrics does not answer"))?;
            let seen = metric(&text, "livepet_cluster_nodes");
            if seen != Some(want_nodes) {
                return Err(format!("{name}: livepet_cluster_nodes {seen:?}"));
            }
            let o = metric(&text, "livepet_owned_shards")
                .ok_or_else(|| format!("{name}: no livepet_owned_shards"))?;
            let p = metric(&text, "livepet_pets_alive")
                .ok_or_else(|| format!("{name}: no livepet_pets_alive"))?;
            owned.insert(name.to_string(), o as i64);
            alive.insert(name.to_string(), p as i64);
        }
        let leases = self.leases();
        if leases.len() as i64 != SHARDS {
            return Err(format!("{} lease rows, not {SHARDS}", leases.len()));
        }
        if let Some(l) = leases
            .iter()
            .find(|l| !l.unexpired || !names.contains(&l.node.as_str()))
        {
            return Err(format!("lease {l:?} is expired or not held by {names:?}"));
        }
        let mut by_lease: BTreeMap<String, i64> = BTreeMap::new();
        for l in &leases {
            *by_lease.entry(l.node.clone()).or_default() += 1;
        }
        for name in names {
            let leased = by_lease.get(*name).copied().unwrap_or(0);
            if owned[*name] != leased {
                return Err(format!(
                    "{name}: livepet_owned_shards {} but {leased} leases",
                    owned[*name]
                ));
            }
        }
        let sum_owned: i64 = owned.values().sum();
        if sum_owned != SHARDS {
            return Err(format!("owned shards add up to {sum_owned}: {owned:?}"));
        }
        let total = self.live_pets();
        let sum_alive: i64 = alive.values().sum();
        if sum_alive != total {
            return Err(format!(
                "pets alive add up to {sum_alive} ({alive:?}), the database has {total} live"
            ));
        }
        let expected = self.live_pets_by_lease();
        for name in names {
            let want = expected.get(*name).copied().unwrap_or(0);
            if alive[*name] != want {
                return Err(format!(
                    "{name}: {} pets alive, its shards hold {want} live pets",
                    alive[*name]
                ));
            }
        }
        Ok(Settled {
            owned,
            alive,
            total,
            took: Duration::ZERO,
        })
    }

    // -----------------------------------------------------------------------------------
    // Users

    /// A browser talking to `node`.
    pub fn browser(&self, node: &str) -> Client {
        Client::new(self.node(node).base())
    }

    /// A new user signed up on `node` (its browser keeps the session cookie).
    pub async fn sign_up(&self, node: &str, email: &str) -> Client {
        let mut c = self.browser(node);
        c.sign_up(email).await;
        c
    }

    /// The same browser session (cookie), talking to another node.
    pub fn same_session_on(&self, client: &Client, node: &str) -> Client {
        let mut c = self.browser(node);
        c.cookie = client.cookie.clone();
        c
    }

    /// Adopts pets through `client`'s node until `n` of them landed on shards `owner` holds;
    /// returns those. Every adoption is checked to be running on exactly the node holding its
    /// shard (the nodes' pets alive still match their shards).
    pub async fn adopt_owned_by(&self, client: &mut Client, owner: &str, n: usize) -> Vec<PetView> {
        let mut mine = Vec::new();
        let mut tries = 0;
        while mine.len() < n {
            tries += 1;
            assert!(
                tries <= 30 * n + 30,
                "{tries} adoptions and only {} landed on node {owner}'s shards",
                mine.len()
            );
            let pet = client.adopt(&format!("Probe {tries}"), "cat").await;
            let holder = self
                .owner_of(pet.id)
                .unwrap_or_else(|| panic!("pet {} is on a shard nobody leases", pet.id.0));
            if holder == owner {
                mine.push(pet);
            }
        }
        mine
    }
}

impl Drop for Cluster {
    /// A failed test shows what each node logged last (before they are killed).
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                report(&format!(
                    "--- node {} (last lines of its log):\n{}",
                    node.name,
                    node.log_tail(400)
                ));
            }
        }
    }
}

/// The command line of node `name`.
fn node_args(name: &str, nats_url: &str, mail_dir: &str) -> Vec<String> {
    [
        "--nats-url",
        nats_url,
        "--node-name",
        name,
        "--tick-ms",
        &TICK_MS.to_string(),
        "--persist-ms",
        &PERSIST_MS.to_string(),
        "--lease-ttl-ms",
        &LEASE_TTL_MS.to_string(),
        "--heartbeat-ms",
        &HEARTBEAT_MS.to_string(),
        "--mail-dir",
        mail_dir,
        // The scenarios sign up and adopt more than a person would.
        "--auth-attempts-per-minute",
        "100000",
        "--adoptions-per-minute",
        "100000",
        "--max-pets-per-user",
        "100000",
        "--shutdown-timeout-s",
        "10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

// ---------------------------------------------------------------------------------------
// WebSockets

/// A live `/ws` of one browser on one node.
pub struct Socket {
    framed: Framed<BoxedSocket, Codec>,
    /// Who this is, for failure messages.
    pub who: String,
}

impl Socket {
    /// Opens `/ws` with the browser's cookie and its node's own origin.
    pub async fn open(client: &Client, who: &str) -> Socket {
        let (res, framed) = client
            .ws_request(Some(&client.base))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{who}: the /ws upgrade failed: {e}"));
        assert_eq!(res.status(), 101, "{who}: /ws upgrade");
        Socket {
            framed,
            who: who.to_string(),
        }
    }

    /// Opens `/ws` and reads its greeting: the ids on its page of the active list, the
    /// active count, and the user's treats.
    pub async fn greeted(client: &Client, who: &str) -> (Socket, Vec<PetId>, u64, u32) {
        let mut s = Socket::open(client, who).await;
        let (page, total) = s
            .until("the active list", STEP, |m| match m {
                ServerMsg::ActivePets { pets, total, .. } => {
                    Some((pets.iter().map(|p| p.id).collect::<Vec<_>>(), *total))
                }
                _ => None,
            })
            .await;
        let treats = s
            .until("the treat count", STEP, |m| match m {
                ServerMsg::Treats { available } => Some(*available),
                _ => None,
            })
            .await;
        (s, page, total, treats)
    }

    /// Closes the socket (a browser tab closing).
    pub async fn close(mut self) {
        let _ = self.framed.send(Message::Close(None)).await;
    }

    pub async fn send(&mut self, v: Value) {
        self.framed
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("{}: sending failed: {e}", self.who));
    }

    /// The next message before `deadline`, or `None` if none came; answers pings on the way.
    /// A closed socket fails the test.
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<ServerMsg> {
        loop {
            let frame = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .ok()?;
            match frame {
                None | Some(Err(_)) => panic!("{}: the socket broke", self.who),
                Some(Ok(Frame::Close(r))) => {
                    panic!("{}: the server closed the socket: {r:?}", self.who)
                }
                Some(Ok(Frame::Text(t))) => {
                    return Some(serde_json::from_slice(&t).unwrap_or_else(|e| {
                        panic!(
                            "{}: a frame that is not a ServerMsg ({e}): {}",
                            self.who,
                            String::from_utf8_lossy(&t)
                        )
                    }))
                }
                Some(Ok(Frame::Ping(p))) => {
                    let _ = self.framed.send(Message::Pong(p)).await;
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Skips messages until `f` picks one, within `timeout`. An `error` frame fails the test
    /// unless `f` picks it.
    pub async fn until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&ServerMsg) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.next_before(deadline).await {
                Some(m) => {
                    if let Some(v) = f(&m) {
                        return v;
                    }
                    if let ServerMsg::Error { code, message } = &m {
                        panic!(
                            "{}: error {code:?} ({message}) while waiting for {what}",
                            self.who
                        );
                    }
                }
                None => panic!("{}: no {what} within {timeout:?}", self.who),
            }
        }
    }

    /// Watches a pet; its first frame.
    pub async fn watch(&mut self, id: PetId) -> PetView {
        self.send(json!({"type": "watch", "pet_id": id.0})).await;
        self.pet_frame(id).await
    }

    /// The next frame of this pet.
    pub async fn pet_frame(&mut self, id: PetId) -> PetView {
        self.until(&format!("a frame of pet {}", id.0), STEP, |m| match m {
            ServerMsg::Pet { pet } if pet.id == id => Some(pet.clone()),
            _ => None,
        })
        .await
    }

    /// Reads frames of the pets in `ages` (appending each frame's age to its pet's list)
    /// until `done` says so; fails after `timeout`. Other messages are skipped.
    pub async fn record_until(
        &mut self,
        ages: &mut Ages,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&Ages) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !done(ages) {
            match self.next_before(deadline).await {
                Some(ServerMsg::Pet { pet }) => ages.push(&pet),
                Some(ServerMsg::Error { code, message }) => {
                    panic!(
                        "{}: error {code:?} ({message}) while recording {what}",
                        self.who
                    )
                }
                Some(_) => {}
                None => panic!(
                    "{}: {what} did not happen within {timeout:?}; frames so far: {}",
                    self.who,
                    ages.describe()
                ),
            }
        }
    }

    /// Reads whatever arrives for `d` (frames of the pets in `ages` are recorded).
    pub async fn record_for(&mut self, ages: &mut Ages, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Some(m) = self.next_before(deadline).await {
            if let ServerMsg::Pet { pet } = m {
                ages.push(&pet);
            }
        }
    }
}

/// The frames received per watched pet, in arrival order.
#[derive(Debug, Default, Clone)]
pub struct Ages {
    pub frames: BTreeMap<PetId, Vec<PetView>>,
}

impl Ages {
    pub fn new(ids: impl IntoIterator<Item = PetId>) -> Ages {
        Ages {
            frames: ids.into_iter().map(|id| (id, Vec::new())).collect(),
        }
    }

    /// Records a frame of a pet being followed (others are ignored).
    pub fn push(&mut self, pet: &PetView) {
        if let Some(v) = self.frames.get_mut(&pet.id) {
            v.push(pet.clone());
        }
    }

    pub fn count(&self, id: PetId) -> usize {
        self.frames.get(&id).map_or(0, Vec::len)
    }

    /// The last age seen of a pet.
    pub fn last_age(&self, id: PetId) -> Option<u32> {
        self.frames.get(&id).and_then(|v| v.last()).map(|p| p.age)
    }

    /// The highest age seen of a pet.
    pub fn max_age(&self, id: PetId) -> Option<u32> {
        self.frames
            .get(&id)
            .and_then(|v| v.iter().map(|p| p.age).max())
    }

    /// Each pet's ages, for failure messages.
    pub fn describe(&self) -> String {
        self.frames
            .iter()
            .map(|(id, v)| {
                let ages: Vec<u32> = v.iter().map(|p| p.age).collect();
                format!("pet {}: {ages:?}", id.0)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// How much a frame's hunger is below what ticks alone would have made of the previous
/// frame's: what a feed or treat took off between the two (0 when nothing did).
pub fn hunger_taken(prev: &PetView, next: &PetView) -> i64 {
    let r = Rules::default();
    let ticks = i64::from(next.age) - i64::from(prev.age);
    let ticked = (i64::from(prev.hunger) + ticks * i64::from(r.hunger_per_tick))
        .min(i64::from(r.max_hunger));
    ticked - i64::from(next.hunger)
}

/// Reads a pet's frames until one shows a feed or treat of `amount` applied (within a
/// tick's rounding at the hunger cap); returns (previous, that) frame.
pub async fn wait_hunger_taken(
    socket: &mut Socket,
    id: PetId,
    mut prev: PetView,
    amount: u32,
) -> (PetView, PetView) {
    let r = Rules::default();
    let need = i64::from(amount) - i64::from(r.hunger_per_tick);
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let next = match socket.next_before(deadline).await {
            Some(ServerMsg::Pet { pet }) if pet.id == id => pet,
            Some(ServerMsg::Error { code, message }) => panic!(
                "{}: error {code:?} ({message}) while waiting for pet {}'s hunger to drop",
                socket.who, id.0
            ),
            Some(_) => continue,
            None => panic!(
                "{}: no frame of pet {} showed {amount} hunger taken off within {STEP:?} \
                 (last frame: age {}, hunger {})",
                socket.who, id.0, prev.age, prev.hunger
            ),
        };
        assert!(
            next.age >= prev.age,
            "{}: pet {} went from age {} to {}",
            socket.who,
            id.0,
            prev.age,
            next.age
        );
        let taken = hunger_taken(&prev, &next);
        // Nothing else feeds this pet: a drop that is not the one waited for is a bug.
        assert!(
            taken == 0 || taken >= need,
            "{}: pet {}'s hunger dropped by {taken} (age {} hunger {} -> age {} hunger {}), \
             expected 0 or about {amount}",
            socket.who,
            id.0,
            prev.age,
            prev.hunger,
            next.age,
            next.hunger
        );
        if taken >= need {
            return (prev, next);
        }
        prev = next;
    }
}

/// Asserts that a pet's ages, as received, never skip a tick or go back: each next age is the
/// same or one more.
pub fn assert_no_gap(id: PetId, frames: &[PetView], context: &str) {
    for w in frames.windows(2) {
        let (a, b) = (w[0].age, w[1].age);
        assert!(
            b == a || b == a + 1,
            "pet {}: age went from {a} to {b} ({context}); all ages: {:?}",
            id.0,
            frames.iter().map(|p| p.age).collect::<Vec<_>>()
        );
    }
}
