//! One public origin: `/ws`'s Origin check, the CSP's WebSocket source and the cookie's
//! Secure flag come from configuration (`--public-url`, `--secure-cookies`), and forwarded
//! headers count only from `--trusted-proxies`.

use crate::client::{set_cookie, Client};
use crate::helpers::TestApp;
use serde_json::json;

/// The status of an upgrade with this Origin and extra headers (101 when it succeeds).
async fn upgrade_status(c: &Client, origin: &str, extra: &[(&str, &str)]) -> u16 {
    c.upgrade(Some(origin), extra)
        .await
        .map_or_else(|s| s, |_| 101)
}

#[actix_rt::test]
async fn forwarded_headers_are_ignored_without_trusted_proxies_sqlite() {
    let app = TestApp::sqlite().await;
    let mut c = app.client();
    let evil = "http://evil.example";
    c.sign_up("origin@example.com").await;
    // Without the headers the foreign origin is refused, and with them it still is: only a
    // trusted proxy may say which host was asked for.
    assert_eq!(upgrade_status(&c, evil, &[]).await, 403);
    assert_eq!(
        upgrade_status(&c, evil, &[("X-Forwarded-Host", "evil.example")]).await,
        403
    );
    assert_eq!(
        upgrade_status(&c, evil, &[("Forwarded", "host=evil.example;proto=http")]).await,
        403
    );
    assert_eq!(upgrade_status(&c, &app.base(), &[]).await, 101);
    // A header saying https does not make the cookie Secure.
    let res = c
        .http
        .post(format!("{}/api/session", app.base()))
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "proto=https")
        .json(&json!({"email": "origin@example.com", "password": crate::client::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let set = set_cookie(&res);
    assert!(!set.contains("Secure"), "{set}");
    // Nor does it change the page's WebSocket source.
    let res = c
        .http
        .get(format!("{}/api/me", app.base()))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "evil.example")
        .send()
        .await
        .unwrap();
    let csp = res
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(!csp.contains("evil.example"), "{csp}");
    assert!(
        res.headers().get("strict-transport-security").is_none(),
        "a header saying https does not turn HSTS on"
    );
}

#[actix_rt::test]
async fn the_public_url_is_the_servers_origin_sqlite() {
    let app =
        TestApp::sqlite_with(|a| a.public_url = Some("https://pets.example.com".into())).await;
    let mut c = app.client();
    let res = c.register("public@example.com").await;
    assert_eq!(res.status(), 201);
    let set = set_cookie(&res);
    assert!(
        set.contains("Secure"),
        "an https public URL makes the cookie Secure: {set}"
    );
    assert_eq!(
        upgrade_status(&c, "https://pets.example.com", &[]).await,
        101
    );
    // The address the request happened to use is not the public origin.
    assert_eq!(upgrade_status(&c, &app.base(), &[]).await, 403);
    let res = c.get("/api/me").await;
    let csp = res
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("wss://pets.example.com"), "{csp}");
    // Served over TLS by configuration: browsers are told to keep to https.
    assert_eq!(
        res.headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some("max-age=31536000")
    );
}

#[actix_rt::test]
async fn a_trusted_proxy_may_name_the_host_sqlite() {
    let app =
        TestApp::sqlite_with(|a| a.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let c = app.signed_up("proxied@example.com").await;
    assert_eq!(
        upgrade_status(
            &c,
            "https://front.example",
            &[
                ("X-Forwarded-Host", "front.example"),
                ("X-Forwarded-Proto", "https")
            ]
        )
        .await,
        101
    );
    assert_eq!(upgrade_status(&c, "https://other.example", &[]).await, 403);
}

/// `--metrics-bind` moves /metrics to an address of its own; the app's port no longer
/// serves it.
#[actix_rt::test]
async fn metrics_can_live_on_a_private_address_sqlite() {
    let app = TestApp::sqlite_with(|a| a.metrics_bind = Some("127.0.0.1:0".into())).await;
    let port = app.metrics_port().expect("a metrics port");
    let private = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(private.status(), 200);
    let text = private.text().await.unwrap();
    assert!(text.contains("livepet_pets_alive"), "{text}");
    let public = reqwest::get(format!("{}/metrics", app.base()))
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    // The app itself is served as usual, and the private address serves nothing else.
    assert_eq!(
        reqwest::get(format!("{}/healthz", app.base()))
            .await
            .unwrap()
            .status(),
        200
    );
    let other = reqwest::get(format!("http://127.0.0.1:{port}/api/species"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    app.shutdown().await;
}
