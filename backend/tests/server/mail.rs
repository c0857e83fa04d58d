//! Outgoing mail through a real server's `Mailer`: delivered to a real SMTP server in this
//! process, written as `.eml` files without one, retried while the SMTP server is down,
//! bounded when flooded, and given a moment at a graceful stop; and the mail flags checked
//! by the real binary.

use crate::helpers::{wait_for, TestApp, TestDb};
use crate::process::{livepet, ServerProcess};
use crate::smtp::{unused_port, wait_for_eml, SmtpOptions, SmtpReceiver};
use livepet_server::config::ServeArgs;
use livepet_server::services::mail::{Mail, MailStats, QUEUE_CAPACITY, STOP_WAIT};
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

/// Long enough for a loaded CI box; the retries themselves take 1 s and 5 s.
const ARRIVAL: Duration = Duration::from_secs(15);

/// A reset-style mail to `to` whose link is longer than a 76-character mail line.
fn reset_mail(app: &TestApp, to: &str) -> Mail {
    let link = app.services().links.reset_password(&"t".repeat(43));
    Mail {
        to: to.into(),
        subject: "Reset your LivePet password".into(),
        text: format!("Hello,\n\nopen this link within a day:\n\n{link}\n\n. a line with a dot\n"),
    }
}

fn stats(app: &TestApp) -> MailStats {
    app.services().mailer.stats()
}

/// Points the server at `url` for SMTP.
fn smtp(url: String) -> impl FnOnce(&mut ServeArgs) {
    move |a| a.smtp_url = Some(url.parse().unwrap())
}

#[actix_rt::test]
async fn a_mail_from_the_mailer_arrives_over_smtp() {
    let receiver = SmtpReceiver::start();
    let url = receiver.url();
    let app = TestApp::sqlite_with(|a| {
        a.smtp_url = Some(url.parse().unwrap());
        a.mail_from = "Pets at Home <pets@example.com>".into();
    })
    .await;
    let mail = reset_mail(&app, "alice@example.com");

    app.services().mailer.send(mail.clone());

    let got = receiver.wait_for("alice@example.com", ARRIVAL).await;
    assert_eq!(got.envelope_from, "pets@example.com");
    assert_eq!(got.envelope_to, ["alice@example.com"]);
    assert_eq!(got.from, "\"Pets at Home\" <pets@example.com>");
    assert_eq!(got.to, "alice@example.com");
    assert_eq!(got.subject, mail.subject);
    // lettre ends DATA with one more CRLF before the final dot: an empty last line.
    assert_eq!(got.text, format!("{}\n", mail.text));
    // The link is whole on the wire, not cut by quoted-printable soft breaks.
    let link = app.services().links.reset_password(&"t".repeat(43));
    assert!(link.starts_with(&format!("{}/reset-password/", app.base())));
    assert!(got.raw.contains(&link), "{}", got.raw);
    assert_eq!(got.link_containing("/reset-password/"), Some(link.as_str()));
    assert_eq!(got.login, None);
    wait_for("the mail counted as sent", ARRIVAL, || {
        (stats(&app).sent == 1).then_some(())
    })
    .await;
    assert_eq!(stats(&app).failed_attempts, 0);
}

#[actix_rt::test]
async fn credentials_in_the_smtp_url_log_in() {
    let receiver = SmtpReceiver::start_with(SmtpOptions {
        login: Some(("livepet".into(), "s3cret".into())),
        ..SmtpOptions::default()
    });
    let app = TestApp::sqlite_with(smtp(receiver.url())).await;

    app.services()
        .mailer
        .send(reset_mail(&app, "bob@example.com"));

    let got = receiver.wait_for("bob@example.com", ARRIVAL).await;
    assert_eq!(got.login.as_deref(), Some("livepet"));
}

#[actix_rt::test]
async fn without_smtp_each_mail_is_an_eml_file_in_the_mail_dir() {
    let app = TestApp::sqlite().await;
    let mail = reset_mail(&app, "carol@example.com");

    app.services().mailer.send(mail.clone());

    let got = wait_for_eml(app.mail_dir(), "carol@example.com", ARRIVAL).await;
    let path = got.file.clone().unwrap();
    assert_eq!(path.parent(), Some(app.mail_dir()));
    assert_eq!(got.from, "LivePet <livepet@localhost>");
    assert_eq!(got.to, "carol@example.com");
    assert_eq!(got.subject, mail.subject);
    assert_eq!(got.text, mail.text);
    assert!(got.raw.contains("\r\nDate: "), "{}", got.raw);
    assert!(got.raw.contains("\r\nMessage-ID: <"), "{}", got.raw);
    // The operator copies the link straight out of the file.
    let link = app.services().links.reset_password(&"t".repeat(43));
    assert!(got.raw.contains(&link), "{}", got.raw);
    // It holds a secret link: readable by the server's user only.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    wait_for("the mail counted as sent", ARRIVAL, || {
        (stats(&app).sent == 1).then_some(())
    })
    .await;
    // Renamed into place: no half-written file is left beside it.
    let names: Vec<_> = std::fs::read_dir(app.mail_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[actix_rt::test]
async fn the_default_mail_dir_is_beside_the_sqlite_file_sqlite() {
    let db = TestDb::sqlite();
    let file = db.raw_url().strip_prefix("sqlite://").unwrap().to_owned();
    let beside = std::path::Path::new(&file).parent().unwrap().join("mail");
    assert!(!beside.exists());
    let app = TestApp::spawn_on(db, |a| a.mail_dir = None).await;
    assert_eq!(app.mail_dir(), beside);
    assert!(beside.is_dir(), "created at startup");

    app.services()
        .mailer
        .send(reset_mail(&app, "dan@example.com"));

    wait_for_eml(&beside, "dan@example.com", ARRIVAL).await;
}

#[actix_rt::test]
async fn an_smtp_server_that_is_down_is_retried_until_it_is_up() {
    let port = unused_port();
    let app = TestApp::sqlite_with(smtp(format!("smtp://127.0.0.1:{port}"))).await;

    let began = Instant::now();
    app.services()
        .mailer
        .send(reset_mail(&app, "erin@example.com"));
    assert!(
        began.elapsed() < Duration::from_millis(100),
        "send must not wait"
    );

    wait_for("a failed attempt", ARRIVAL, || {
        (stats(&app).failed_attempts >= 1).then_some(())
    })
    .await;
    // The server carries on meanwhile.
    let health = reqwest::get(format!("{}/healthz", app.base()))
        .await
        .unwrap();
    assert!(health.status().is_success());
    let receiver = SmtpReceiver::start_on(port);

    let got = receiver.wait_for("erin@example.com", ARRIVAL).await;
    assert_eq!(got.subject, "Reset your LivePet password");
    wait_for("the mail counted as sent", ARRIVAL, || {
        (stats(&app).sent == 1).then_some(())
    })
    .await;
    assert_eq!(stats(&app).given_up, 0);
}

#[actix_rt::test]
async fn a_mail_that_never_goes_through_is_given_up_after_three_attempts() {
    let port = unused_port();
    let app = TestApp::sqlite_with(smtp(format!("smtp://127.0.0.1:{port}"))).await;

    app.services()
        .mailer
        .send(reset_mail(&app, "frank@example.com"));

    // At once, after 1 s, after 5 s more.
    wait_for("the mail given up", Duration::from_secs(30), || {
        (stats(&app).given_up == 1).then_some(())
    })
    .await;
    let s = stats(&app);
    assert_eq!((s.failed_attempts, s.sent, s.pending), (3, 0, 0), "{s:?}");
}

#[actix_rt::test]
async fn a_recipient_the_smtp_server_refuses_is_not_retried() {
    let receiver = SmtpReceiver::start_with(SmtpOptions {
        refuse: vec!["gone@example.com".into()],
        ..SmtpOptions::default()
    });
    let app = TestApp::sqlite_with(smtp(receiver.url())).await;

    app.services()
        .mailer
        .send(reset_mail(&app, "gone@example.com"));
    app.services()
        .mailer
        .send(reset_mail(&app, "grace@example.com"));

    receiver.wait_for("grace@example.com", ARRIVAL).await;
    wait_for("both mails done with", ARRIVAL, || {
        (stats(&app).pending == 0).then_some(())
    })
    .await;
    let s = stats(&app);
    assert_eq!((s.sent, s.failed_attempts, s.pending), (1, 1, 0), "{s:?}");
    assert_eq!(receiver.received().len(), 1);
}

#[actix_rt::test]
async fn a_flood_beyond_the_queue_is_dropped_not_buffered() {
    let port = unused_port();
    let app = TestApp::sqlite_with(smtp(format!("smtp://127.0.0.1:{port}"))).await;
    let flood = QUEUE_CAPACITY as u64 + 100;

    let began = Instant::now();
    for i in 0..flood {
        app.services()
            .mailer
            .send(reset_mail(&app, &format!("u{i}@example.com")));
    }
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "sending never waits"
    );

    let s = stats(&app);
    assert_eq!(s.pending + s.dropped, flood, "{s:?}");
    // A few may already have left the queue for delivery; the rest of the flood is dropped.
    assert!(s.pending <= QUEUE_CAPACITY as u64 + 8, "{s:?}");
}

#[actix_rt::test]
async fn a_graceful_stop_lets_queued_mail_go_out() {
    let receiver = SmtpReceiver::start();
    let app = TestApp::sqlite_with(smtp(receiver.url())).await;

    app.services()
        .mailer
        .send(reset_mail(&app, "heidi@example.com"));
    app.shutdown().await;

    // Already there when the stop returns: it waited for the mail.
    let arrived = receiver.received();
    assert_eq!(arrived.len(), 1);
    assert!(arrived[0].is_for("heidi@example.com"));
}

#[actix_rt::test]
async fn a_graceful_stop_waits_only_briefly_for_a_dead_smtp_server() {
    let port = unused_port();
    let app = TestApp::sqlite_with(smtp(format!("smtp://127.0.0.1:{port}"))).await;
    let mailer = app.services().mailer.clone();

    mailer.send(reset_mail(&app, "ivan@example.com"));
    let began = Instant::now();
    app.shutdown().await;

    assert!(
        began.elapsed() < STOP_WAIT + Duration::from_secs(3),
        "stop took {:?}",
        began.elapsed()
    );
    let s = mailer.stats();
    assert_eq!((s.sent, s.pending), (0, 1), "{s:?}");
    // A mail after the stop is refused, not queued for nobody.
    mailer.send(Mail {
        to: "ivan@example.com".into(),
        subject: "late".into(),
        text: "late\n".into(),
    });
    assert_eq!(mailer.stats().dropped, 1);
}

#[actix_rt::test]
async fn links_in_mails_use_the_public_url() {
    let app =
        TestApp::sqlite_with(|a| a.public_url = Some("https://pets.example.com".into())).await;
    let links = &app.services().links;
    assert_eq!(links.public_url(), "https://pets.example.com");
    assert_eq!(
        links.reset_password("abc"),
        "https://pets.example.com/reset-password/abc"
    );
    assert_eq!(
        links.confirm_email("abc"),
        "https://pets.example.com/confirm-email/abc"
    );

    // Without it: the address the server really listens on (it was asked for port 0).
    let app = TestApp::sqlite().await;
    assert_eq!(
        app.services().links.confirm_email("abc"),
        format!("{}/confirm-email/abc", app.base())
    );
}

/// Runs the binary and expects it to refuse to start with an `error:` naming `needle`.
fn refused(args: &[&str], needle: &str) {
    let out = livepet().args(args).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with("error")) && stderr.contains(needle),
        "error for {args:?} should mention `{needle}`:\n{stderr}"
    );
}

#[test]
fn bad_mail_flags_are_refused_with_a_clear_error() {
    refused(
        &["serve", "--mail-from", "not an address"],
        "is not a mail address",
    );
    refused(
        &["serve", "--public-url", "https://pets.example.com/app"],
        "must be only scheme, host and port",
    );
    refused(
        &["serve", "--public-url", "pets.example.com"],
        "is not a URL",
    );
    refused(
        &[
            "serve",
            "--smtp-url",
            "http://user:hunter2@mail.example.com",
        ],
        "unknown scheme `http`",
    );
    // The password in a bad URL never reaches the error.
    let out = livepet()
        .args(["serve", "--smtp-url", "smtp://user:hunter2@host?tls=maybe"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown `tls=maybe`"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[actix_rt::test]
async fn the_log_says_where_mail_goes_sqlite() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("outbox");
    let mut server =
        ServerProcess::start(db.raw_url(), &["--mail-dir", mail_dir.to_str().unwrap()]).await;
    let log = server.log();
    assert!(
        log.contains(&format!(
            "mail: no --smtp-url, writing .eml files to {}",
            mail_dir.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("links in mails point to {}", server.base)),
        "{log}"
    );
    server.stop().await;

    let receiver = SmtpReceiver::start();
    let mut server = ServerProcess::start(
        db.raw_url(),
        &[
            "--smtp-url",
            &receiver.url(),
            "--public-url",
            "https://pets.example.com/",
        ],
    )
    .await;
    let log = server.log();
    let expected = format!(
        "mail: SMTP via smtp://127.0.0.1:{} (STARTTLS when offered)",
        receiver.port()
    );
    assert!(log.contains(&expected), "{log}");
    assert!(
        log.contains("links in mails point to https://pets.example.com"),
        "{log}"
    );
    server.stop().await;
}
