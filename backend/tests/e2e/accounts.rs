//! Accounts in the browser: a forgotten password reset through the link in the mail the
//! server wrote, and live revocation — logging out in one tab logs out the other tab of
//! the same browser within seconds, with a message, on the login page.

use crate::harness::{Browser, ChromeDriver, Env, Server, STEP};
use crate::scenarios::ONE_AT_A_TIME;
use crate::smtp::wait_for_eml;
use serde::Deserialize;
use std::path::Path;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new password 42";
/// The promise of live revocation, as the user sees it: the other tab shows it within this.
const LOGGED_OUT_WITHIN: Duration = Duration::from_secs(5);

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("e2e.db").display())
}

/// What these tests read off a page, in one round trip.
#[derive(Debug, Default, Deserialize)]
struct Seen {
    path: String,
    /// The messages in the corner.
    toasts: Vec<String>,
    conn: Option<String>,
    /// The texts of the elements matching the selector asked for.
    texts: Vec<String>,
}

impl Seen {
    fn toast(&self, part: &str) -> bool {
        self.toasts.iter().any(|t| t.contains(part))
    }
}

const READ: &str = r#"
const [css] = arguments;
const all = s => [...document.querySelectorAll(s)].map(e => e.textContent.trim());
const c = document.querySelector('[data-testid=conn-status]');
return {
  path: location.pathname,
  toasts: all('[data-testid=toast] .toast-text'),
  conn: c ? c.textContent.trim() : null,
  texts: css ? all(css) : [],
};
"#;

/// Polls the page (and the texts of `css`) until `ok` holds, for at most `limit`.
async fn wait_for(
    b: &Browser,
    what: &str,
    css: &str,
    limit: Duration,
    ok: impl FnMut(&Seen) -> bool,
) -> Seen {
    b.poll(what, READ, vec![serde_json::json!(css)], limit, ok)
        .await
}

/// The first link containing `path` in the mail the server wrote to `to` in `dir`.
async fn mailed_link(dir: &Path, to: &str, path: &str) -> String {
    let mail = wait_for_eml(dir, to, STEP).await;
    mail.link_containing(path)
        .unwrap_or_else(|| panic!("no {path} link in the mail to {to}"))
        .to_string()
}

/// Waits, at most [`LOGGED_OUT_WITHIN`], until this tab says it was logged out and shows
/// the login page, with nothing of the session left (no log-out button, no connection).
async fn logged_out_here(b: &Browser, after: &str) {
    let began = Instant::now();
    let s = wait_for(
        b,
        &format!("the tab says it was logged out after {after}, on /login"),
        "[data-testid=logout]",
        LOGGED_OUT_WITHIN,
        |s| s.path == "/login" && s.toast("You were logged out"),
    )
    .await;
    assert!(
        s.texts.is_empty(),
        "no log-out button once logged out: {s:?}"
    );
    assert_eq!(s.conn, None, "no connection light when logged out: {s:?}");
    eprintln!(
        "logged out after {after}: seen within {:?}",
        began.elapsed()
    );
    b.screenshot(&format!("accounts-logged-out-{}", after.replace(' ', "-")))
        .await;
}

/// Closes every message in the corner, so the next wait sees only new ones.
async fn dismiss_messages(b: &Browser) {
    b.client
        .execute(
            "document.querySelectorAll('.toast-close').forEach(x => x.click());",
            vec![],
        )
        .await
        .unwrap();
}

/// Logs in through the form (the page must be /login).
async fn log_in(b: &Browser, email: &str, password: &str) {
    b.type_into("[data-testid=email]", email).await;
    b.type_into("[data-testid=password]", password).await;
    b.click("[data-testid=submit]").await;
}

#[tokio::test]
async fn browser_forgotten_password_is_reset_through_the_mailed_link() {
    let Some(env) = Env::find("browser_forgotten_password_is_reset_through_the_mailed_link") else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = tempfile::tempdir().unwrap();
    let mail = db.path().join("mail");
    let mail_dir = mail.display().to_string();
    let mut server = Server::start(&env, &sqlite_url(&db), &["--mail-dir", &mail_dir]).await;
    let driver = ChromeDriver::start(&env);
    let a = Browser::open(&driver, "rosa", &server.base).await;
    let email = "rosa@example.com";

    a.sign_up(email).await;
    wait_for(&a, "the sign-up is welcomed", "", STEP, |s| {
        s.toast("Welcome to LivePet")
    })
    .await;
    a.click("[data-testid=logout]").await;
    wait_for(&a, "the log-out is confirmed on /login", "", STEP, |s| {
        s.path == "/login" && s.toast("You are logged out")
    })
    .await;

    // Forgot: from the login form, ask for a link.
    a.click("[data-testid=forgot-password]").await;
    a.wait_until("the forgot-password page is shown", |s| {
        s.path == "/forgot-password"
    })
    .await;
    a.type_into("[data-testid=email]", email).await;
    a.click("[data-testid=submit]").await;
    wait_for(
        &a,
        "the page says a link may be on its way",
        "[data-testid=form-done]",
        STEP,
        |s| {
            s.texts
                .iter()
                .any(|t| t.starts_with("If an account exists for that address"))
        },
    )
    .await;
    a.screenshot("accounts-1-link-asked").await;

    // The mail: its link opens the reset page of this server.
    let link = mailed_link(&mail, email, "/reset-password/").await;
    assert!(
        link.starts_with(&format!("{}/reset-password/", server.base)),
        "the link points at the app: {link}"
    );
    a.client.goto(&link).await.unwrap();
    a.type_into("[data-testid=new-password]", NEW_PASSWORD)
        .await;
    a.click("[data-testid=submit]").await;
    wait_for(
        &a,
        "the reset sends to /login with a message",
        "",
        STEP,
        |s| s.path == "/login" && s.toast("Your password was changed; log in with the new one"),
    )
    .await;
    a.screenshot("accounts-2-password-reset").await;

    // The old password no longer works; the new one does.
    log_in(&a, email, PASSWORD).await;
    wait_for(
        &a,
        "the old password is refused",
        "[data-testid=form-error]",
        STEP,
        |s| !s.texts.is_empty(),
    )
    .await;
    a.goto("/login").await;
    log_in(&a, email, NEW_PASSWORD).await;
    wait_for(&a, "the new password logs in", "", STEP, |s| {
        s.path == "/pets" && s.toast("Welcome back")
    })
    .await;

    // The link works once.
    a.client.goto(&link).await.unwrap();
    a.type_into("[data-testid=new-password]", "yet another password 7")
        .await;
    a.click("[data-testid=submit]").await;
    a.element("[data-testid=invalid-link]").await;
    a.element("a[href='/forgot-password']").await;
    a.screenshot("accounts-3-link-used").await;

    server.assert_no_csp_violations(&[&a]).await;
    a.close().await;
}

#[tokio::test]
async fn browser_logging_out_in_one_tab_logs_out_the_other_within_seconds() {
    let Some(env) = Env::find("browser_logging_out_in_one_tab_logs_out_the_other_within_seconds")
    else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = tempfile::tempdir().unwrap();
    let mut server = Server::start(&env, &sqlite_url(&db), &[]).await;
    let driver = ChromeDriver::start(&env);
    let a = Browser::open(&driver, "tess", &server.base).await;
    let email = "tess@example.com";

    // "Keep me logged in": the cookie outlives the browser (it has an expiry).
    a.goto("/login").await;
    a.click("a[href^='/signup']").await;
    a.type_into("[data-testid=email]", email).await;
    a.type_into("[data-testid=password]", PASSWORD).await;
    a.click("[data-testid=remember]").await;
    a.click("[data-testid=submit]").await;
    a.wait_until("the pet list is shown", |s| s.path == "/pets")
        .await;
    let cookies = a.client.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "livepet_session")
        .expect("a session cookie");
    assert!(
        session.expires().is_some_and(|e| e.is_datetime()),
        "remembered: a lasting cookie ({session:?})"
    );
    let first = a.client.window().await.unwrap();
    a.wait_until("the first tab is connected", |s| {
        s.conn.as_deref() == Some("connected")
    })
    .await;
    // A logged-in user who opens /login is sent on to the pets.
    a.goto("/login").await;
    a.wait_until("/login sends a logged-in user to the pets", |s| {
        s.path == "/pets"
    })
    .await;

    // A second tab of the same browser: the same session. It logs out (the header's
    // button); the first tab learns it from its socket (closed with 4001), not a reload.
    let second = a.client.new_window(true).await.unwrap().handle;
    a.client.switch_to_window(second.clone()).await.unwrap();
    a.goto("/pets").await;
    a.wait_until("the second tab is connected", |s| {
        s.conn.as_deref() == Some("connected")
    })
    .await;
    a.click("[data-testid=logout]").await;
    wait_for(&a, "the second tab is on /login", "", STEP, |s| {
        s.path == "/login" && s.toast("You are logged out")
    })
    .await;
    a.client.switch_to_window(first.clone()).await.unwrap();
    logged_out_here(&a, "a log-out in the other tab").await;

    // Logging in again in the first tab opens a socket of the new session, which works;
    // the second tab, reloaded, shares the session.
    dismiss_messages(&a).await;
    log_in(&a, email, PASSWORD).await;
    a.wait_until("logged in again, connected", |s| {
        s.path == "/pets" && s.conn.as_deref() == Some("connected")
    })
    .await;
    a.element("[data-testid=no-pets]").await;
    a.client.switch_to_window(second).await.unwrap();
    a.goto("/settings").await;
    a.wait_until("the second tab is connected again", |s| {
        s.conn.as_deref() == Some("connected")
    })
    .await;

    // Log out everywhere, from the settings of the second tab.
    a.click("[data-testid=logout-everywhere] [data-testid=submit]")
        .await;
    wait_for(&a, "the second tab is on /login", "", STEP, |s| {
        s.path == "/login" && s.toast("You were logged out everywhere")
    })
    .await;
    a.client.switch_to_window(first).await.unwrap();
    logged_out_here(&a, "log out everywhere in the other tab").await;

    server.assert_no_csp_violations(&[&a]).await;
    a.close().await;
}

/// `?next=` after logging in never leaves the site: each variant the security pass used
/// (a backslash, its percent-encoding, a tab or newline after the first slash, a scheme)
/// lands on the pet list of this origin, and a real local path is still followed.
#[tokio::test]
async fn browser_next_after_login_never_leaves_the_site() {
    let Some(env) = Env::find("browser_next_after_login_never_leaves_the_site") else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = tempfile::tempdir().unwrap();
    let mut server = Server::start(&env, &sqlite_url(&db), &[]).await;
    let driver = ChromeDriver::start(&env);
    let b = Browser::open(&driver, "wary", &server.base).await;
    let email = "wary@example.com";
    b.sign_up(email).await;
    wait_for(&b, "the sign-up is welcomed", "", STEP, |s| {
        s.toast("Welcome to LivePet")
    })
    .await;
    // The foreign origin a redirect would reach: this machine under another port.
    let variants = [
        "/%5C127.0.0.1:19050/",
        "/%5c127.0.0.1:19050/",
        "/%5C%5C127.0.0.1:19050/",
        "/%09/127.0.0.1:19050/",
        "/%0A/127.0.0.1:19050/",
        "/%0D/127.0.0.1:19050/",
        "//127.0.0.1:19050/",
        "http://127.0.0.1:19050/",
        "javascript:alert(1)",
        "/settings",
    ];
    for next in variants {
        b.click("[data-testid=logout]").await;
        wait_for(&b, "logged out on /login", "", STEP, |s| s.path == "/login").await;
        b.goto(&format!("/login?next={next}")).await;
        log_in(&b, email, PASSWORD).await;
        let expected = if next == "/settings" {
            "/settings"
        } else {
            "/pets"
        };
        let s = wait_for(&b, &format!("{next} lands on {expected}"), "", STEP, |s| {
            s.path == expected
        })
        .await;
        let origin = b.client.current_url().await.unwrap();
        assert_eq!(
            origin.origin().ascii_serialization(),
            server.base.trim_end_matches('/'),
            "{next}: left the site ({s:?})"
        );
        dismiss_messages(&b).await;
    }
    server.assert_no_csp_violations(&[&b]).await;
    b.close().await;
    server.stop().await;
}

/// The settings page as a person uses it: change the password, change the email through
/// the mailed confirmation link, then delete the account, which logs the tab out and frees
/// nothing else to log in with.
#[tokio::test]
async fn browser_settings_change_password_and_email_then_delete_the_account() {
    let Some(env) = Env::find("browser_settings_change_password_and_email_then_delete_the_account")
    else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = tempfile::tempdir().unwrap();
    let mail = db.path().join("mail");
    let mail_dir = mail.display().to_string();
    let mut server = Server::start(&env, &sqlite_url(&db), &["--mail-dir", &mail_dir]).await;
    let driver = ChromeDriver::start(&env);
    let b = Browser::open(&driver, "settler", &server.base).await;
    b.sign_up("settler@example.com").await;
    b.adopt("Settle", "cat").await;
    b.click("[data-testid=nav-settings]").await;
    b.wait_until("the settings page is shown", |s| s.path == "/settings")
        .await;

    // The password.
    b.type_into("#current-password", PASSWORD).await;
    b.type_into("#new-password", NEW_PASSWORD).await;
    b.click("[data-testid=change-password] [data-testid=submit]")
        .await;
    wait_for(
        &b,
        "the password change is confirmed",
        "[data-testid=change-password] [data-testid=form-done]",
        STEP,
        |s| {
            s.texts
                .iter()
                .any(|t| t.contains("Your password was changed"))
        },
    )
    .await;

    // The email: a link to the new address, opened in this tab.
    b.type_into("#email-current-password", NEW_PASSWORD).await;
    b.type_into("#new-email", "moved@example.com").await;
    b.click("[data-testid=change-email] [data-testid=submit]")
        .await;
    wait_for(
        &b,
        "the page says a confirmation link was sent",
        "[data-testid=change-email] [data-testid=form-done]",
        STEP,
        |s| s.texts.iter().any(|t| t.contains("moved@example.com")),
    )
    .await;
    let link = mailed_link(&mail, "moved@example.com", "/confirm-email/").await;
    let path = link.split_once("://").unwrap().1;
    let path = &path[path.find('/').unwrap()..];
    b.goto(path).await;
    wait_for(
        &b,
        "the confirmation page says the email changed",
        "[data-testid=confirm-result]",
        STEP,
        |s| {
            s.texts
                .iter()
                .any(|t| t.contains("email address is changed"))
        },
    )
    .await;

    // Deleting the account ends up on /login with a message; the new address and the new
    // password no longer log anyone in.
    b.goto("/settings").await;
    b.type_into("#delete-password", NEW_PASSWORD).await;
    b.click("[data-testid=delete-account] [data-testid=submit]")
        .await;
    wait_for(&b, "the deletion is confirmed on /login", "", STEP, |s| {
        s.path == "/login" && s.toast("were deleted")
    })
    .await;
    b.screenshot("accounts-deleted").await;
    log_in(&b, "moved@example.com", NEW_PASSWORD).await;
    wait_for(
        &b,
        "the login form says the credentials are wrong",
        "[data-testid=form-error]",
        STEP,
        |s| s.path == "/login" && !s.texts.is_empty(),
    )
    .await;
    server.assert_no_csp_violations(&[&b]).await;
    b.close().await;
    server.stop().await;
}
