//! Security checks: no account enumeration, no session fixation, cookie flags, SQL injection
//! attempts in every string field, oversized and deeply nested JSON.

use crate::client::{Client, PASSWORD};
use crate::helpers::TestApp;
use livepet_shared::wire::{ErrorCode, ServerMsg};
use serde_json::{json, Value};
use std::time::Instant;

async fn login_ms(c: &mut Client, email: &str, password: &str) -> (u16, f64) {
    let t = Instant::now();
    let res = c
        .post(
            "/api/session",
            json!({"email": email, "password": password}),
        )
        .await;
    (res.status().as_u16(), t.elapsed().as_secs_f64() * 1000.0)
}

/// The fastest of several tries: noise from a busy machine only ever adds time, while the
/// cost of the work itself (one argon2id verification) is a floor under every try.
fn fastest(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
}

#[actix_rt::test]
async fn unknown_email_and_wrong_password_look_the_same_sqlite() {
    let app = TestApp::sqlite().await;
    let mut c = app.signed_up("known@example.com").await;
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for i in 0..9 {
        let (s1, t1) = login_ms(&mut c, &format!("ghost{i}@example.com"), PASSWORD).await;
        let (s2, t2) = login_ms(&mut c, "known@example.com", "not the right one").await;
        assert_eq!((s1, s2), (401, 401));
        unknown.push(t1);
        wrong.push(t2);
    }
    let (u, w) = (fastest(unknown), fastest(wrong));
    let ratio = u.max(w) / u.min(w);
    crate::helpers::report(&format!(
        "login timing (fastest of 9): unknown email {u:.1} ms, wrong password {w:.1} ms (ratio {ratio:.2})"
    ));
    // Both pay one argon2id verification; without the dummy verification the unknown email
    // would answer many times faster.
    assert!(
        ratio < 2.0,
        "timing reveals which emails exist: {u:.1} vs {w:.1} ms"
    );
}

#[actix_rt::test]
async fn each_login_gets_a_fresh_token_and_secure_cookies_when_configured_sqlite() {
    let app = TestApp::sqlite_with(|args| args.secure_cookies = true).await;
    let mut c = app.client();
    let res = c.register("fix@example.com").await;
    let set = res.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(set.contains("Secure"), "{set}");
    // An attacker-planted cookie is never adopted: login issues a new token.
    c.cookie = Some("planted-by-attacker".into());
    c.post(
        "/api/session",
        json!({"email":"fix@example.com","password":PASSWORD}),
    )
    .await;
    let first = c.cookie.clone().unwrap();
    assert_ne!(first, "planted-by-attacker");
    c.post(
        "/api/session",
        json!({"email":"fix@example.com","password":PASSWORD}),
    )
    .await;
    assert_ne!(
        c.cookie.clone().unwrap(),
        first,
        "a new token at each login"
    );
}

#[actix_rt::test]
async fn sql_injection_attempts_are_only_ever_data_sqlite() {
    let app = TestApp::sqlite().await;
    let payloads = [
        "' OR '1'='1",
        "x'); DROP TABLE users; --",
        "\"; DELETE FROM pets; --",
        "1; UPDATE users SET available_treats = 999",
        "' UNION SELECT password_hash FROM users --",
    ];
    let owner = app.signed_up("owner@example.com").await;
    for (i, p) in payloads.iter().enumerate() {
        // Email (made an address by its @), password, pet name and species.
        let mut email = format!("{p}{i}@example.com").replace(' ', "");
        let mut c = app.client();
        let password = format!("pw {p}");
        let res = c
            .post("/api/users", json!({"email": email, "password": password}))
            .await;
        // `(`, `;` and `"` have no place in an address: refused as one, never run as SQL.
        if res.status() == 422 {
            let body: Value = res.json().await.unwrap();
            assert_eq!(
                body["error"]["fields"]["email"], "enter an email address like name@example.com",
                "{p}"
            );
            let (status, _) = login_ms(&mut c, &email, &password).await;
            assert_eq!(status, 401, "{p}");
            email = format!("injected{i}@example.com");
            let res = c
                .post("/api/users", json!({"email": email, "password": password}))
                .await;
            assert_eq!(res.status(), 201, "{p}");
        } else {
            assert_eq!(res.status(), 201, "{p}");
        }
        let (status, _) = login_ms(&mut c, &email, &password).await;
        assert_eq!(status, 200);
        let (status, _) = login_ms(&mut c, &email, p).await;
        assert_eq!(status, 401, "an injected password is just a wrong password");
        let pet = c.adopt(&format!("Pet {p}"), "cat").await;
        assert_eq!(pet.name, format!("Pet {p}").trim());
        let res = c
            .post("/api/pets", json!({"name": "Valid", "species": p}))
            .await;
        assert_eq!(res.status(), 422);
    }
    // Nothing was dropped, deleted or escalated.
    assert_eq!(owner.treats().await, 5);
    let mine: Vec<Value> = owner.get("/api/pets").await.json().await.unwrap();
    assert!(mine.is_empty());
    let rows = livepet_server::db::queries::all_pets(&mut app.db.conn()).unwrap();
    assert_eq!(rows.len(), payloads.len());
}

#[actix_rt::test]
async fn oversized_and_deeply_nested_json_get_clear_errors_sqlite() {
    let app = TestApp::sqlite().await;
    let c = app.signed_up("deep@example.com").await;

    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    // Every API body is a flat object of strings, so a deep value is refused at its first
    // bracket as the wrong type, never recursed into: a clear 400, not a stack overflow.
    let res = c
        .post_raw("/api/pets", "application/json", deep.clone().into_bytes())
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    let inner = format!(r#"{{"name":{deep},"species":"cat"}}"#);
    let res = c
        .post_raw("/api/pets", "application/json", inner.into_bytes())
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    let huge = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let res = c
        .post_raw("/api/users", "application/json", huge.into_bytes())
        .await;
    assert_eq!(res.status(), 413);

    let mut ws = c.ws().await;
    ws.greeting().await;
    ws.send_raw(awc::ws::Message::Text(deep.into())).await;
    assert_eq!(ws.error().await, ErrorCode::InvalidJson);
    let nested_obj = format!("{}1{}", "{\"a\":".repeat(2000), "}".repeat(2000));
    ws.send_raw(awc::ws::Message::Text(nested_obj.into())).await;
    assert_eq!(ws.error().await, ErrorCode::InvalidJson);
    ws.send(json!({"type":"ping"})).await;
    ws.until(|m| matches!(m, ServerMsg::Pong).then_some(()))
        .await;
}

/// Random and mutated bodies for every JSON endpoint: always a JSON answer with a 2xx or a
/// 4xx code, never a 5xx, never an HTML page, and the server keeps serving.
#[actix_rt::test]
async fn random_api_bodies_never_break_the_server_sqlite() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let app = TestApp::sqlite().await;
    let c = app.signed_up("fuzz@example.com").await;
    let value = prop_oneof![
        Just(json!(null)),
        any::<i64>().prop_map(|i| json!(i)),
        any::<bool>().prop_map(|b| json!(b)),
        ".{0,40}".prop_map(|s| json!(s)),
        Just(json!([])),
        Just(json!({})),
    ];
    let body = prop_oneof![
        ".{0,300}",
        (value.clone(), value.clone())
            .prop_map(|(a, b)| json!({"email": a, "password": b}).to_string()),
        (value.clone(), value).prop_map(|(a, b)| json!({"name": a, "species": b}).to_string()),
    ];
    let paths = ["/api/users", "/api/session", "/api/pets"];
    let mut runner = TestRunner::deterministic();
    let cases = 300;
    for i in 0..cases {
        let text = body.new_tree(&mut runner).unwrap().current();
        let path = paths[i % paths.len()];
        let res = c
            .post_raw(path, "application/json", text.clone().into_bytes())
            .await;
        let status = res.status().as_u16();
        assert!(
            (200..300).contains(&status) || (400..500).contains(&status),
            "{path} answered {status} to {text:?}"
        );
        if status >= 400 {
            let body: Value = res.json().await.unwrap();
            assert!(body["error"]["code"].is_string(), "{path}: {body}");
        }
    }
    let res = c.get("/api/me").await;
    assert_eq!(res.status(), 200);
    crate::helpers::report(&format!(
        "api fuzz: {cases} random bodies across {} endpoints",
        paths.len()
    ));
}
