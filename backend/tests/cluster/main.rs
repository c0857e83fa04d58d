//! Several nodes, all real: three `livepet serve` processes on one PostgreSQL database,
//! joined through a `nats-server` of the test's own. Ownership (every shard leased once,
//! every pet running once), traffic between nodes (watching, feeding, presence, treats), and
//! failures (`kill -9`, SIGTERM hand-off, a node paused past its lease).
//!
//! They need PostgreSQL on 127.0.0.1:5432 (or LIVEPET_TEST_POSTGRES_URL) and
//! /usr/sbin/nats-server (or NATS_SERVER). Without them they print `SKIPPED(cluster)` and
//! pass, except under `CI`, where they fail.

// A failed unwrap is a failed test, with its location: the plainest check there is.
#![allow(clippy::unwrap_used)]

// The server tests' HTTP and WebSocket clients; only some of their helpers are used here.
#[allow(dead_code)]
#[path = "../server/client.rs"]
mod client;
mod harness;
#[path = "../support/nats.rs"]
mod nats;
#[path = "../support/pgdb.rs"]
mod pgdb;
#[allow(dead_code)]
#[path = "../support/process.rs"]
mod process;

mod failures;
mod ownership;
mod traffic;
