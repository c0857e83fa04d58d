//! The five browser scenarios. Scenarios 1–4 build on each other (same two users,
//! same server), so they run as one test in order; scenario 5 needs a small death age and
//! runs on a server of its own. Every page runs under the server's Content-Security-Policy,
//! and each test ends by checking that no page reported a violation.

use crate::harness::{Browser, ChromeDriver, Env, Server};

/// Two Chromium sessions and a server at once are a lot for a 2-core CI box: the browser
/// tests take turns instead of competing for the CPU (and timing out).
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("e2e.db").display())
}

#[tokio::test]
async fn browser_two_users_feed_treat_leave_and_survive_a_server_restart() {
    let Some(env) = Env::find("browser_two_users_feed_treat_leave_and_survive_a_server_restart")
    else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = tempfile::tempdir().unwrap();
    let mut server = Server::start(&env, &sqlite_url(&db), &["--tick-ms", "300"]).await;
    let driver = ChromeDriver::start(&env);
    let a = Browser::open(&driver, "user-a", &server.base).await;
    let b = Browser::open(&driver, "user-b", &server.base).await;

    // 1. A signs up, adopts a pet, lands on its page and sees Age increase by itself; A
    //    clicks Feed and the hearts go up.
    a.sign_up("ada@example.com").await;
    let a_pet = a.adopt("Biscuit", "fox").await;
    let start = a.state().await;
    let age0 = start.age.unwrap();
    a.wait_until("the age rises without a reload", |s| s.age > Some(age0))
        .await;
    let before = a.state().await;
    let (hearts0, hunger0) = (before.hearts.unwrap(), before.hunger.unwrap());
    a.click("[data-testid=feed]").await;
    a.wait_until("the hearts go up after feeding", |s| {
        s.hearts > Some(hearts0) && s.hunger < Some(hunger0)
    })
    .await;
    a.screenshot("1-user-a-feeds").await;

    // 2. B signs up in a second browser, adopts a pet, opens it, and sees A's pet under
    //    Active pets; B gives it a treat: the button shows 4 left, and A's page shows the
    //    hunger drop without a reload.
    b_adopts_and_treats_the_pet_of_a(&a, &b, a_pet).await;
    b.screenshot("2-user-b-gives-a-treat").await;
    a.screenshot("2-user-a-sees-the-treat").await;

    // 3. A leaves the pet page; B's list drops that pet live.
    a.click("[data-testid=nav-pets]").await;
    a.wait_until("A is on the pet list", |s| s.path == "/pets")
        .await;
    b.wait_until("A's pet leaves B's list", |s| {
        s.treat_button(a_pet).is_none() && s.active_list
    })
    .await;
    b.element("[data-testid=nobody-around]").await;
    b.screenshot("3-user-a-left").await;

    // 4. The server restarts while B's page is open: the indicator shows reconnecting, then
    //    connected, and the age keeps rising.
    server.assert_no_csp_violations(&[&a, &b]).await;
    let age_before = b.state().await.age.unwrap();
    server.stop().await;
    b.wait_until("the indicator shows reconnecting", |s| {
        s.conn.as_deref() == Some("reconnecting")
    })
    .await;
    b.screenshot("4-reconnecting").await;
    server.start_again().await;
    let back = b
        .wait_until("the indicator shows connected again", |s| {
            s.conn.as_deref() == Some("connected")
        })
        .await;
    let age_back = back.age.unwrap().max(age_before);
    b.wait_until("the age keeps rising after the restart", |s| {
        s.age > Some(age_back)
    })
    .await;
    b.screenshot("4-reconnected").await;
    server.assert_no_csp_violations(&[&a, &b]).await;

    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn browser_dead_pet_shows_its_end_and_leaves_the_active_list() {
    let Some(env) = Env::find("browser_dead_pet_shows_its_end_and_leaves_the_active_list") else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = tempfile::tempdir().unwrap();
    // A pet lives 40 ticks of 200 ms: about 8 s.
    let mut server = Server::start(
        &env,
        &sqlite_url(&db),
        &["--tick-ms", "200", "--death-age", "40"],
    )
    .await;
    let driver = ChromeDriver::start(&env);
    let c = Browser::open(&driver, "user-c", &server.base).await;
    let d = Browser::open(&driver, "user-d", &server.base).await;

    c.sign_up("cleo@example.com").await;
    d.sign_up("dan@example.com").await;
    let c_pet = c.adopt("Ghost", "cat").await;
    // D adopts later, so D's pet outlives C's by a few seconds and D's page is still live
    // when C's pet dies.
    c.wait_until("C's pet is middle-aged", |s| s.age >= Some(15))
        .await;
    d.adopt("Pip", "frog").await;
    d.wait_until("C's pet is under Active pets", |s| {
        s.treat_button(c_pet).is_some()
    })
    .await;

    // 5. The pet dies: its page shows the dead state, the Feed button is gone, and it leaves
    //    D's list.
    let dead = c
        .wait_until("C's pet page shows it dead", |s| s.dead && !s.feed)
        .await;
    assert!(
        !dead.active_list,
        "a dead pet's page has no live parts: {dead:?}"
    );
    c.element("[data-testid=dead-note]").await;
    c.screenshot("5-pet-died").await;
    let gone = d
        .wait_until("C's pet leaves D's list", |s| {
            s.treat_button(c_pet).is_none()
        })
        .await;
    assert!(
        !gone.dead && gone.active_list,
        "D's own pet is still alive, so the list is live: {gone:?}"
    );
    d.screenshot("5-dead-pet-left-the-list").await;
    server.assert_no_csp_violations(&[&c, &d]).await;

    c.close().await;
    d.close().await;
}

/// Scenario 2's steps, on one server or across nodes: B signs up and adopts a pet, sees A's
/// pet `a_pet` under Active pets (5 treats left; B's own pet is no target) and gives it a
/// treat; A's page shows the hunger drop, and B's button then shows 4 left, still enabled.
pub async fn b_adopts_and_treats_the_pet_of_a(a: &Browser, b: &Browser, a_pet: i64) {
    b.sign_up("bob@example.com").await;
    let b_pet = b.adopt("Hoot", "owl").await;
    let seen = b
        .wait_until("A's pet is under Active pets", |s| {
            s.treat_button(a_pet).is_some()
        })
        .await;
    assert_eq!(
        seen.treat_button(a_pet).unwrap().1,
        "Give treat (5 left)",
        "{seen:?}"
    );
    assert!(
        seen.treat_button(b_pet).is_none(),
        "B's own pet is no treat target: {seen:?}"
    );

    // Hunger only rises on its own (+5 per tick), so a reading lower than the one before
    // it can only be the treat (-20). The first reading is from just before the click.
    let mut last = a.state().await.hunger.unwrap();
    b.click(&format!("[data-testid=give-treat-{a_pet}]")).await;
    a.wait_until("A's page shows the hunger drop", move |s| {
        let h = s.hunger.unwrap_or(u32::MAX);
        let dropped = h < last;
        last = h;
        dropped
    })
    .await;
    let after_treat = b
        .wait_until("the button shows 4 left", |s| {
            s.treat_button(a_pet).map(|t| t.1.as_str()) == Some("Give treat (4 left)")
        })
        .await;
    assert!(!after_treat.treat_button(a_pet).unwrap().2, "still enabled");
}
