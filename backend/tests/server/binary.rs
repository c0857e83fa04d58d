//! The real `livepet` binary: metrics grow, SIGTERM loses nothing, bad configuration fails
//! with one clear line.

use crate::client::Client;
use crate::helpers::{metric, Backend, TestDb};
use crate::process::{livepet, ServerProcess};
use livepet_server::db::queries;
use std::net::TcpListener;
use std::time::Duration;

fn seed_with_binary(db: &TestDb, n: u64) {
    let out = livepet()
        .args([
            "seed",
            "--pets",
            &n.to_string(),
            "--database-url",
            db.raw_url(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix_rt::test]
async fn serve_exposes_health_and_growing_metrics_sqlite() {
    let db = TestDb::sqlite();
    seed_with_binary(&db, 200);
    let server = ServerProcess::start(db.raw_url(), &["--tick-ms", "50"]).await;
    let browser = Client::new(&server.base);
    let health = browser.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let first = server
        .wait_metric("livepet_ticks_total", Duration::from_secs(30), |v| v > 0.0)
        .await;
    server
        .wait_metric("livepet_ticks_total", Duration::from_secs(30), |v| {
            v > first
        })
        .await;
    let text = server.metrics().await;
    assert_eq!(metric(&text, "livepet_pets_alive"), Some(200.0));
    for name in [
        "livepet_persisted_total",
        "livepet_persist_seconds",
        "livepet_ws_connections",
        "livepet_viewers",
        "livepet_startup_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(
            metric(&text, name).is_some(),
            "{name} missing from /metrics"
        );
    }
    let api = browser.get("/api/nothing-here").await;
    assert_eq!(api.status(), 404);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

async fn sigterm_flushes_every_tick(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    seed_with_binary(&db, 500);
    let mut server =
        ServerProcess::start(db.raw_url(), &["--tick-ms", "20", "--persist-ms", "600000"]).await;
    server
        .wait_metric("livepet_ticks_total", Duration::from_secs(30), |v| {
            v >= 2000.0
        })
        .await;
    server.stop().await;
    let log = server.log();
    let ticks: i64 = log
        .lines()
        .find_map(|l| l.split("ticks_total=").nth(1))
        .expect("the final log line reports ticks_total")
        .trim()
        .parse()
        .unwrap();
    let rows = queries::all_pets(&mut db.conn()).unwrap();
    assert_eq!(rows.len(), 500);
    let total_age: i64 = rows.iter().map(|r| r.age as i64).sum();
    assert_eq!(total_age, ticks, "stored ages add up to every tick applied");
    for r in rows {
        assert!(r.age > 0);
        assert_eq!(r.hunger, (250 + 5 * r.age).min(500));
    }
}

on_both_databases!(async sigterm_flushes_every_tick);

/// Runs the binary and expects a non-zero exit with an `error:` line mentioning `needle`.
fn fails_clearly(args: &[&str], needle: &str) {
    let out = livepet().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line for {args:?}:\n{stderr}"
    );
    assert!(
        stderr.contains(needle),
        "error for {args:?} should mention `{needle}`:\n{stderr}"
    );
}

#[test]
fn bad_configuration_fails_with_one_clear_line_sqlite() {
    fails_clearly(
        &["migrate", "--database-url", "mysql://x/y"],
        "unknown database URL scheme `mysql`",
    );
    fails_clearly(
        &[
            "migrate",
            "--database-url",
            "sqlite:///no/such/dir/livepet.db",
        ],
        "cannot open SQLite database",
    );
    fails_clearly(&["serve", "--tick-ms", "0"], "--tick-ms");

    let db = TestDb::sqlite();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    fails_clearly(
        &[
            "serve",
            "--database-url",
            db.raw_url(),
            "--bind",
            &format!("127.0.0.1:{port}"),
        ],
        "cannot listen on",
    );
}

#[test]
fn migrate_and_seed_work_on_a_brand_new_file_sqlite() {
    let db = TestDb::sqlite();
    let out = livepet()
        .args(["migrate", "--database-url", db.raw_url()])
        .output()
        .unwrap();
    assert!(out.status.success());
    seed_with_binary(&db, 1234);
    assert_eq!(queries::count_live_pets(&mut db.conn()).unwrap(), 1234);
    // Seeding again adds to the same owner.
    seed_with_binary(&db, 10);
    let rows = queries::all_pets(&mut db.conn()).unwrap();
    assert_eq!(rows.len(), 1244);
    assert!(rows.iter().all(|r| r.user_id == rows[0].user_id));
    let species: std::collections::HashSet<_> = rows.iter().map(|r| r.species.clone()).collect();
    assert_eq!(species.len(), 10, "seeded pets span every species");
}
