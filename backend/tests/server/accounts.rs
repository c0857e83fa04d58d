//! Account flows over real HTTP on both databases.

use crate::client::{set_cookie, Client, PASSWORD};
use crate::helpers::{Backend, TestApp};
use serde_json::{json, Value};

async fn account_flows(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mut a = app.client();

    // Register: 201, the user, and a session cookie with the right flags.
    let res = a.register("Alice@Example.com").await;
    assert_eq!(res.status(), 201);
    let cookie = set_cookie(&res);
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain http: not Secure unless configured"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["user"]["available_treats"], 5);
    assert!(body["user"].get("password_hash").is_none());
    let first_token = a.cookie.clone().unwrap();
    assert_eq!(first_token.len(), 43);

    // The token itself is never stored, only its hash.
    let stored: Vec<String> = {
        use diesel::prelude::*;
        use livepet_server::db::schema::sessions;
        livepet_server::with_conn!(&mut app.db.conn(), |c| sessions::table
            .select(sessions::token_hash)
            .load(c)
            .unwrap())
    };
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], first_token);
    assert_eq!(
        stored[0],
        livepet_server::services::accounts::token_hash(&first_token)
    );

    let me: Value = a.get("/api/me").await.json().await.unwrap();
    assert_eq!(me["user"]["email"], "alice@example.com");

    // Duplicate email, in any case: 409.
    let mut other = app.client();
    let res = other.register("ALICE@example.com").await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "email_taken");

    // Invalid: 422 with a message per field.
    let res = other
        .post(
            "/api/users",
            json!({"email": "no-at-sign", "password": "short"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_failed");
    assert!(body["error"]["fields"]["email"].is_string());
    assert!(body["error"]["fields"]["password"].is_string());

    // Wrong password and unknown email: the same 401.
    let wrong = other
        .post(
            "/api/session",
            json!({"email": "alice@example.com", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown = other
        .post(
            "/api/session",
            json!({"email": "nobody@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(unknown.status(), 401);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);

    // Login: 200 and a new token (no session fixation).
    let mut a2 = app.client();
    let res = a2
        .post(
            "/api/session",
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_ne!(a2.cookie, a.cookie);

    // Logout revokes server-side: the old cookie no longer works.
    let old = a2.cookie.clone();
    let res = a2.delete("/api/session").await;
    assert_eq!(res.status(), 204);
    assert_eq!(a2.cookie, None, "cookie cleared");
    a2.cookie = old;
    let res = a2.get("/api/me").await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    // A restart keeps everyone logged in.
    let db = app.shutdown().await;
    let app = TestApp::spawn_on(db, |_| {}).await;
    let a = Client {
        base: app.base(),
        ..a
    };
    let res = a.get("/api/me").await;
    assert_eq!(res.status(), 200, "session survives a restart");
}

on_both_databases!(async account_flows);

#[actix_rt::test]
async fn login_and_registration_are_rate_limited_sqlite() {
    let app = TestApp::sqlite_with(|args| args.auth_attempts_per_minute = 3).await;
    let mut c = app.client();
    for _ in 0..3 {
        let res = c
            .post(
                "/api/session",
                json!({"email": "x@example.com", "password": PASSWORD}),
            )
            .await;
        assert_eq!(res.status(), 401);
    }
    let res = c.register("x@example.com").await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

/// Logs in as nobody from a client that says (through X-Forwarded-For) it is `forwarded`;
/// the status.
async fn attempt_as(c: &Client, forwarded: &str) -> u16 {
    c.http
        .post(format!("{}/api/session", c.base))
        .header("X-Forwarded-For", forwarded)
        .json(&json!({"email": "x@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Behind a trusted proxy the attempt limit counts each client the proxy names; without
/// `--trusted-proxies` the header is ignored, so a client cannot dodge the limit with it.
#[actix_rt::test]
async fn the_attempt_limit_counts_the_client_a_trusted_proxy_names_sqlite() {
    let proxied = TestApp::sqlite_with(|args| {
        args.auth_attempts_per_minute = 2;
        args.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let c = proxied.client();
    assert_eq!(attempt_as(&c, "203.0.113.1").await, 401);
    assert_eq!(attempt_as(&c, "203.0.113.1").await, 401);
    assert_eq!(attempt_as(&c, "203.0.113.1").await, 429);
    // Another client behind the same proxy has its own allowance; a forged hop before the
    // one the proxy appended does not change who is counted.
    assert_eq!(attempt_as(&c, "203.0.113.2").await, 401);
    assert_eq!(attempt_as(&c, "198.51.100.7, 203.0.113.1").await, 429);

    let direct = TestApp::sqlite_with(|args| args.auth_attempts_per_minute = 2).await;
    let c = direct.client();
    assert_eq!(attempt_as(&c, "203.0.113.1").await, 401);
    assert_eq!(attempt_as(&c, "203.0.113.2").await, 401);
    // Untrusted: every request is the peer's, whatever the header says.
    assert_eq!(attempt_as(&c, "203.0.113.3").await, 429);
}
