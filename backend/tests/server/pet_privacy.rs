//! Someone else's pet is answered exactly like a missing one, on every owner-only path: the
//! HTTP lookup, and `watch` and `feed` over the WebSocket, whether the other pet is alive,
//! only stored (not live in this process), or dead; `give_treat` to a pet that is not on
//! screen says the same for an existing and a missing id. So no answer tells which ids
//! exist.

use crate::client::{Client, Ws};
use crate::helpers::{wait_for, Backend, TestApp};
use livepet_server::actors::pet::Release;
use livepet_shared::wire::{ErrorCode, ServerMsg};
use livepet_shared::PetId;
use serde_json::{json, Value};
use std::time::Duration;

/// An id no pet has.
const MISSING: PetId = PetId(987_654_321);

/// The next `error` frame: its code and message.
async fn error_frame(ws: &mut Ws) -> (ErrorCode, String) {
    ws.until(|m| match m {
        ServerMsg::Error { code, message } => Some((*code, message.clone())),
        _ => None,
    })
    .await
}

/// What `GET /api/pets/{id}` answers: status and body.
async fn http_answer(c: &Client, id: PetId) -> (u16, Value) {
    let res = c.get(&format!("/api/pets/{}", id.0)).await;
    (res.status().as_u16(), res.json().await.unwrap())
}

/// What a socket is told for `frame` about `id`.
async fn ws_answer(ws: &mut Ws, frame: &str, id: PetId) -> (ErrorCode, String) {
    ws.send(json!({"type": frame, "pet_id": id})).await;
    error_frame(ws).await
}

/// Asserts that every owner-only path answers about `id` exactly as about a missing pet.
async fn same_as_missing(c: &Client, ws: &mut Ws, id: PetId, what: &str) {
    let missing = http_answer(c, MISSING).await;
    assert_eq!(missing.0, 404);
    assert_eq!(
        missing.1,
        json!({"error": {"code": "not_found", "message": "no such pet"}})
    );
    assert_eq!(http_answer(c, id).await, missing, "HTTP, {what}");
    let not_found = (ErrorCode::NotFound, "no such pet".to_string());
    for frame in ["watch", "feed"] {
        assert_eq!(
            ws_answer(ws, frame, MISSING).await,
            not_found,
            "{frame}, missing"
        );
        assert_eq!(ws_answer(ws, frame, id).await, not_found, "{frame}, {what}");
    }
}

async fn someone_elses_pet_is_answered_like_a_missing_one(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut a = app.client();
    a.signup_with_pet("a@example.com", "Alpha").await;
    let mut b = app.client();
    let live = b.signup_with_pet("b@example.com", "Bravo").await;
    let stored = b.adopt("Charlie", "owl").await;
    // Charlie stays stored but is no longer live in this process (as after a restart that
    // could not start it, or, with several nodes, a pet that lives elsewhere).
    app.world()
        .registry
        .get(stored.id)
        .expect("a live actor")
        .do_send(Release);
    wait_for("the actor to stop", Duration::from_secs(10), || {
        app.world().registry.get(stored.id).is_none().then_some(())
    })
    .await;

    let mut ws = a.ws().await;
    ws.greeting().await;
    same_as_missing(&a, &mut ws, live.id, "someone else's live pet").await;
    same_as_missing(&a, &mut ws, stored.id, "someone else's stored pet").await;

    // A treat for a pet that is not on screen: the same answer for an existing pet and a
    // missing one.
    let missing = ws_answer(&mut ws, "give_treat", MISSING).await;
    assert_eq!(missing.0, ErrorCode::NotActive);
    for id in [live.id, stored.id] {
        assert_eq!(ws_answer(&mut ws, "give_treat", id).await, missing);
    }

    // B still sees and feeds its own pets: the answers above are about A only.
    assert_eq!(http_answer(&b, live.id).await.0, 200);
    let mut bw = b.ws().await;
    bw.greeting().await;
    bw.send(json!({"type": "feed", "pet_id": live.id})).await;
    bw.pet_frame(live.id).await;
}

on_both_databases!(async someone_elses_pet_is_answered_like_a_missing_one);

async fn someone_elses_dead_pet_is_answered_like_a_missing_one(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |a| a.death_age = 3).await else {
        return;
    };
    let mut b = app.client();
    let pet = b.signup_with_pet("b@example.com", "Bravo").await;
    let mut bw = b.ws().await;
    bw.greeting().await;
    bw.send(json!({"type": "watch", "pet_id": pet.id})).await;
    bw.until(|m| match m {
        ServerMsg::Pet { pet: p } if p.id == pet.id && !p.alive => Some(()),
        _ => None,
    })
    .await;
    // Its owner is told it died; anyone else is told it does not exist.
    bw.send(json!({"type": "feed", "pet_id": pet.id})).await;
    assert_eq!(bw.error().await, ErrorCode::PetDead);

    let mut a = app.client();
    a.sign_up("a@example.com").await;
    let mut aw = a.ws().await;
    aw.greeting().await;
    same_as_missing(&a, &mut aw, pet.id, "someone else's dead pet").await;
}

on_both_databases!(async someone_elses_dead_pet_is_answered_like_a_missing_one);
