//! The reliability promises, each proven against the real binary with the fault injected:
//! graceful stop, hard kills, the database going away, hostile frames.

use crate::client::{Client, Viewer};
use crate::helpers::{metric, Backend, TestApp, TestDb};
use crate::process::ServerProcess;
use crate::proxy::Proxy;
use livepet_server::db::queries;
use livepet_shared::wire::{PetView, ServerMsg};
use livepet_shared::PetId;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const FAST: &[&str] = &["--tick-ms", "20", "--auth-attempts-per-minute", "100000"];

/// Signs up `n` owners, each with one pet and a socket watching it.
async fn owners_watching(base: &str, n: usize, tag: &str) -> Vec<Viewer> {
    let mut out = Vec::new();
    for i in 0..n {
        let email = format!("{tag}{i}@example.com");
        out.push(Viewer::sign_up(base, &email, &format!("Pet {tag}{i}")).await);
    }
    out
}

async fn graceful_stop_matches_what_viewers_saw(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let mut server = ServerProcess::start(db.raw_url(), FAST).await;
    let mut owners = owners_watching(&server.base, 6, "g").await;
    // Feeds in flight while the stop arrives.
    for owner in owners.iter_mut() {
        for _ in 0..3 {
            let feed = json!({"type":"feed","pet_id":owner.pet.id});
            owner.ws.send(feed).await;
        }
    }
    server.signal("TERM");
    let mut seen: HashMap<PetId, PetView> = HashMap::new();
    for owner in owners.iter_mut() {
        // The stop may come before any of this owner's feeds was read: then the last state
        // it saw is the watch's first frame.
        seen.insert(owner.pet.id, owner.first.clone());
        let (last, code) = owner.ws.drain().await;
        assert_eq!(code, Some(1001), "closed with going away");
        seen.extend(last);
    }
    let status = server.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}; log:\n{}", server.log());
    let mut conn = db.conn();
    for (id, view) in &seen {
        let row = queries::find_pet(&mut conn, *id).unwrap().unwrap();
        assert_eq!(
            (row.age as u32, row.hunger as u32, row.is_alive),
            (view.age, view.hunger, view.alive),
            "pet {id}: stored state equals the last state its viewer saw"
        );
    }
    assert_eq!(seen.len(), 6);
}

on_both_databases!(async graceful_stop_matches_what_viewers_saw);

/// Rounds of kill -9 at a random moment (after a random number of observed ticks), each
/// followed by checks straight from the database.
async fn hard_kills_lose_at_most_one_interval(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    const TICK_MS: u64 = 50;
    const PERSIST_MS: u64 = 500;
    // Ticks in one persist interval, plus two for the flush itself and scheduling delays.
    const BOUND: u32 = (PERSIST_MS / TICK_MS) as u32 + 2;
    let rounds = 4;
    let mut rng_state = 0x2545_f491_4f6c_dd1du64;
    let mut next_rand = |m: u64| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state % m
    };
    let mut pets: Vec<PetId> = Vec::new();
    let mut largest_loss = 0u32;
    for round in 0..rounds {
        let mut server = ServerProcess::start(
            db.raw_url(),
            &[
                "--tick-ms",
                &TICK_MS.to_string(),
                "--persist-ms",
                &PERSIST_MS.to_string(),
                "--death-age",
                "150",
                "--auth-attempts-per-minute",
                "100000",
            ],
        )
        .await;
        server
            .wait_logged("topped up treats", Duration::from_secs(30))
            .await;
        let mut owners = owners_watching(&server.base, 3, &format!("k{round}_")).await;
        pets.extend(owners.iter().map(|o| o.pet.id));
        // One owner treats another's pet: acknowledged by the `treats` frame.
        let target = owners[1].pet.id;
        owners[0]
            .ws
            .send(json!({"type":"give_treat","pet_id":target}))
            .await;
        let left = owners[0].ws.treats().await;
        assert_eq!(left, 4);
        let giver = owners[0].pet.owner_id;

        // A random number of ticks later, kill -9.
        let ticks = 2 + next_rand(40) as usize;
        let mut last: HashMap<PetId, PetView> = HashMap::new();
        for _ in 0..ticks {
            for owner in owners.iter_mut() {
                let v = owner.ws.pet_frame(owner.pet.id).await;
                last.insert(owner.pet.id, v);
            }
        }
        server.signal("KILL");
        server.wait_exit(Duration::from_secs(10)).await;
        // Anything further already on the sockets was also seen before the kill.
        for owner in owners.iter_mut() {
            let (more, _) = owner.ws.drain().await;
            last.extend(more);
        }

        let mut conn = db.conn();
        // The spent treat is durable (checked before any restart tops it up again).
        let u = queries::find_user(&mut conn, giver.0).unwrap().unwrap();
        assert_eq!(
            u.available_treats, 4,
            "round {round}: the spent treat survived"
        );
        // Every acknowledged account and pet exists.
        for p in &pets {
            assert!(queries::find_pet(&mut conn, *p).unwrap().is_some());
        }
        for (id, seen) in &last {
            let row = queries::find_pet(&mut conn, *id).unwrap().unwrap();
            if !seen.alive {
                assert!(
                    !row.is_alive,
                    "round {round}: a death a viewer saw is durable"
                );
                continue;
            }
            let stored = row.age as u32;
            assert!(
                stored + BOUND >= seen.age,
                "round {round}: pet {id} lost {} ticks (bound {BOUND})",
                seen.age - stored
            );
            largest_loss = largest_loss.max(seen.age.saturating_sub(stored));
        }
    }
    let accounts = {
        use diesel::prelude::*;
        use livepet_server::db::schema::users;
        livepet_server::with_conn!(&mut db.conn(), |c| users::table
            .count()
            .get_result::<i64>(c)
            .unwrap())
    };
    assert_eq!(accounts as usize, rounds * 3, "every acknowledged account");
    crate::helpers::report(&format!(
        "hard kills: {rounds} rounds survived; largest loss {largest_loss} ticks (bound {BOUND})"
    ));
}

on_both_databases!(async hard_kills_lose_at_most_one_interval);

/// The world keeps ticking while the database is away, then catches up completely.
async fn outlive_database_outage(
    server: &mut ServerProcess,
    outage: impl AsyncFnOnce(&ServerProcess),
) {
    let mut owner = Viewer::sign_up(&server.base, "out@example.com", "Patience").await;
    server
        .wait_metric("livepet_persisted_total", Duration::from_secs(30), |v| {
            v > 0.0
        })
        .await;

    let began = Instant::now();
    outage(server).await;
    let outage_secs = began.elapsed().as_secs_f64();

    // Frames kept coming throughout; the persister caught up.
    let a = owner.ws.pet_frame(owner.pet.id).await;
    let b = owner.ws.pet_frame(owner.pet.id).await;
    assert_eq!(b.age, a.age + 1);
    let failures = metric(&server.metrics().await, "livepet_persist_failures_total").unwrap();
    assert!(failures >= 1.0, "the outage was noticed");
    server
        .wait_metric(
            "livepet_persist_lag_seconds",
            Duration::from_secs(30),
            |v| v < 1.0,
        )
        .await;

    server.signal("TERM");
    owner.ws.drain().await;
    assert!(server.wait_exit(Duration::from_secs(30)).await.success());
    let log = server.log();
    let failing_lines = log.matches("database writes failing").count();
    assert_eq!(
        failing_lines, 1,
        "logged once per state change, not per retry"
    );
    assert!(log.contains("database writes recovered"));
    crate::helpers::report(&format!(
        "database outage of {outage_secs:.1} s survived; {failures} failed flushes"
    ));
}

/// Waits until the outage shows: `failures` failed flushes, and the world still ticking.
async fn ticks_through_failures(server: &ServerProcess, failures: f64, timeout: Duration) {
    server
        .wait_metric("livepet_persist_failures_total", timeout, |v| v >= failures)
        .await;
    let ticks = metric(&server.metrics().await, "livepet_ticks_total").unwrap();
    server
        .wait_metric("livepet_ticks_total", Duration::from_secs(10), |v| {
            v > ticks + 20.0
        })
        .await;
}

#[actix_rt::test]
async fn the_world_outlives_a_database_outage_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    // Migrate directly, then run the server through a proxy we can cut.
    db.conn();
    let proxy = Proxy::start(db.postgres_addr());
    let mut server = ServerProcess::start(
        &db.url_through(proxy.port),
        &[
            "--tick-ms",
            "20",
            "--persist-ms",
            "200",
            "--auth-attempts-per-minute",
            "100000",
        ],
    )
    .await;
    outlive_database_outage(&mut server, async |server| {
        proxy.cut();
        ticks_through_failures(server, 2.0, Duration::from_secs(30)).await;
        // Requests that need the database answer 503 in the JSON error shape.
        let mut browser = Client::new(&server.base);
        let res = browser.get("/api/species").await;
        assert_eq!(res.status(), 200, "no database needed");
        let res = browser
            .post(
                "/api/session",
                json!({"email":"out@example.com","password":"whatever whatever"}),
            )
            .await;
        let status = res.status();
        let body = res.text().await.unwrap();
        assert_eq!(status, 503, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "service_unavailable");
        proxy.restore();
    })
    .await;
    // Everything ticked during the outage reached the database.
    let rows = queries::all_pets(&mut db.conn()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].hunger, (250 + 5 * rows[0].age).min(500));
}

#[actix_rt::test]
async fn the_world_outlives_a_locked_database_sqlite() {
    let db = TestDb::sqlite();
    let mut server = ServerProcess::start(
        db.raw_url(),
        &[
            "--tick-ms",
            "20",
            "--persist-ms",
            "200",
            "--auth-attempts-per-minute",
            "100000",
        ],
    )
    .await;
    let path = db.raw_url().trim_start_matches("sqlite://").to_string();
    outlive_database_outage(&mut server, async |server| {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut locker = diesel::sqlite::SqliteConnection::establish(&path).unwrap();
        locker.batch_execute("BEGIN EXCLUSIVE").unwrap();
        ticks_through_failures(server, 1.0, Duration::from_secs(60)).await;
        locker.batch_execute("COMMIT").unwrap();
    })
    .await;
    let rows = queries::all_pets(&mut db.conn()).unwrap();
    assert_eq!(rows[0].hunger, (250 + 5 * rows[0].age).min(500));
}

/// Frames a hostile or broken client might send: random text, random JSON, and real
/// frames with their fields mutated.
fn hostile_frame() -> impl Strategy<Value = String> {
    let types = prop_oneof![
        Just("watch"),
        Just("unwatch"),
        Just("feed"),
        Just("give_treat"),
        Just("ping"),
        Just("subscribe_stats"),
        Just("fly"),
        Just(""),
    ];
    let ids = prop_oneof![
        any::<i64>().prop_map(|i| json!(i)),
        Just(json!(1)),
        Just(json!(null)),
        Just(json!("1")),
        Just(json!(1.5)),
        Just(json!([1])),
        Just(json!({"$gt": 0})),
        ".{0,20}".prop_map(|s| json!(s)),
    ];
    prop_oneof![
        ".{0,200}",
        "[\\[\\]{}\",:0-9a-z ]{0,100}",
        (types, ids).prop_map(|(t, id)| json!({"type": t, "pet_id": id}).to_string()),
        (0usize..200).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d))),
        (0usize..2000).prop_map(|d| "[".repeat(d)),
    ]
}

#[actix_rt::test]
async fn hostile_frames_never_break_a_session_or_harm_others_sqlite() {
    let app = TestApp::sqlite_with(|args| args.ws_frames_per_second = 100_000).await;
    let mut good = app.viewer("good0@example.com", "Pet good0").await;
    let mut evil = app.client();
    evil.signup_with_pet("evil@example.com", "Mallory's").await;
    let mut ws = evil.ws().await;
    ws.greeting().await;

    let mut runner = TestRunner::deterministic();
    let strategy = hostile_frame();
    let cases = 500;
    for _ in 0..cases {
        let frame = strategy.new_tree(&mut runner).unwrap().current();
        ws.send(json!(null)).await; // a known-bad frame as a separator
        ws.send_raw(awc::ws::Message::Text(frame.into())).await;
    }
    ws.send(json!({"type":"ping"})).await;
    ws.until(|m| matches!(m, ServerMsg::Pong).then_some(()))
        .await;

    // The well-behaved client kept ticking (the fuzzer's own treats may add frames of the
    // same age in between), and the server is healthy.
    let pet = good.pet.id;
    let a = good.ws.pet_frame(pet).await;
    let b = good
        .ws
        .until(|m| match m {
            ServerMsg::Pet { pet: p } if p.id == pet && p.age > a.age => Some(p.clone()),
            _ => None,
        })
        .await;
    assert_eq!(b.age, a.age + 1);
    let res = app.client().get("/healthz").await;
    assert_eq!(res.status(), 200);
    crate::helpers::report(&format!(
        "hostile frames: {cases} random frames sent to one live session"
    ));
}
