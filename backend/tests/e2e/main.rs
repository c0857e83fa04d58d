//! End-to-end tests in a real browser: headless Chromium driven through chromedriver
//! (fantoccini), against the real `livepet` binary serving the built web app, each test with
//! its own temporary database and two independent browser sessions (two users).
//!
//! They need `frontend/dist` (or LIVEPET_E2E_DIST), /usr/bin/chromedriver (or CHROMEDRIVER)
//! and /usr/bin/chromium (or CHROMIUM). Without them they print `SKIPPED(e2e)` and pass,
//! except under `CI`, where they fail. Screenshots land in target/e2e/.

// A failed unwrap is a failed test, with its location: the plainest check there is.
#![allow(clippy::unwrap_used)]

mod accounts;
mod cluster;
mod harness;
// Only its start, its URL and its log are used here.
#[allow(dead_code)]
#[path = "../support/nats.rs"]
mod nats;
#[path = "../support/pgdb.rs"]
mod pgdb;
#[path = "../support/process.rs"]
mod process;
mod scenarios;
// Only its reader of the `.eml` files a server without SMTP writes is used here.
#[allow(dead_code)]
#[path = "../support/smtp.rs"]
mod smtp;
