//! Password reset and email change by mailed link, read from real delivered mail: a real
//! SMTP receiver in this process, or the `.eml` file a server without SMTP writes.

use crate::client::{Client, PASSWORD};
use crate::helpers::{report, Backend, TestApp};
use crate::smtp::SmtpReceiver;
use livepet_shared::wire::CLOSE_SESSION_ENDED;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const MAIL_TIMEOUT: Duration = Duration::from_secs(20);
const NEW_PASSWORD: &str = "a freshly reset passphrase";

/// The token at the end of a mailed link.
fn token_of(link: &str) -> String {
    link.rsplit('/').next().unwrap().to_string()
}

async fn request_reset(c: &mut Client, email: &str) -> (u16, String, f64) {
    let t = Instant::now();
    let res = c.post("/api/password-reset", json!({"email": email})).await;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    (res.status().as_u16(), res.text().await.unwrap(), ms)
}

fn fastest(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// A real SMTP receiver and a server that mails through it.
async fn with_smtp(backend: Backend) -> Option<(SmtpReceiver, TestApp)> {
    let smtp = SmtpReceiver::start();
    let url = smtp.url().parse().unwrap();
    let app = TestApp::spawn_with(backend, |a| a.smtp_url = Some(url)).await?;
    Some((smtp, app))
}

async fn a_reset_link_works_once_and_ends_every_session(backend: Backend) {
    let Some((smtp, app)) = with_smtp(backend).await else {
        return;
    };
    let email = "forgetful@example.com";
    let a = app.signed_up(email).await;
    let b = a.another_login(email).await;
    let (mut w1, mut w2) = (a.greeted_ws().await, b.greeted_ws().await);

    // Known and unknown addresses get the same answer, in the same time.
    let mut anon = app.client();
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..9 {
        let (s1, b1, t1) = request_reset(&mut anon, &format!("nobody{i}@example.com")).await;
        let (s2, b2, t2) = request_reset(&mut anon, email).await;
        assert_eq!((s1, s2), (202, 202));
        assert_eq!(b1, b2, "the body tells which address has an account");
        unknown.push(t1);
        known.push(t2);
    }
    let (u, k) = (fastest(&unknown), fastest(&known));
    report(&format!(
        "reset request timing (fastest of 9): unknown {u:.2} ms, known {k:.2} ms"
    ));
    // Both answer before any lookup; the same bound as the login timing test, plus a few
    // milliseconds of slack since both are far below a millisecond's resolution of noise.
    assert!(
        u.max(k) < 2.0 * u.min(k) + 5.0,
        "timing reveals which emails exist: {u:.2} vs {k:.2} ms"
    );

    // Nine links were sent; only the newest works (each new one replaces the older).
    let mut links = Vec::new();
    for _ in 0..9 {
        let mail = smtp.wait_for(email, MAIL_TIMEOUT).await;
        assert_eq!(mail.subject, "Reset your LivePet password");
        let link = mail
            .link_containing("/reset-password/")
            .expect("a reset link in the mail")
            .to_string();
        assert!(link.starts_with(&app.base()), "{link}");
        links.push(link);
    }
    assert!(
        smtp.received().iter().all(|m| m.is_for(email)),
        "mail went to an address without an account"
    );
    // Which arrived last is not which was made last: try each until one works.
    let mut c = app.client();
    let mut worked = None;
    for link in &links {
        let res = c
            .post(
                &format!("/api/password-reset/{}", token_of(link)),
                json!({"password": NEW_PASSWORD}),
            )
            .await;
        match res.status().as_u16() {
            204 => {
                assert!(worked.is_none(), "two reset links worked");
                worked = Some(Instant::now());
            }
            400 => {
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["error"]["code"], "invalid_token");
            }
            other => panic!("reset answered {other}"),
        }
    }
    let reset_at = worked.expect("the newest link works");
    for (ws, which) in [(&mut w1, "first"), (&mut w2, "second")] {
        assert_eq!(ws.closed().await, Some(CLOSE_SESSION_ENDED));
        report(&format!(
            "reset: {which} session's socket closed {:.0} ms after the reset was answered",
            reset_at.elapsed().as_secs_f64() * 1000.0
        ));
    }
    assert_eq!(a.get("/api/me").await.status(), 401);
    assert_eq!(b.get("/api/me").await.status(), 401);
    // A used link fails; the old password fails; the new one works.
    for link in &links {
        let res = c
            .post(
                &format!("/api/password-reset/{}", token_of(link)),
                json!({"password": "yet another passphrase"}),
            )
            .await;
        assert_eq!(res.status(), 400);
    }
    assert_eq!(c.log_in(email, PASSWORD, false).await.status(), 401);
    assert_eq!(c.log_in(email, NEW_PASSWORD, false).await.status(), 200);
}
on_both_databases!(async a_reset_link_works_once_and_ends_every_session);

async fn an_expired_or_unknown_reset_link_fails(backend: Backend) {
    let Some((smtp, app)) = with_smtp(backend).await else {
        return;
    };
    let email = "late@example.com";
    app.signed_up(email).await;
    let mut c = app.client();
    assert_eq!(request_reset(&mut c, email).await.0, 202);
    let mail = smtp.wait_for(email, MAIL_TIMEOUT).await;
    let token = token_of(mail.link_containing("/reset-password/").unwrap());

    // A weak password is refused without using the link up.
    let res = c
        .post(
            &format!("/api/password-reset/{token}"),
            json!({"password": "short"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    // A day later the link has expired.
    {
        use diesel::prelude::*;
        use livepet_server::db::schema::account_tokens;
        livepet_server::with_conn!(&mut app.db.conn(), |c| diesel::update(
            account_tokens::table
        )
        .set(account_tokens::expires_at.eq(1))
        .execute(c)
        .unwrap());
    }
    for t in [token.as_str(), "made-up-token", ""] {
        let res = c
            .post(
                &format!("/api/password-reset/{t}"),
                json!({"password": NEW_PASSWORD}),
            )
            .await;
        assert!(
            res.status() == 400 || (t.is_empty() && res.status() == 404),
            "{t:?}: {}",
            res.status()
        );
    }
    assert_eq!(c.log_in(email, PASSWORD, false).await.status(), 200);
    // Only the hash of a link is stored.
    let stored: Vec<String> = {
        use diesel::prelude::*;
        use livepet_server::db::schema::account_tokens;
        assert_eq!(request_reset(&mut c, email).await.0, 202);
        let mail = smtp.wait_for(email, MAIL_TIMEOUT).await;
        let token = token_of(mail.link_containing("/reset-password/").unwrap());
        let stored = livepet_server::with_conn!(&mut app.db.conn(), |c| account_tokens::table
            .select(account_tokens::token_hash)
            .load(c)
            .unwrap());
        assert_eq!(
            stored,
            vec![livepet_server::services::accounts::token_hash(&token)]
        );
        stored
    };
    assert_eq!(stored.len(), 1);
}
on_both_databases!(async an_expired_or_unknown_reset_link_fails);

async fn an_email_changes_only_once_confirmed(backend: Backend) {
    let Some((smtp, app)) = with_smtp(backend).await else {
        return;
    };
    let mut a = app.signed_up("old@example.com").await;
    let res = a
        .put(
            "/api/me/email",
            json!({"current_password": "wrong password!", "email": "new@example.com"}),
        )
        .await;
    assert_eq!(res.status(), 401);
    let res = a
        .put(
            "/api/me/email",
            json!({"current_password": PASSWORD, "email": "not an address"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let res = a
        .put(
            "/api/me/email",
            json!({"current_password": PASSWORD, "email": "New@Example.com"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let mail = smtp.wait_for("new@example.com", MAIL_TIMEOUT).await;
    let token = token_of(mail.link_containing("/confirm-email/").unwrap());
    // Not changed until the link is opened.
    let me: Value = a.get("/api/me").await.json().await.unwrap();
    assert_eq!(me["user"]["email"], "old@example.com");
    // The link works without a session (it may be opened on another device), once.
    let mut other_device = app.client();
    let res = other_device
        .post(&format!("/api/me/email/{token}"), json!({}))
        .await;
    assert_eq!(res.status(), 204);
    let me: Value = a.get("/api/me").await.json().await.unwrap();
    assert_eq!(me["user"]["email"], "new@example.com");
    let res = other_device
        .post(&format!("/api/me/email/{token}"), json!({}))
        .await;
    assert_eq!(res.status(), 400);
    let mut c = app.client();
    assert_eq!(
        c.log_in("new@example.com", PASSWORD, false).await.status(),
        200
    );
    assert_eq!(
        c.log_in("old@example.com", PASSWORD, false).await.status(),
        401
    );

    // An address taken between the request and the confirmation is refused then.
    let res = a
        .put(
            "/api/me/email",
            json!({"current_password": PASSWORD, "email": "contested@example.com"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let mail = smtp.wait_for("contested@example.com", MAIL_TIMEOUT).await;
    let token = token_of(mail.link_containing("/confirm-email/").unwrap());
    app.signed_up("contested@example.com").await;
    let res = other_device
        .post(&format!("/api/me/email/{token}"), json!({}))
        .await;
    assert_eq!(res.status(), 409);
    let me: Value = a.get("/api/me").await.json().await.unwrap();
    assert_eq!(me["user"]["email"], "new@example.com");
}
on_both_databases!(async an_email_changes_only_once_confirmed);

/// With no SMTP, the reset mail is an `.eml` file in the mail folder, and its link works.
#[actix_rt::test]
async fn without_smtp_the_reset_mail_is_a_file_whose_link_works_sqlite() {
    let app = TestApp::sqlite().await;
    let email = "selfhoster@example.com";
    app.signed_up(email).await;
    let mut c = app.client();
    assert_eq!(request_reset(&mut c, email).await.0, 202);
    let mail = crate::smtp::wait_for_eml(app.mail_dir(), email, MAIL_TIMEOUT).await;
    let token = token_of(mail.link_containing("/reset-password/").unwrap());
    let res = c
        .post(
            &format!("/api/password-reset/{token}"),
            json!({"password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(c.log_in(email, NEW_PASSWORD, false).await.status(), 200);
}
