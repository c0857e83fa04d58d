//! Persistence round trips on SQLite and PostgreSQL: ticks reach the database through the
//! persister, a restart continues from the stored states, and nothing is lost on shutdown.

use crate::helpers::{wait_for, Backend, TestApp, TestDb};
use livepet_server::actors::pet::Get;
use livepet_server::db::queries;
use livepet_shared::PetId;
use std::time::Duration;

const PETS: u64 = 300;

/// With no feeds or treats, hunger is a function of age: the persisted row must match it.
fn assert_consistent(row: &livepet_server::db::models::PetRow) {
    assert!(row.is_alive);
    assert_eq!(row.hunger, (250 + 5 * row.age).min(500), "pet {}", row.id);
}

async fn round_trip(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    db.seed(PETS);

    // First life: tick, flush while running, compare with the live actors.
    let app = TestApp::spawn_on(db, |_| {}).await;
    assert_eq!(app.started_pets() as u64, PETS);
    wait_for("three ticks per pet", Duration::from_secs(30), || {
        (app.world().metrics.ticks_total.get() >= 3 * PETS).then_some(())
    })
    .await;
    let rows = app.flush().await;
    assert!(rows > 0);
    let stored = queries::all_pets(&mut app.db.conn()).unwrap();
    assert_eq!(stored.len() as u64, PETS);
    for row in &stored {
        assert_consistent(row);
        let live = app
            .world()
            .registry
            .get(PetId(row.id))
            .unwrap()
            .send(Get)
            .await
            .unwrap();
        assert!(
            row.age as u32 <= live.age,
            "stored state is never ahead of the pet"
        );
    }

    // Graceful stop: every tick that happened is in the database.
    let world = app.world().clone();
    let db = app.shutdown().await;
    let ticks_first = world.metrics.ticks_total.get();
    let stored = queries::all_pets(&mut db.conn()).unwrap();
    let total_age: i64 = stored.iter().map(|r| r.age as i64).sum();
    assert_eq!(total_age as u64, ticks_first, "every tick was persisted");
    stored.iter().for_each(assert_consistent);

    // Second life: the same pets continue from where they were.
    let app = TestApp::spawn_on(db, |_| {}).await;
    assert_eq!(app.started_pets() as u64, PETS);
    for row in stored.iter().take(20) {
        let live = app
            .world()
            .registry
            .get(PetId(row.id))
            .unwrap()
            .send(Get)
            .await
            .unwrap();
        assert!(live.age >= row.age as u32, "restarted from the stored age");
    }
    wait_for("more ticks", Duration::from_secs(30), || {
        (app.world().metrics.ticks_total.get() >= 2 * PETS).then_some(())
    })
    .await;
    let world = app.world().clone();
    let db = app.shutdown().await;
    let ticks_second = world.metrics.ticks_total.get();
    let again = queries::all_pets(&mut db.conn()).unwrap();
    let total_again: i64 = again.iter().map(|r| r.age as i64).sum();
    assert_eq!(total_again as u64, ticks_first + ticks_second);
    for (old, new) in stored.iter().zip(&again) {
        assert_eq!(old.id, new.id);
        assert!(new.age > old.age, "pet {} continued ticking", new.id);
        assert_consistent(new);
    }
}

on_both_databases!(async round_trip);

async fn death_beats_stale_snapshots(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    db.seed(50);
    let app = TestApp::spawn_on(db, |args| {
        args.death_age = 3;
        args.tick_ms = 10;
    })
    .await;
    wait_for("every pet to die", Duration::from_secs(30), || {
        (app.world().metrics.pets_alive.get() == 0).then_some(())
    })
    .await;
    let db = app.shutdown().await;
    let rows = queries::all_pets(&mut db.conn()).unwrap();
    assert_eq!(rows.len(), 50);
    for r in rows {
        assert!(!r.is_alive, "pet {} stored dead", r.id);
        assert_eq!(r.age, 4);
    }
    // A restart brings no dead pet back.
    let app = TestApp::spawn_on(db, |_| {}).await;
    assert_eq!(app.started_pets(), 0);
}

on_both_databases!(async death_beats_stale_snapshots);
