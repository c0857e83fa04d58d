//! Sessions that really end: each way a session ends (logout, log out everywhere, a password
//! change, account deletion, expiry) closes every socket opened with it with code 4001, a
//! frame sent on such a socket after the revocation was answered is not applied, and the
//! sessions that should carry on do. Password resets are in `mail.rs`, where the link is.

use crate::client::{set_cookie, Client, Ws, PASSWORD};
use crate::helpers::{report, wait_for, Backend, TestApp};
use livepet_shared::wire::{ServerMsg, CLOSE_SESSION_ENDED};
use livepet_shared::PetId;
use serde_json::json;
use std::time::{Duration, Instant};

/// Ticks far apart, so a pet's hunger only moves when someone feeds it (a tick could only
/// raise it, never lower it).
const SLOW_TICK_MS: u64 = 3_600_000;
const NEW_PASSWORD: &str = "a brand new passphrase";

async fn spawn(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |a| a.tick_ms = SLOW_TICK_MS).await
}

/// A socket of `c` watching its pet (the first frame read).
async fn watching(c: &Client, pet: PetId) -> Ws {
    let mut ws = c.greeted_ws().await;
    ws.send(json!({"type": "watch", "pet_id": pet})).await;
    ws.pet_frame(pet).await;
    ws
}

/// Waits for the socket to close with 4001; reports how long after `since` it came.
async fn ends(ws: &mut Ws, what: &str, since: Instant) {
    let code = ws.closed().await;
    assert_eq!(
        code,
        Some(CLOSE_SESSION_ENDED),
        "{what}: closed with {code:?}"
    );
    report(&format!(
        "{what}: socket closed with 4001 {:.0} ms after the revocation was sent",
        since.elapsed().as_secs_f64() * 1000.0
    ));
}

/// The socket is still up and served: a ping gets its pong.
async fn still_up(ws: &mut Ws) {
    ws.send(json!({"type": "ping"})).await;
    ws.until(|m| matches!(m, ServerMsg::Pong).then_some(()))
        .await;
}

/// The pet's hunger as a fresh login of the owner sees it.
async fn hunger(app: &TestApp, email: &str, pet: PetId) -> u64 {
    let mut c = app.client();
    let res = c.log_in(email, PASSWORD, false).await;
    assert_eq!(res.status(), 200);
    let view: serde_json::Value = c
        .get(&format!("/api/pets/{pet}"))
        .await
        .json()
        .await
        .unwrap();
    view["hunger"].as_u64().unwrap()
}

async fn logout_closes_only_that_sessions_sockets(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let mut a = app.client();
    let pet = a.signup_with_pet("leaver@example.com", "Biscuit").await.id;
    let (mut w1, mut w2) = (watching(&a, pet).await, a.greeted_ws().await);
    let b = a.another_login("leaver@example.com").await;
    let mut other = b.greeted_ws().await;

    let sent = Instant::now();
    assert_eq!(a.delete("/api/session").await.status(), 204);
    // The socket is still open at this point (its close may be in flight): a feed sent on it
    // now must not be applied, since the revocation has committed.
    w1.send(json!({"type": "feed", "pet_id": pet})).await;
    ends(&mut w1, "logout", sent).await;
    ends(&mut w2, "logout (second socket)", sent).await;
    assert_eq!(a.get("/api/me").await.status(), 401);
    // The other session carries on.
    still_up(&mut other).await;
    assert_eq!(b.get("/api/me").await.status(), 200);
    assert!(
        hunger(&app, "leaver@example.com", pet).await >= 250,
        "a feed sent after the logout was applied"
    );
    // The old cookie cannot open a socket any more.
    assert_eq!(a.upgrade(Some(&a.base), &[]).await.err(), Some(401));
}
on_both_databases!(async logout_closes_only_that_sessions_sockets);

async fn log_out_everywhere_closes_every_socket(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let mut a = app.client();
    let pet = a
        .signup_with_pet("everywhere@example.com", "Noodle")
        .await
        .id;
    let b = a.another_login("everywhere@example.com").await;
    let (mut w1, mut w2) = (watching(&a, pet).await, b.greeted_ws().await);
    // Someone else's socket is untouched.
    let stranger = app.signed_up("stranger@example.com").await;
    let mut s = stranger.greeted_ws().await;

    let sent = Instant::now();
    assert_eq!(a.delete("/api/me/sessions").await.status(), 204);
    w2.send(json!({"type": "feed", "pet_id": pet})).await;
    ends(&mut w1, "log out everywhere", sent).await;
    ends(&mut w2, "log out everywhere (other browser)", sent).await;
    assert_eq!(a.get("/api/me").await.status(), 401);
    assert_eq!(b.get("/api/me").await.status(), 401);
    still_up(&mut s).await;
    assert!(hunger(&app, "everywhere@example.com", pet).await >= 250);
}
on_both_databases!(async log_out_everywhere_closes_every_socket);

async fn a_password_change_ends_the_other_sessions(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let email = "changer@example.com";
    let mut a = app.client();
    let pet = a.signup_with_pet(email, "Pickle").await.id;
    let b = a.another_login(email).await;
    let (mut mine, mut theirs) = (a.greeted_ws().await, watching(&b, pet).await);

    // A wrong current password changes nothing and ends nothing.
    let res = a
        .put(
            "/api/me/password",
            json!({"current_password": "not my password", "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 401);
    still_up(&mut theirs).await;
    // A new password that breaks the rules is refused field by field.
    let res = a
        .put(
            "/api/me/password",
            json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]["fields"]["new_password"].is_string(),
        "{body}"
    );

    let sent = Instant::now();
    let res = a
        .put(
            "/api/me/password",
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(res.status(), 204);
    theirs.send(json!({"type": "feed", "pet_id": pet})).await;
    ends(&mut theirs, "password change (other session)", sent).await;
    // The changer's own session and socket stay.
    still_up(&mut mine).await;
    assert_eq!(a.get("/api/me").await.status(), 200);
    assert_eq!(b.get("/api/me").await.status(), 401);
    // The old password no longer works, the new one does.
    let mut c = app.client();
    assert_eq!(c.log_in(email, PASSWORD, false).await.status(), 401);
    assert_eq!(c.log_in(email, NEW_PASSWORD, false).await.status(), 200);
    let view: serde_json::Value = c
        .get(&format!("/api/pets/{pet}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(view["hunger"].as_u64().unwrap() >= 250);
}
on_both_databases!(async a_password_change_ends_the_other_sessions);

async fn deleting_an_account_takes_its_pets_and_sessions(backend: Backend) {
    let Some(app) = spawn(backend).await else {
        return;
    };
    let email = "goodbye@example.com";
    let mut a = app.client();
    let pet = a.signup_with_pet(email, "Wisp").await.id;
    let b = a.another_login(email).await;
    let mut w2 = b.greeted_ws().await;
    // A stranger sees the pet in the active list while its owner watches it…
    let stranger = app.signed_up("onlooker@example.com").await;
    let mut s = stranger.greeted_ws().await;
    let mut w1 = watching(&a, pet).await;
    s.until(|m| match m {
        ServerMsg::ActivePetsChanged { joined, .. } if joined.iter().any(|p| p.id == pet) => {
            Some(())
        }
        _ => None,
    })
    .await;

    let res = a
        .delete_json("/api/me", json!({"password": "not my password"}))
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(a.get("/api/me").await.status(), 200);

    let sent = Instant::now();
    let res = a
        .delete_json("/api/me", json!({"password": PASSWORD}))
        .await;
    assert_eq!(res.status(), 204);
    ends(&mut w1, "account deletion", sent).await;
    ends(&mut w2, "account deletion (other browser)", sent).await;
    // …and sees it leave; the pet's actor is gone and so are its rows.
    s.until(|m| match m {
        ServerMsg::ActivePetsChanged { left, .. } if left.contains(&pet) => Some(()),
        _ => None,
    })
    .await;
    wait_for("the pet's actor to stop", Duration::from_secs(10), || {
        app.world().registry.get(pet).is_none().then_some(())
    })
    .await;
    let rows: i64 = {
        use diesel::prelude::*;
        use livepet_server::db::schema::{pets, sessions, users};
        livepet_server::with_conn!(&mut app.db.conn(), |c| {
            let p: i64 = pets::table.count().get_result(c).unwrap();
            let s: i64 = sessions::table
                .inner_join(users::table)
                .filter(users::email.eq(email))
                .count()
                .get_result(c)
                .unwrap();
            let u: i64 = users::table
                .filter(users::email.eq(email))
                .count()
                .get_result(c)
                .unwrap();
            p + s + u
        })
    };
    assert_eq!(rows, 0, "pets, sessions or the user survived the deletion");
    assert_eq!(b.get("/api/me").await.status(), 401);
    let mut c = app.client();
    assert_eq!(c.log_in(email, PASSWORD, false).await.status(), 401);
    // The address is free again.
    c.sign_up(email).await;
    // Nothing is written for the deleted pet by the next flush.
    app.flush().await;
    still_up(&mut s).await;
}
on_both_databases!(async deleting_an_account_takes_its_pets_and_sessions);

async fn an_expired_session_closes_its_sockets(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |a| a.session_ttl = Duration::from_secs(2)).await
    else {
        return;
    };
    let mut a = app.client();
    a.sign_up("brief@example.com").await;
    let mut short = app.client();
    short.log_in("brief@example.com", PASSWORD, false).await;
    let mut remembered = app.client();
    remembered.log_in("brief@example.com", PASSWORD, true).await;
    let (mut w1, mut w2, mut kept) = (
        short.greeted_ws().await,
        short.greeted_ws().await,
        remembered.greeted_ws().await,
    );
    let since = Instant::now();
    ends(&mut w1, "expiry", since).await;
    ends(&mut w2, "expiry (second socket)", since).await;
    assert_eq!(short.get("/api/me").await.status(), 401);
    // A "keep me logged in" session lasts its own, longer time.
    still_up(&mut kept).await;
    assert_eq!(remembered.get("/api/me").await.status(), 200);
}
on_both_databases!(async an_expired_session_closes_its_sockets);

/// "Keep me logged in": a lasting cookie and a 60-day session; without it a browser-session
/// cookie (no Max-Age) and a 1-day session.
async fn remember_me_sets_the_cookie_and_the_expiry(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.signed_up("keeper@example.com").await;
    for (remember, days) in [(false, 1), (true, 60)] {
        let mut c = app.client();
        let res = c.log_in("keeper@example.com", PASSWORD, remember).await;
        assert_eq!(res.status(), 200);
        let set = set_cookie(&res);
        let max_age = format!("Max-Age={}", days * 86_400);
        assert_eq!(set.contains("Max-Age"), remember, "{set}");
        if remember {
            assert!(set.contains(&max_age), "{set}");
        }
        let hash = livepet_server::services::accounts::token_hash(c.cookie.as_ref().unwrap());
        let (created, expires): (i64, i64) = {
            use diesel::prelude::*;
            use livepet_server::db::schema::sessions;
            livepet_server::with_conn!(&mut app.db.conn(), |c| sessions::table
                .filter(sessions::token_hash.eq(&hash))
                .select((sessions::created_at, sessions::expires_at))
                .first(c)
                .unwrap())
        };
        assert_eq!(expires - created, days * 86_400_000, "remember={remember}");
    }
}
on_both_databases!(async remember_me_sets_the_cookie_and_the_expiry);

/// Pages of the pet list: 500 newest first, then `?before=` the last id for the rest.
async fn the_pet_list_pages_past_500(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.signed_up("collector@example.com").await;
    let owner: serde_json::Value = a.get("/api/me").await.json().await.unwrap();
    let owner = owner["user"]["id"].as_i64().unwrap();
    // 501 pets straight into the database (adopting each over HTTP would take long), then a
    // server on it brings them to life.
    {
        use diesel::prelude::*;
        use livepet_server::db::schema::pets;
        let rows: Vec<_> = (0..501)
            .map(|i| {
                (
                    pets::user_id.eq(owner),
                    pets::name.eq(format!("Pet {i:03}")),
                    pets::species.eq("cat"),
                    pets::created_at.eq(i as i64),
                    pets::updated_at.eq(i as i64),
                )
            })
            .collect();
        livepet_server::with_conn!(&mut app.db.conn(), |c| diesel::insert_into(pets::table)
            .values(&rows)
            .execute(c)
            .unwrap());
    }
    let first: Vec<serde_json::Value> = a.get("/api/pets").await.json().await.unwrap();
    assert_eq!(first.len(), 500);
    assert_eq!(first[0]["name"], "Pet 500");
    let last = first[499]["id"].as_i64().unwrap();
    let rest: Vec<serde_json::Value> = a
        .get(&format!("/api/pets?before={last}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["name"], "Pet 000");
    let res = a.get("/api/pets?before=abc").await;
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
}
on_both_databases!(async the_pet_list_pages_past_500);
