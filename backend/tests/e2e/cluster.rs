//! Cluster mode in the browser: three real `livepet serve` nodes on one fresh PostgreSQL
//! database, joined through a `nats-server` of the test's own, and two users whose browsers
//! talk to DIFFERENT nodes. They still see each other's pets and give treats, exactly as on
//! one server (scenario 2 of `scenarios.rs`).
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (or LIVEPET_TEST_POSTGRES_URL) and
//! /usr/sbin/nats-server (or NATS_SERVER) besides what every browser test needs. Without
//! them it prints `SKIPPED(e2e)` and passes, except under `CI`, where it fails.

use crate::harness::{Browser, ChromeDriver, Env, Server};
use crate::nats::NatsServer;
use crate::pgdb::PgDb;
use crate::scenarios::{b_adopts_and_treats_the_pet_of_a, ONE_AT_A_TIME};
use std::time::{Duration, Instant};

/// How long three fresh debug-build nodes may take to agree on who owns what.
const SETTLE: Duration = Duration::from_secs(90);
/// How often `/readyz` is asked again.
const READY_POLL: Duration = Duration::from_millis(100);
/// The node names, in start order.
const NODES: [&str; 3] = ["a", "b", "c"];

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Skips the test with a loud line past libtest's capture, or fails it under `CI`.
fn skip<T>(test: &str, why: &str) -> Option<T> {
    if ci() {
        panic!("browser tests must run under CI, but {why}");
    }
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED(e2e): {test}: {why}");
    None
}

/// The three nodes; a failed test shows what each logged last (before they are killed).
struct Nodes {
    servers: Vec<Server>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        if std::thread::panicking() {
            use std::io::Write as _;
            let mut err = std::io::stderr().lock();
            for (name, server) in NODES.iter().zip(&self.servers) {
                let log = server.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(200)..].join("\n");
                let _ = writeln!(err, "--- node {name} (last lines of its log):\n{tail}");
            }
        }
    }
}

/// Polls every node's `/readyz` until each answers 200 with `"ready":true` and sees all
/// three nodes, within [`SETTLE`]; fails with the last answers otherwise.
async fn wait_all_ready(nodes: &Nodes) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut last = Vec::new();
        let mut all = true;
        for (name, server) in NODES.iter().zip(&nodes.servers) {
            let answer = match http.get(format!("{}/readyz", server.base)).send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let body: serde_json::Value = res.json().await.unwrap_or_default();
                    (status, body)
                }
                Err(e) => (0, serde_json::json!(e.to_string())),
            };
            let ok = answer.0 == 200
                && answer.1["ready"] == serde_json::json!(true)
                && answer.1["nodes"] == serde_json::json!(NODES.len());
            all &= ok;
            last.push(format!("{name}: {} {}", answer.0, answer.1));
        }
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes were not all ready within {SETTLE:?}; last /readyz answers:\n{}",
            last.join("\n")
        );
        tokio::time::sleep(READY_POLL).await;
    }
}

#[tokio::test]
async fn browser_two_users_on_different_nodes_see_each_others_pets_and_give_treats() {
    const TEST: &str = "browser_two_users_on_different_nodes_see_each_others_pets_and_give_treats";
    let Some(env) = Env::find(TEST) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    if !NatsServer::binary().is_file() {
        let why = format!(
            "nats-server not found at {} (apt-get install -y nats-server, or set NATS_SERVER)",
            NatsServer::binary().display()
        );
        let _: Option<()> = skip(TEST, &why);
        return;
    }
    // Declared first, so dropped last: after every node is gone.
    let db = match PgDb::create("livepet_e2e_cluster") {
        Ok(db) => db,
        Err(why) => {
            let _: Option<()> = skip(TEST, &why);
            return;
        }
    };
    let nats = NatsServer::start();
    let mut nodes = Nodes {
        servers: Vec::new(),
    };
    for name in NODES {
        let server = Server::start(
            &env,
            &db.url,
            &[
                "--nats-url",
                &nats.url,
                "--node-name",
                name,
                "--tick-ms",
                "300",
                "--lease-ttl-ms",
                "2000",
                "--heartbeat-ms",
                "300",
            ],
        )
        .await;
        nodes.servers.push(server);
    }
    wait_all_ready(&nodes).await;

    let driver = ChromeDriver::start(&env);
    let a = Browser::open(&driver, "user-a", &nodes.servers[0].base).await;
    let b = Browser::open(&driver, "user-b", &nodes.servers[1].base).await;
    assert_ne!(
        a.base, b.base,
        "the two browsers must talk to different nodes"
    );

    // A, on node a, signs up, adopts a pet and sees its age rise without a reload.
    a.sign_up("ada@example.com").await;
    let a_pet = a.adopt("Biscuit", "fox").await;
    let age0 = a.state().await.age.unwrap();
    a.wait_until("the age rises without a reload", |s| s.age > Some(age0))
        .await;
    a.screenshot("cluster-1-user-a-on-node-a").await;

    // B, on node b, adopts a pet, sees A's pet under Active pets and gives it a treat; A's
    // page, on node a, shows it.
    b_adopts_and_treats_the_pet_of_a(&a, &b, a_pet).await;
    b.screenshot("cluster-2-user-b-on-node-b-gives-a-treat")
        .await;
    a.screenshot("cluster-2-user-a-on-node-a-sees-the-treat")
        .await;

    // Each page ran under its own node's policy; neither broke it.
    nodes.servers[0].assert_no_csp_violations(&[&a]).await;
    nodes.servers[1].assert_no_csp_violations(&[&b]).await;

    a.close().await;
    b.close().await;
    drop(driver);
    drop(nodes);
    drop(nats);
    drop(db);
}
