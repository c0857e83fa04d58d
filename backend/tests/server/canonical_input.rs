//! Canonical input through the real server: one stored form per email address (fullwidth
//! and differently cased spellings find the same account), invisible, control and
//! look-alike characters refused with a field error, a NUL in any string field of any
//! endpoint answered 4xx on both databases and never logged as an ERROR, pet names stored
//! in NFC and refused when invisible or carrying bidirectional overrides.

use crate::client::{Client, PASSWORD};
use crate::helpers::{report, Backend, TestApp, TestDb};
use crate::process::ServerProcess;
use crate::smtp::wait_for_eml;
use diesel::prelude::*;
use livepet_server::db::schema::users;
use livepet_shared::wire::PetView;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const INVISIBLE: &str = "no spaces, control characters or invisible characters";
const TRAILING_DOT: &str = "no dot at the end of the domain";
const MIXED: &str =
    "letters from different alphabets mixed in one part (such as a Cyrillic а among Latin letters)";

/// Every stored email address, sorted.
fn stored_emails(app: &TestApp) -> Vec<String> {
    let mut emails: Vec<String> = users::table
        .select(users::email)
        .load(&mut app.db.conn())
        .unwrap();
    emails.sort();
    emails
}

async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[actix_rt::test]
async fn one_address_has_one_account_whatever_its_spelling_sqlite() {
    let app = TestApp::sqlite().await;
    let mut alice = app.client();
    let (status, body) = json_of(alice.register("  Alice@Example.COM ").await).await;
    assert_eq!(status, 201);
    assert_eq!(body["user"]["email"], "alice@example.com");
    let id = body["user"]["id"].clone();

    for variant in [
        "alice@example.com",
        "ALICE@EXAMPLE.COM",
        "ＡＬＩＣＥ＠ＥＸＡＭＰＬＥ．ＣＯＭ",
        "ａｌｉｃｅ@ｅｘａｍｐｌｅ.com",
        "alice@example。com",
    ] {
        // Signing up again is "taken", not a second account.
        let (status, body) = json_of(app.client().register(variant).await).await;
        assert_eq!(status, 409, "{variant}: {body}");
        assert_eq!(body["error"]["code"], "email_taken");
        // Logging in with it is logging in to the same account.
        let mut c = app.client();
        let (status, body) = json_of(c.log_in(variant, PASSWORD, false).await).await;
        assert_eq!(status, 200, "{variant}: {body}");
        assert_eq!(body["user"]["id"], id, "{variant}");
    }
    assert_eq!(stored_emails(&app), ["alice@example.com"]);

    // A reset asked for with a fullwidth spelling is mailed to the stored address.
    let res = app
        .client()
        .post(
            "/api/password-reset",
            json!({"email": "ＡＬＩＣＥ＠ＥＸＡＭＰＬＥ．ＣＯＭ"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let mail = wait_for_eml(app.mail_dir(), "alice@example.com", Duration::from_secs(15)).await;
    assert_eq!(mail.subject, "Reset your LivePet password");

    // An address written wholly in Cyrillic is a real, different address: its own account.
    let (status, body) = json_of(app.client().register("алиса@example.com").await).await;
    assert_eq!(status, 201, "{body}");
    assert_ne!(body["user"]["id"], id);
    assert_eq!(
        stored_emails(&app),
        ["alice@example.com", "алиса@example.com"]
    );
}

#[actix_rt::test]
async fn bad_email_addresses_are_refused_and_never_log_in_sqlite() {
    let app = TestApp::sqlite().await;
    let mut owner = app.signed_up("alice@example.com").await;
    let wrong_password = json_of(
        app.client()
            .log_in("alice@example.com", "not the right password", false)
            .await,
    )
    .await;
    assert_eq!(wrong_password.0, 401);
    assert_eq!(
        wrong_password.1["error"]["message"],
        "wrong email or password"
    );

    let cases = [
        ("al\u{200b}ice@example.com", INVISIBLE),
        ("alice\u{200d}@example.com", INVISIBLE),
        ("\u{feff}alice@example.com", INVISIBLE),
        ("alice\u{202e}moc.elpmaxe@example.com", INVISIBLE),
        ("alice\u{1b}[0m@example.com", INVISIBLE),
        ("alice\0@example.com", INVISIBLE),
        ("alice@example.com\0", INVISIBLE),
        ("al\u{3164}ice@example.com", INVISIBLE),
        ("alice@example.com.", TRAILING_DOT),
        ("\u{430}lice@example.com", MIXED),
        ("alice@ex\u{430}mple.com", MIXED),
        ("alice@xn--exmple-4nf.com", MIXED),
    ];
    for (raw, message) in cases {
        // Sign-up: 422 with the reason beside the field.
        let (status, body) = json_of(app.client().register(raw).await).await;
        assert_eq!(status, 422, "{raw:?}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{raw:?}");
        assert_eq!(body["error"]["fields"]["email"], message, "{raw:?}");
        // Email change: the same.
        let (status, body) = json_of(
            owner
                .put(
                    "/api/me/email",
                    json!({"current_password": PASSWORD, "email": raw}),
                )
                .await,
        )
        .await;
        assert_eq!(status, 422, "{raw:?}: {body}");
        assert_eq!(body["error"]["fields"]["email"], message, "{raw:?}");
        // Log-in: exactly a wrong password, whatever the password.
        let got = json_of(app.client().log_in(raw, PASSWORD, false).await).await;
        assert_eq!(got, wrong_password, "{raw:?}");
        // Reset: the same 202 as for any address.
        let res = app
            .client()
            .post("/api/password-reset", json!({"email": raw}))
            .await;
        assert_eq!(res.status(), 202, "{raw:?}");
    }
    assert_eq!(stored_emails(&app), ["alice@example.com"]);

    // A malformed address costs a log-in as much as a wrong password: the dummy
    // verification runs even though nothing is looked up.
    let time = |email: &'static str, password: &'static str| {
        let app_base = app.base();
        async move {
            let mut c = Client::new(&app_base);
            let t = Instant::now();
            let status = c.log_in(email, password, false).await.status();
            assert_eq!(status, 401);
            t.elapsed().as_secs_f64() * 1000.0
        }
    };
    let (mut malformed, mut wrong) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..7 {
        malformed = malformed.min(time("alice\0@example.com", PASSWORD).await);
        wrong = wrong.min(time("alice@example.com", "not the right password").await);
    }
    let ratio = malformed.max(wrong) / malformed.min(wrong);
    report(&format!(
        "login timing (fastest of 7): malformed email {malformed:.1} ms, wrong password {wrong:.1} ms (ratio {ratio:.2})"
    ));
    assert!(
        ratio < 2.0,
        "timing tells a malformed address from a wrong password: {malformed:.1} vs {wrong:.1} ms"
    );
}

/// A NUL in every string field of every endpoint: the endpoint's own answer to bad input,
/// never a 5xx, and nothing logged as an ERROR (PostgreSQL refuses NUL in text, so a NUL
/// that reached it would be both). Runs the real binary to read its log.
async fn a_nul_anywhere_is_refused_never_a_500(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let mut server =
        ServerProcess::start(db.raw_url(), &["--auth-attempts-per-minute", "1000"]).await;
    let mut user = Client::new(&server.base);
    user.sign_up("nul@example.com").await;
    let pet: PetView = user.adopt("Biscuit", "cat").await;
    let mut anon = Client::new(&server.base);

    let checks: Vec<(&str, u16, reqwest::Response)> =
        vec![
        (
            "sign-up, email",
            422,
            anon.post(
                "/api/users",
                json!({"email": "new\u{0}@example.com", "password": PASSWORD}),
            )
            .await,
        ),
        (
            "sign-up, password",
            422,
            anon.post(
                "/api/users",
                json!({"email": "new@example.com", "password": "correct horse\u{0}battery"}),
            )
            .await,
        ),
        (
            "log-in, email",
            401,
            anon.log_in("nul\u{0}@example.com", PASSWORD, false).await,
        ),
        (
            "log-in, password",
            401,
            anon.log_in("nul@example.com", "correct horse\u{0}battery", false)
                .await,
        ),
        (
            "reset request, email",
            202,
            anon.post("/api/password-reset", json!({"email": "nul@example.com\u{0}"}))
                .await,
        ),
        (
            "reset, token",
            400,
            anon.post(
                "/api/password-reset/abc%00def",
                json!({"password": "a brand new passphrase"}),
            )
            .await,
        ),
        (
            "reset, password",
            422,
            anon.post(
                "/api/password-reset/abcdef",
                json!({"password": "a brand new\u{0}passphrase"}),
            )
            .await,
        ),
        (
            "password change, current",
            401,
            user.put(
                "/api/me/password",
                json!({"current_password": "\u{0}", "new_password": "a brand new passphrase"}),
            )
            .await,
        ),
        (
            "password change, new",
            422,
            user.put(
                "/api/me/password",
                json!({"current_password": PASSWORD, "new_password": "a brand new\u{0}passphrase"}),
            )
            .await,
        ),
        (
            "email change, email",
            422,
            user.put(
                "/api/me/email",
                json!({"current_password": PASSWORD, "email": "other\u{0}@example.com"}),
            )
            .await,
        ),
        (
            "email change, password",
            401,
            user.put(
                "/api/me/email",
                json!({"current_password": "\u{0}", "email": "other@example.com"}),
            )
            .await,
        ),
        (
            "email confirmation, token",
            400,
            anon.post("/api/me/email/%00", json!({})).await,
        ),
        (
            "account deletion, password",
            401,
            user.delete_json("/api/me", json!({"password": "\u{0}"}))
                .await,
        ),
        (
            "adoption, name",
            422,
            user.post("/api/pets", json!({"name": "Rex\u{0}", "species": "cat"}))
                .await,
        ),
        (
            "adoption, species",
            422,
            user.post("/api/pets", json!({"name": "Rex", "species": "cat\u{0}"}))
                .await,
        ),
        ("pet, id", 404, user.get("/api/pets/%00").await),
        ("pets page, before", 400, user.get("/api/pets?before=%00").await),
    ];
    for (what, expected, res) in checks {
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(status, expected, "{what}: {text}");
        if status != 202 {
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
            assert!(body["error"]["code"].is_string(), "{what}: {body}");
        }
    }
    // The reset request is looked at after its 202: wait until it has been.
    server
        .wait_logged(
            "password reset asked for something that is not an email address",
            Duration::from_secs(10),
        )
        .await;
    // Nothing was changed on the way, and the server still serves this user.
    let mine: Vec<Value> = user.get("/api/pets").await.json().await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], pet.id.0);
    let mut again = Client::new(&server.base);
    assert_eq!(
        again
            .log_in("nul@example.com", PASSWORD, false)
            .await
            .status(),
        200
    );
    server.stop().await;
    let log = server.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "ERROR lines:\n{}", errors.join("\n"));
}

on_both_databases!(async a_nul_anywhere_is_refused_never_a_500);

#[actix_rt::test]
async fn bad_pet_names_are_refused_with_a_field_error_sqlite() {
    let app = TestApp::sqlite().await;
    let mut c = app.signed_up("names@example.com").await;
    let format =
        "no invisible formatting characters (zero-width, right-to-left override, byte-order mark)";
    let invisible = "the name must have something visible in it";
    let control = "no control characters";
    let long = "x".repeat(101);
    let cases = [
        ("\u{200b}\u{200b}\u{200b}", format),
        ("Rex\u{200d}Max", format),
        ("ab\u{202e}gnp.exe", format),
        ("\u{2066}Rex\u{2069}", format),
        ("\u{feff}Rex", format),
        ("Re\u{ad}x", format),
        ("\u{3164}\u{3164}\u{3164}", invisible),
        ("\u{2800}\u{2800}\u{2800}", invisible),
        ("\u{115f}\u{1160}\u{3164}\u{ffa0}", invisible),
        ("Rex\u{1b}[31m", control),
        ("Rex\u{0}", control),
        ("Rex\nMax", control),
        ("ab", "at least 3 characters"),
        (" \u{3000}ab\u{3000} ", "at least 3 characters"),
        (long.as_str(), "at most 100 characters"),
    ];
    for (name, message) in cases {
        let (status, body) = json_of(
            c.post("/api/pets", json!({"name": name, "species": "cat"}))
                .await,
        )
        .await;
        assert_eq!(status, 422, "{name:?}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{name:?}");
        assert_eq!(body["error"]["fields"]["name"], message, "{name:?}");
    }
    let stored = livepet_server::db::queries::all_pets(&mut app.db.conn()).unwrap();
    assert!(stored.is_empty(), "a refused name was stored");
}

#[actix_rt::test]
async fn pet_names_are_stored_in_nfc_sqlite() {
    let app = TestApp::sqlite().await;
    let mut c = app.signed_up("nfc@example.com").await;
    // "Zoé" typed with a combining accent (as some keyboards and file names do).
    let zoe = c.adopt("  Zoe\u{301}  ", "cat").await;
    assert_eq!(zoe.name, "Zo\u{e9}");
    // The length rule counts the stored form: 100 decomposed é are 200 code points typed.
    let long = c.adopt(&"e\u{301}".repeat(100), "owl").await;
    assert_eq!(long.name, "\u{e9}".repeat(100));
    // Blank characters beside visible ones are only spacing.
    let spaced = c.adopt("Rex\u{3164}Jr", "dog").await;
    assert_eq!(spaced.name, "Rex\u{3164}Jr");

    let listed: Vec<PetView> = c.get("/api/pets").await.json().await.unwrap();
    assert!(listed.iter().any(|p| p.name == "Zo\u{e9}"));
    let mut stored: Vec<String> = livepet_server::db::queries::all_pets(&mut app.db.conn())
        .unwrap()
        .into_iter()
        .map(|p| p.name.to_string())
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            "Rex\u{3164}Jr".to_string(),
            "Zo\u{e9}".into(),
            "\u{e9}".repeat(100)
        ]
    );
}
