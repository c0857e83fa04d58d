//! The pet world in-process: ticks, feeds, treats, death, registry, panic recovery.

use crate::helpers::{wait_for, TestApp, TestDb};
use actix::prelude::*;
use livepet_server::actors::pet::{
    Feed, Get, InjectPanic, PetError, PetFrame, Treat, Unwatch, Watch,
};
use livepet_server::clock::now_ms;
use livepet_server::db::models::NewPetRow;
use livepet_server::db::queries;
use livepet_server::world::PetRecord;
use livepet_shared::wire::{PetView, ServerMsg};
use livepet_shared::{PetId, PetState, Species, UserId};
use std::time::Duration;
use tokio::sync::mpsc;

const OWNER: UserId = UserId(1);
const STRANGER: UserId = UserId(999);

/// A viewer that hands every frame it receives to the test.
struct Probe(mpsc::UnboundedSender<PetView>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<PetFrame> for Probe {
    type Result = ();
    fn handle(&mut self, f: PetFrame, _: &mut Context<Self>) {
        match serde_json::from_str::<ServerMsg>(&f.json).unwrap() {
            ServerMsg::Pet { pet } => {
                assert_eq!(pet.id, f.pet_id);
                assert_eq!(pet.alive, f.alive);
                let _ = self.0.send(pet);
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

fn probe() -> (Recipient<PetFrame>, mpsc::UnboundedReceiver<PetView>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Probe(tx).start().recipient(), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<PetView>) -> PetView {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a pet frame within 10 s")
        .expect("channel open")
}

#[actix_rt::test]
async fn a_pet_ticks_feeds_takes_treats_and_refuses_strangers_sqlite() {
    let db = TestDb::sqlite();
    db.seed(3);
    let app = TestApp::spawn_on(db, |_| {}).await;
    assert_eq!(app.started_pets(), 3);
    let pet = app
        .world()
        .registry
        .get(PetId(1))
        .expect("pet 1 is registered");

    let (viewer, mut frames) = probe();
    let first = pet
        .send(Watch {
            by: OWNER,
            viewer: 7,
            to: viewer,
        })
        .await
        .unwrap()
        .unwrap();
    assert!(first.alive);

    // Every tick: age +1, hunger +5.
    let a = next(&mut frames).await;
    let b = next(&mut frames).await;
    assert_eq!(b.age, a.age + 1);
    assert_eq!(b.hunger, (a.hunger + 5).min(500));

    // The owner's feed: hunger -100, pushed to the viewer too.
    let before = pet.send(Get).await.unwrap();
    let fed = pet.send(Feed { by: OWNER }).await.unwrap().unwrap();
    assert_eq!(fed.hunger, before.hunger.saturating_sub(100));
    assert_eq!(fed.age, before.age);
    let pushed = loop {
        let f = next(&mut frames).await;
        if f.hunger == fed.hunger && f.age == fed.age {
            break f;
        }
    };
    assert_eq!(pushed.hunger, fed.hunger);

    // Someone else's treat: hunger -20.
    let before = pet.send(Get).await.unwrap();
    let treated = pet.send(Treat { by: STRANGER }).await.unwrap().unwrap();
    assert_eq!(treated.hunger, before.hunger.saturating_sub(20));

    // The rules on who may do what.
    assert_eq!(
        pet.send(Feed { by: STRANGER }).await.unwrap(),
        Err(PetError::NotOwner)
    );
    assert_eq!(
        pet.send(Treat { by: OWNER }).await.unwrap(),
        Err(PetError::OwnPet)
    );
    let (other_viewer, _) = probe();
    assert_eq!(
        pet.send(Watch {
            by: STRANGER,
            viewer: 8,
            to: other_viewer
        })
        .await
        .unwrap(),
        Err(PetError::NotOwner)
    );

    // Unwatch: the viewer count drops back.
    assert_eq!(app.world().metrics.viewers.get(), 1);
    pet.send(Unwatch { viewer: 7 }).await.unwrap();
    assert_eq!(app.world().metrics.viewers.get(), 0);
}

#[actix_rt::test]
async fn a_pet_dies_at_the_death_age_is_persisted_at_once_and_stops_sqlite() {
    let db = TestDb::sqlite();
    db.seed(2);
    let app = TestApp::spawn_on(db, |args| {
        args.death_age = 10;
        args.tick_ms = 20;
    })
    .await;
    let pet = app.world().registry.get(PetId(2)).unwrap();
    let (viewer, mut frames) = probe();
    pet.send(Watch {
        by: OWNER,
        viewer: 1,
        to: viewer,
    })
    .await
    .unwrap()
    .unwrap();

    let last = loop {
        let f = next(&mut frames).await;
        if !f.alive {
            break f;
        }
        assert!(f.age <= 10, "a pet older than the death age must be dead");
    };
    assert_eq!(last.age, 11, "dies on the tick that passes the death age");

    // Gone from the registry, and nothing arrives after the final frame.
    wait_for(
        "registry to forget the dead pet",
        Duration::from_secs(5),
        || app.world().registry.get(PetId(2)).is_none().then_some(()),
    )
    .await;
    wait_for("pets_alive to reach 0", Duration::from_secs(5), || {
        (app.world().metrics.pets_alive.get() == 0).then_some(())
    })
    .await;

    // Durable: the death was written by the persister (in order, before this flush returns).
    app.flush().await;
    let row = queries::find_pet(&mut app.db.conn(), PetId(2))
        .unwrap()
        .unwrap();
    assert!(!row.is_alive);
    assert_eq!(row.age, 11);
}

#[actix_rt::test]
async fn the_registry_finds_starts_and_forgets_sqlite() {
    let db = TestDb::sqlite();
    db.seed(1);
    let app = TestApp::spawn_on(db, |_| {}).await;
    let world = app.world().clone();
    assert!(world.registry.get(PetId(1)).is_some());
    assert!(world.registry.get(PetId(42)).is_none());

    let now = now_ms();
    let row = queries::insert_pet(
        &mut app.db.conn(),
        &NewPetRow {
            user_id: 1,
            name: "Newcomer",
            species: "owl",
            age: 0,
            hunger: 250,
            is_alive: true,
            created_at: now,
            updated_at: now,
        },
    )
    .unwrap();
    let addr = world.start_pet(PetRecord {
        id: PetId(row.id),
        owner: OWNER,
        name: "Newcomer".into(),
        species: Species::Owl,
        born_at: now,
        state: PetState::newborn(&world.rules),
    });
    let view = addr.send(Get).await.unwrap();
    assert_eq!(view.name, "Newcomer");
    assert_eq!(view.species, Species::Owl);
    assert!(world.registry.get(PetId(row.id)).is_some());
    assert_eq!(world.registry.len(), 2);

    world.registry.forget(PetId(row.id));
    assert!(world.registry.get(PetId(row.id)).is_none());
    assert_eq!(world.registry.len(), 1);
}

#[actix_rt::test]
async fn a_panicking_pet_restarts_from_its_last_state_and_others_carry_on_sqlite() {
    let db = TestDb::sqlite();
    db.seed(2);
    let app = TestApp::spawn_on(db, |_| {}).await;
    let sick = app.world().registry.get(PetId(1)).unwrap();
    let healthy = app.world().registry.get(PetId(2)).unwrap();
    let (v1, mut frames1) = probe();
    let (v2, mut frames2) = probe();
    sick.send(Watch {
        by: OWNER,
        viewer: 1,
        to: v1,
    })
    .await
    .unwrap()
    .unwrap();
    healthy
        .send(Watch {
            by: OWNER,
            viewer: 2,
            to: v2,
        })
        .await
        .unwrap()
        .unwrap();

    let before = next(&mut frames1).await;
    sick.send(InjectPanic).await.unwrap();
    // The next rule application panics; the pet restores its state and keeps ticking.
    wait_for("the panic to be caught", Duration::from_secs(5), || {
        (app.world().metrics.pet_restarts_total.get() == 1).then_some(())
    })
    .await;
    let after = next(&mut frames1).await;
    let again = next(&mut frames1).await;
    assert_eq!(again.age, after.age + 1, "ticking resumed");
    assert!(after.age > before.age);
    assert_eq!(
        after.hunger,
        (250 + 5 * after.age).min(500),
        "state continued from the last good state: no tick half-applied"
    );
    assert!(app.world().registry.get(PetId(1)).is_some());

    // The other pet never noticed.
    let h1 = next(&mut frames2).await;
    let h2 = next(&mut frames2).await;
    assert_eq!(h2.age, h1.age + 1);
    assert_eq!(app.world().metrics.pet_restarts_total.get(), 1);
}
