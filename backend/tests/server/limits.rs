//! Per-user limits: one account reaching each limit gets a clear refusal, and another
//! user's requests and frames at the same moment are unaffected.

use crate::client::{Client, Got, Ws};
use crate::helpers::{wait_for, TestApp};
use livepet_shared::wire::{ErrorCode, ServerMsg};
use livepet_shared::{PetId, UserId};
use serde_json::{json, Value};
use std::time::Duration;

async fn adopt_status(c: &mut Client, name: &str) -> (u16, Value, Option<String>) {
    let res = c
        .post("/api/pets", json!({"name": name, "species": "cat"}))
        .await;
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body, retry)
}

#[actix_rt::test]
async fn live_pets_per_user_are_capped_sqlite() {
    let app = TestApp::sqlite_with(|a| a.max_pets_per_user = 3).await;
    let mut hoarder = app.signed_up("hoarder@example.com").await;
    for i in 0..3 {
        assert_eq!(adopt_status(&mut hoarder, &format!("Pet {i}")).await.0, 201);
    }
    let (status, body, _) = adopt_status(&mut hoarder, "One too many").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "limit_reached");
    assert!(
        body["error"]["message"].as_str().unwrap().contains('3'),
        "{body}"
    );
    let pets: Vec<Value> = hoarder.get("/api/pets").await.json().await.unwrap();
    assert_eq!(pets.len(), 3, "nothing was stored past the limit");
    // Someone else adopts as usual.
    let mut other = app.signed_up("other@example.com").await;
    assert_eq!(adopt_status(&mut other, "Mine").await.0, 201);
}

/// Many adoptions at once by one user still stop exactly at the limit.
async fn concurrent_adoptions_stop_at_the_limit(backend: crate::helpers::Backend) {
    let Some(app) = TestApp::spawn_with(backend, |a| a.max_pets_per_user = 5).await else {
        return;
    };
    let racer = app.signed_up("racer@example.com").await;
    let tries = (0..20).map(|i| {
        let mut c = racer.clone();
        async move { adopt_status(&mut c, &format!("Racer {i}")).await.0 }
    });
    let statuses = futures_util::future::join_all(tries).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "{statuses:?}"
    );
    let pets: Vec<Value> = racer.get("/api/pets").await.json().await.unwrap();
    assert_eq!(pets.len(), 5);
}
on_both_databases!(async concurrent_adoptions_stop_at_the_limit);

#[actix_rt::test]
async fn adoptions_per_minute_are_limited_per_user_sqlite() {
    let app = TestApp::sqlite_with(|a| a.adoptions_per_minute = 2).await;
    let mut quick = app.signed_up("quick@example.com").await;
    assert_eq!(adopt_status(&mut quick, "First").await.0, 201);
    assert_eq!(adopt_status(&mut quick, "Second").await.0, 201);
    let (status, body, retry) = adopt_status(&mut quick, "Third").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry));
    let mut other = app.signed_up("patient@example.com").await;
    assert_eq!(adopt_status(&mut other, "Theirs").await.0, 201);
}

fn user_of(app: &TestApp, email: &str) -> UserId {
    use diesel::prelude::*;
    use livepet_server::db::schema::users;
    UserId(livepet_server::with_conn!(&mut app.db.conn(), |c| {
        users::table
            .filter(users::email.eq(email))
            .select(users::id)
            .first::<i64>(c)
            .unwrap()
    }))
}

#[actix_rt::test]
async fn sockets_per_user_are_capped_sqlite() {
    let app = TestApp::sqlite_with(|a| a.max_sockets_per_user = 2).await;
    let many = app.signed_up("tabs@example.com").await;
    let mut first = many.ws().await;
    first.greeting().await;
    let mut second = many.ws().await;
    second.greeting().await;
    let user = user_of(&app, "tabs@example.com");
    wait_for("both sockets registered", Duration::from_secs(10), || {
        (app.services().live.open_of(user) == 2).then_some(())
    })
    .await;
    // The third is refused before the upgrade, with a JSON reason.
    let res = many
        .http
        .get(format!("{}/ws", many.base))
        .header(
            "Cookie",
            format!("livepet_session={}", many.cookie.clone().unwrap()),
        )
        .header("Origin", &many.base)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "limit_reached", "{body}");
    // Another user connects as usual.
    let other = app.signed_up("single@example.com").await;
    let mut theirs = other.ws().await;
    theirs.greeting().await;
    // Closing a tab frees its place.
    first.close().await;
    wait_for(
        "the closed socket to be forgotten",
        Duration::from_secs(10),
        || (app.services().live.open_of(user) == 1).then_some(()),
    )
    .await;
    let mut ws = many
        .upgrade(Some(&many.base), &[])
        .await
        .expect("a freed place");
    ws.greeting().await;
    second.send(json!({"type": "ping"})).await;
    second
        .until(|m| matches!(m, ServerMsg::Pong).then_some(()))
        .await;
}

/// Reads the answers to `sent` pings: how many pongs came, and 1 if a `rate_limited` error
/// came (the session says so once; later refused frames get no answer, so reading stops
/// there).
async fn answers(ws: &mut Ws, sent: usize) -> (usize, usize) {
    let (mut pongs, mut limited) = (0, 0);
    while pongs + limited < sent {
        match ws.next().await {
            Got::Msg(ServerMsg::Pong) => pongs += 1,
            Got::Msg(ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            }) => {
                limited += 1;
                break;
            }
            Got::Msg(_) => {}
            Got::Closed(c) => panic!("closed {c:?}"),
        }
    }
    (pongs, limited)
}

#[actix_rt::test]
async fn a_users_frame_budget_spans_all_its_sockets_sqlite() {
    let app = TestApp::sqlite_with(|a| {
        a.frames_per_user_per_second = 5;
        a.ws_frames_per_second = 1_000;
    })
    .await;
    let flooder = app.signed_up("flood@example.com").await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut ws = flooder.ws().await;
        ws.greeting().await;
        sockets.push(ws);
    }
    let bystander = app.signed_up("calm@example.com").await;
    let mut calm = bystander.ws().await;
    calm.greeting().await;
    // 3 sockets x 8 pings = 24 frames against a budget of 5/s with a burst of 10: each socket
    // alone is far below its own 1,000/s, so only the per-user budget can refuse them.
    for ws in &mut sockets {
        for _ in 0..8 {
            ws.send(json!({"type": "ping"})).await;
        }
    }
    for _ in 0..8 {
        calm.send(json!({"type": "ping"})).await;
    }
    let mut limited = 0;
    for ws in &mut sockets {
        limited += answers(ws, 8).await.1;
    }
    assert!(
        limited >= 1,
        "no frame was refused across the user's sockets"
    );
    // The other user's frames were all answered.
    let (pongs, refused) = answers(&mut calm, 8).await;
    assert_eq!((pongs, refused), (8, 0));
}

#[actix_rt::test]
async fn watched_pets_per_user_are_capped_sqlite() {
    let app = TestApp::sqlite_with(|a| a.max_watched_per_user = 2).await;
    let mut owner = app.signed_up("watcher@example.com").await;
    let pets: Vec<PetId> = {
        let mut v = Vec::new();
        for name in ["Alpha", "Bravo", "Charlie"] {
            v.push(owner.adopt(name, "dog").await.id);
        }
        v
    };
    let onlooker = app.signed_up("onlooker@example.com").await;
    let mut look = onlooker.ws().await;
    look.greeting().await;
    let mut tab1 = owner.ws().await;
    tab1.greeting().await;
    let mut tab2 = owner.ws().await;
    tab2.greeting().await;
    for (ws, pet) in [(&mut tab1, pets[0]), (&mut tab2, pets[1])] {
        ws.send(json!({"type": "watch", "pet_id": pet})).await;
        ws.pet_frame(pet).await;
    }
    // The same pet in another tab takes no new place…
    tab2.send(json!({"type": "watch", "pet_id": pets[0]})).await;
    tab2.pet_frame(pets[0]).await;
    // …a third pet does not fit.
    tab1.send(json!({"type": "watch", "pet_id": pets[2]})).await;
    assert_eq!(tab1.error().await, ErrorCode::LimitReached);
    // At the limit, someone else's live pet and a missing id still get the one answer
    // (the limit must not tell which ids exist).
    let mut stranger = app.signed_up("stranger@example.com").await;
    let foreign = stranger.adopt("Foreign", "cat").await.id;
    for id in [foreign, PetId(987_654)] {
        tab1.send(json!({"type": "watch", "pet_id": id})).await;
        assert_eq!(tab1.error().await, ErrorCode::NotFound, "pet {id}");
    }
    // Letting one go makes room. A socket handles its frames in order: once the pong is
    // back, the unwatch is done.
    tab2.send(json!({"type": "unwatch", "pet_id": pets[1]}))
        .await;
    tab2.send(json!({"type": "ping"})).await;
    tab2.until(|m| matches!(m, ServerMsg::Pong).then_some(()))
        .await;
    tab1.send(json!({"type": "watch", "pet_id": pets[2]})).await;
    tab1.pet_frame(pets[2]).await;
    // The onlooker's active list never held more than two of this user's pets.
    let mut active: Vec<PetId> = Vec::new();
    while !active.contains(&pets[2]) || active.contains(&pets[1]) {
        if let ServerMsg::ActivePetsChanged { joined, left, .. } = look.recv().await {
            active.extend(joined.iter().map(|p| p.id));
            active.retain(|id| !left.contains(id));
            active.sort_unstable();
            active.dedup();
            assert!(active.len() <= 2, "{active:?}");
        }
    }
    // Someone else watching their own pet is not affected.
    let mut other = app.signed_up("unrelated@example.com").await;
    let theirs = other.adopt("Delta", "cat").await.id;
    let mut ws = other.ws().await;
    ws.greeting().await;
    ws.send(json!({"type": "watch", "pet_id": theirs})).await;
    ws.pet_frame(theirs).await;
}
