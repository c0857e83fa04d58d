//! Live sessions over real WebSockets: watching, feeding, treats, the active list, death,
//! authorization, bad frames, and the Origin/cookie checks on the upgrade.

use crate::client::{Got, Ws};
use crate::helpers::{metric, Backend, TestApp};
use awc::ws::Message;
use livepet_shared::wire::{ErrorCode, ServerMsg};
use livepet_shared::PetId;
use serde_json::json;

/// Waits for the active list to gain (`joined`) or lose (`left`) a pet.
async fn sees_join(ws: &mut Ws, id: PetId) {
    ws.until(|m| match m {
        ServerMsg::ActivePetsChanged { joined, .. } if joined.iter().any(|p| p.id == id) => {
            Some(())
        }
        _ => None,
    })
    .await;
}

async fn sees_leave(ws: &mut Ws, id: PetId) {
    ws.until(|m| match m {
        ServerMsg::ActivePetsChanged { left, .. } if left.contains(&id) => Some(()),
        _ => None,
    })
    .await;
}

async fn live_story(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut a = app.client();
    let mut b = app.client();
    let pa = a.signup_with_pet("a@example.com", "Alpha").await;
    let pb = b.signup_with_pet("b@example.com", "Bravo").await;

    // B is on its pet's page in two tabs.
    let mut b1 = b.ws().await;
    let mut b2 = b.ws().await;
    assert_eq!(b1.greeting().await, (vec![], 5));
    assert_eq!(b2.greeting().await.1, 5);
    b1.send(json!({"type":"watch","pet_id":pb.id})).await;
    b1.pet_frame(pb.id).await;

    // A watches: the state at once, then every tick; B sees A's pet join.
    let mut a1 = a.ws().await;
    let (active, treats) = a1.greeting().await;
    assert_eq!(active, vec![pb.id], "B's pet is already on screen");
    assert_eq!(treats, 5);
    a1.send(json!({"type":"watch","pet_id":pa.id})).await;
    let first = a1.pet_frame(pa.id).await;
    let next = a1.pet_frame(pa.id).await;
    let after = a1.pet_frame(pa.id).await;
    assert!(next.age >= first.age);
    assert_eq!(after.age, next.age + 1, "a frame every tick");
    sees_join(&mut b1, pa.id).await;
    sees_join(&mut b2, pa.id).await;

    // B gives A's pet a treat: both B tabs get 4, A's page shows hunger -20.
    let before = a1.pet_frame(pa.id).await;
    b1.send(json!({"type":"give_treat","pet_id":pa.id})).await;
    assert_eq!(b1.treats().await, 4);
    assert_eq!(b2.treats().await, 4);
    let treated = a1
        .until(|m| match m {
            ServerMsg::Pet { pet } if pet.id == pa.id && pet.age == before.age => Some(pet.clone()),
            ServerMsg::Pet { pet }
                if pet.id == pa.id
                    && pet.hunger + 20 == (before.hunger + 5 * (pet.age - before.age)).min(500) =>
            {
                Some(pet.clone())
            }
            _ => None,
        })
        .await;
    assert!(treated.hunger < before.hunger + 5 * (treated.age - before.age));
    assert_eq!(b.treats().await, 4, "spent in the database");

    // A feeds: hunger -100 in the next frame.
    let before = a1.pet_frame(pa.id).await;
    a1.send(json!({"type":"feed","pet_id":pa.id})).await;
    let fed = a1
        .until(|m| match m {
            ServerMsg::Pet { pet } if pet.id == pa.id && pet.age == before.age => Some(pet.clone()),
            _ => None,
        })
        .await;
    assert_eq!(fed.hunger, before.hunger.saturating_sub(100));

    let metrics = app.metrics().await;
    assert_eq!(metric(&metrics, "livepet_ws_connections"), Some(3.0));
    assert_eq!(metric(&metrics, "livepet_active_pets"), Some(2.0));
    assert_eq!(metric(&metrics, "livepet_viewers"), Some(2.0));
    assert!(metric(&metrics, "livepet_ws_frames_in_total").unwrap() >= 4.0);

    // A closes the page: B sees the pet leave.
    a1.close().await;
    sees_leave(&mut b1, pa.id).await;
    sees_leave(&mut b2, pa.id).await;
}

on_both_databases!(async live_story);

#[actix_rt::test]
async fn death_reaches_viewers_and_leaves_the_list_sqlite() {
    let app = TestApp::sqlite_with(|args| {
        args.death_age = 40;
        args.tick_ms = 20;
    })
    .await;
    let mut a = app.client();
    let b = app.signed_up("b@example.com").await;
    let mut bw = b.ws().await;
    bw.greeting().await;
    let pa = a.signup_with_pet("a@example.com", "Brief").await;
    let mut aw = a.ws().await;
    aw.greeting().await;
    aw.send(json!({"type":"watch","pet_id":pa.id})).await;
    sees_join(&mut bw, pa.id).await;
    let last = aw
        .until(|m| match m {
            ServerMsg::Pet { pet } if !pet.alive => Some(pet.clone()),
            _ => None,
        })
        .await;
    assert_eq!(last.age, 41);
    sees_leave(&mut bw, pa.id).await;
    // Feeding the dead pet is refused with its own code.
    aw.send(json!({"type":"feed","pet_id":pa.id})).await;
    assert_eq!(aw.error().await, ErrorCode::PetDead);
}

#[actix_rt::test]
async fn only_owners_touch_their_pets_and_treats_never_go_below_zero_sqlite() {
    let app = TestApp::sqlite().await;
    let mut a = app.client();
    let mut b = app.client();
    let pa = a.signup_with_pet("a@example.com", "Alpha").await;
    let pb = b.signup_with_pet("b@example.com", "Bravo").await;
    let mut aw = a.ws().await;
    aw.greeting().await;
    let mut bw = b.ws().await;
    bw.greeting().await;

    // B may not watch or feed A's pet (to B it does not exist); B's pet is not active yet.
    bw.send(json!({"type":"watch","pet_id":pa.id})).await;
    assert_eq!(bw.error().await, ErrorCode::NotFound);
    bw.send(json!({"type":"feed","pet_id":pa.id})).await;
    assert_eq!(bw.error().await, ErrorCode::NotFound);
    aw.send(json!({"type":"give_treat","pet_id":pb.id})).await;
    assert_eq!(aw.error().await, ErrorCode::NotActive);

    // A's pet on screen: A may not treat it, B may.
    aw.send(json!({"type":"watch","pet_id":pa.id})).await;
    aw.pet_frame(pa.id).await;
    sees_join(&mut bw, pa.id).await;
    aw.send(json!({"type":"give_treat","pet_id":pa.id})).await;
    assert_eq!(aw.error().await, ErrorCode::OwnPet);

    // 20 concurrent treats from two sockets of the same user: exactly 5 succeed.
    let mut bw2 = b.ws().await;
    bw2.greeting().await;
    for _ in 0..10 {
        bw.send(json!({"type":"give_treat","pet_id":pa.id})).await;
        bw2.send(json!({"type":"give_treat","pet_id":pa.id})).await;
    }
    // Refusals go to the socket that asked; each success pushes `treats` to both sockets.
    let (mut refused, mut pushes, mut lowest) = (0, [0, 0], u32::MAX);
    while refused < 15 || pushes[0] < 5 || pushes[1] < 5 {
        let (i, msg) = tokio::select! {
            m = bw.recv() => (0, m),
            m = bw2.recv() => (1, m),
        };
        match msg {
            ServerMsg::Error {
                code: ErrorCode::NoTreats,
                ..
            } => refused += 1,
            ServerMsg::Treats { available } => {
                pushes[i] += 1;
                lowest = lowest.min(available);
            }
            ServerMsg::Error { code, .. } => panic!("unexpected error {code:?}"),
            _ => {}
        }
    }
    assert_eq!(pushes, [5, 5], "exactly five treats were spent");
    assert_eq!(refused, 15);
    assert_eq!(lowest, 0);
    assert_eq!(b.treats().await, 0);
    bw.send(json!({"type":"give_treat","pet_id":pa.id})).await;
    assert_eq!(bw.error().await, ErrorCode::NoTreats);
}

#[actix_rt::test]
async fn bad_frames_get_errors_and_others_are_unharmed_sqlite() {
    let app = TestApp::sqlite().await;
    let a = app.signed_up("a@example.com").await;
    let mut good = app.viewer("good@example.com", "Steady").await;

    let mut ws = a.ws().await;
    ws.greeting().await;
    let cases: Vec<(Message, ErrorCode)> = vec![
        (Message::Text("not json".into()), ErrorCode::InvalidJson),
        (
            Message::Text(r#"{"type":"fly"}"#.into()),
            ErrorCode::UnknownType,
        ),
        (
            Message::Text(r#"{"type":"feed"}"#.into()),
            ErrorCode::BadRequest,
        ),
        (
            Message::Text(r#"{"type":"feed","pet_id":"one"}"#.into()),
            ErrorCode::BadRequest,
        ),
        (
            Message::Text(r#"{"type":"watch","pet_id":424242}"#.into()),
            ErrorCode::NotFound,
        ),
        (
            Message::Binary(vec![1, 2, 3].into()),
            ErrorCode::BinaryNotSupported,
        ),
    ];
    for (frame, code) in cases {
        ws.send_raw(frame).await;
        assert_eq!(ws.error().await, code);
    }
    // Still up.
    ws.send(json!({"type":"ping"})).await;
    assert!(matches!(ws.recv().await, ServerMsg::Pong));

    // A 1 MiB frame: closed with "message too big" (1009).
    ws.send_raw(Message::Text("x".repeat(1 << 20).into())).await;
    let closed = loop {
        if let Got::Closed(code) = ws.next().await {
            break code;
        }
    };
    assert_eq!(closed, Some(1009));

    // A flood: rate_limited, then closed for policy (1008).
    let mut flood = a.ws().await;
    flood.greeting().await;
    for _ in 0..400 {
        flood.send(json!({"type":"ping"})).await;
    }
    let mut limited = false;
    let code = loop {
        match flood.next().await {
            Got::Msg(ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            }) => limited = true,
            Got::Msg(_) => {}
            Got::Closed(code) => break code,
        }
    };
    assert!(limited, "rate_limited error before the close");
    assert_eq!(code, Some(1008));

    // The well-behaved client never noticed.
    let f1 = good.ws.pet_frame(good.pet.id).await;
    let f2 = good.ws.pet_frame(good.pet.id).await;
    assert_eq!(f2.age, f1.age + 1);
    good.ws.send(json!({"type":"ping"})).await;
    good.ws
        .until(|m| matches!(m, ServerMsg::Pong).then_some(()))
        .await;
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"livepet_ws_errors_total{code="invalid_json"} 1"#));
    assert!(metrics.contains(r#"livepet_ws_errors_total{code="rate_limited"}"#));
}

#[actix_rt::test]
async fn the_upgrade_checks_origin_and_cookie_sqlite() {
    let app = TestApp::sqlite().await;
    let a = app.signed_up("a@example.com").await;

    assert_eq!(
        a.upgrade(Some("https://evil.example"), &[]).await.err(),
        Some(403)
    );
    assert_eq!(a.upgrade(None, &[]).await.err(), Some(403));

    let anon = app.client();
    assert_eq!(anon.upgrade(Some(&anon.base), &[]).await.err(), Some(401));

    // The right origin and cookie: connected.
    let mut ws = a.ws().await;
    assert_eq!(ws.greeting().await, (vec![], 5));
}
