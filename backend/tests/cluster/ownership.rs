//! Who owns what: every shard leased by exactly one live node, every live pet running on
//! exactly one node.

use crate::harness::{metric, Cluster, NODES, SHARDS, TICK_MS};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Three settled nodes: `shard_leases` has the 1,024 shards once each, every lease unexpired
/// and held by a node whose `cluster_nodes` row is up with a fresh heartbeat; each node's
/// `livepet_owned_shards` is its number of leases and they add up to 1,024, the placement
/// spreads the shards over all three, and each node's `livepet_pets_alive` is exactly the
/// live pets of its shards, adding up to every live pet in the database. Every node ticks.
#[actix_rt::test]
async fn every_shard_has_one_live_owner_and_every_pet_runs_once() {
    let Some(cluster) = Cluster::start("ownership").await else {
        return;
    };

    let leases = cluster.leases();
    assert_eq!(leases.len() as i64, SHARDS, "one lease row per shard");
    let shards: BTreeSet<i64> = leases.iter().map(|l| l.shard).collect();
    assert_eq!(
        shards,
        (0..SHARDS).collect::<BTreeSet<_>>(),
        "the lease rows are the shards 0..1024"
    );
    let mut per_node: BTreeMap<String, i64> = BTreeMap::new();
    for l in &leases {
        assert!(
            NODES.contains(&l.node.as_str()),
            "shard {} is leased to {:?}, not one of the nodes",
            l.shard,
            l.node
        );
        assert!(l.unexpired, "shard {}'s lease has expired: {l:?}", l.shard);
        assert!(
            l.node_alive,
            "shard {} is leased to {}, whose cluster_nodes row is not up with a fresh heartbeat",
            l.shard, l.node
        );
        assert!(
            l.epoch >= 1,
            "shard {}'s lease has epoch {}",
            l.shard,
            l.epoch
        );
        *per_node.entry(l.node.clone()).or_default() += 1;
    }

    let rows = cluster.node_rows();
    for name in NODES {
        let row = rows
            .iter()
            .find(|r| r.node == name)
            .unwrap_or_else(|| panic!("no cluster_nodes row for {name}: {rows:?}"));
        assert_eq!(row.status, "up", "{row:?}");
        assert!(row.fresh, "node {name}'s heartbeat is stale: {row:?}");
        assert!(!row.addr.is_empty(), "node {name} recorded no address");
    }

    // What each node says, against the database.
    let expected_pets = cluster.live_pets_by_lease();
    let total = cluster.live_pets();
    let mut owned_sum = 0.0;
    let mut alive_sum = 0.0;
    for name in NODES {
        let node = cluster.node(name);
        let text = node.metrics().await;
        let owned = metric(&text, "livepet_owned_shards").expect("livepet_owned_shards");
        let alive = metric(&text, "livepet_pets_alive").expect("livepet_pets_alive");
        assert_eq!(
            metric(&text, "livepet_cluster_nodes"),
            Some(3.0),
            "node {name} sees all three nodes"
        );
        let leased = per_node.get(name).copied().unwrap_or(0);
        assert_eq!(
            owned as i64, leased,
            "node {name}: livepet_owned_shards against its leases in the database"
        );
        // A rendezvous hash over three nodes gives each about 341 of 1,024 shards.
        assert!(
            (200..=480).contains(&leased),
            "node {name} owns {leased} shards: the placement does not spread them ({per_node:?})"
        );
        let want = expected_pets.get(name).copied().unwrap_or(0);
        assert_eq!(
            alive as i64, want,
            "node {name}: livepet_pets_alive against the live pets of its shards"
        );
        let ready = node.readyz().await.expect("/readyz answers");
        assert_eq!(ready.status, 200, "{name}: {}", ready.body);
        assert_eq!(ready.body["ready"], true);
        assert_eq!(ready.body["node"], name);
        assert_eq!(ready.body["nodes"], 3);
        assert_eq!(
            ready.body["owned_shards"].as_i64(),
            Some(leased),
            "{name}: /readyz"
        );
        owned_sum += owned;
        alive_sum += alive;
    }
    assert_eq!(owned_sum as i64, SHARDS, "owned shards add up to 1,024");
    assert_eq!(
        alive_sum as i64, total,
        "the nodes' pets alive add up to the live pets in the database"
    );

    // Every node's pets tick: its tick counter grows.
    for name in NODES {
        let node = cluster.node(name);
        let before = node.gauge("livepet_ticks_total").await;
        let deadline = std::time::Instant::now() + Duration::from_millis(TICK_MS * 50);
        loop {
            let now = node.gauge("livepet_ticks_total").await;
            if now > before {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {name}'s pets do not tick (livepet_ticks_total stays {before})"
            );
            tokio::time::sleep(Duration::from_millis(TICK_MS / 2)).await;
        }
    }
    cluster.assert_no_stale_writes();
}
