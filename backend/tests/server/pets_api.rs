//! The pets API and the HTTP edge's handling of bad requests.

use crate::helpers::{wait_for, Backend, TestApp};
use livepet_shared::wire::PetView;
use serde_json::{json, Value};
use std::time::Duration;

async fn pets_api(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut a = app.client();
    let mut b = app.client();

    // Not logged in: 401 JSON.
    let res = a.get("/api/pets").await;
    assert_eq!(res.status(), 401);

    let species: Vec<Value> = a.get("/api/species").await.json().await.unwrap();
    assert_eq!(species.len(), 10);
    assert!(species
        .iter()
        .all(|s| s["emoji"].is_string() && s["label"].is_string()));

    let first = a.signup_with_pet("a@example.com", "  Biscuit  ").await;
    assert_eq!(first.name, "Biscuit", "names are trimmed");
    assert_eq!((first.age, first.hunger, first.alive), (0, 250, true));
    let second = a.adopt("Pickle", "owl").await;
    b.signup_with_pet("b@example.com", "Bob's Rex").await;

    // The new pet is already ticking.
    wait_for("the new pet to tick", Duration::from_secs(10), || {
        (app.world().metrics.ticks_total.get() > 3).then_some(())
    })
    .await;
    let live: PetView = a
        .get(&format!("/api/pets/{}", first.id))
        .await
        .json()
        .await
        .unwrap();
    assert!(live.age > 0 || live.at > first.at);

    // Mine, newest first.
    let mine: Vec<PetView> = a.get("/api/pets").await.json().await.unwrap();
    assert_eq!(
        mine.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![second.id, first.id]
    );

    // Someone else's pet, a missing one, a malformed id: all the same 404.
    for path in [
        format!("/api/pets/{}", first.id),
        "/api/pets/999999".to_string(),
        "/api/pets/abc".to_string(),
    ] {
        let res = b.get(&path).await;
        assert_eq!(res.status(), 404, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }

    // Validation: 422 with per-field messages.
    let res = a
        .post("/api/pets", json!({"name": "ab", "species": "dragon"}))
        .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["fields"]["name"].is_string());
    assert!(body["error"]["fields"]["species"].is_string());
    let res = a
        .post(
            "/api/pets",
            json!({"name": "x".repeat(101), "species": "cat"}),
        )
        .await;
    assert_eq!(res.status(), 422);

    // Malformed JSON 400, wrong content type 415, oversized 413, wrong shape 400.
    let res = a
        .post_raw("/api/pets", "application/json", b"{nope".to_vec())
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    let res = a.post_raw("/api/pets", "text/plain", b"{}".to_vec()).await;
    assert_eq!(res.status(), 415);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let big = format!(r#"{{"name":"{}","species":"cat"}}"#, "x".repeat(64 * 1024));
    let res = a
        .post_raw("/api/pets", "application/json", big.into_bytes())
        .await;
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    let res = a
        .post_raw("/api/pets", "application/json", b"[1,2]".to_vec())
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");

    // Strings that look like SQL are only ever data.
    let evil = a.adopt("Robert'); DROP TABLE pets;--", "dog").await;
    assert_eq!(evil.name, "Robert'); DROP TABLE pets;--");
    let mine: Vec<PetView> = a.get("/api/pets").await.json().await.unwrap();
    assert_eq!(mine.len(), 3);
}

on_both_databases!(async pets_api);

#[actix_rt::test]
async fn a_dead_pet_is_served_from_storage_sqlite() {
    let app = TestApp::sqlite_with(|args| {
        args.death_age = 3;
        args.tick_ms = 10;
    })
    .await;
    let mut a = app.client();
    let pet = a.signup_with_pet("a@example.com", "Shortlived").await;
    wait_for("the pet to die", Duration::from_secs(10), || {
        (app.world().metrics.pets_alive.get() == 0).then_some(())
    })
    .await;
    app.flush().await;
    let view: PetView = a
        .get(&format!("/api/pets/{}", pet.id))
        .await
        .json()
        .await
        .unwrap();
    assert!(!view.alive);
    assert_eq!(view.age, 4);
}
