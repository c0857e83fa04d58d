//! Integration tests of the LivePet server: real actors, real SQLite files, the real
//! PostgreSQL (a database created and dropped per test), the real `livepet` binary.

// A failed unwrap is a failed test, with its location: the plainest check there is.
#![allow(clippy::unwrap_used)]

// First, so its macro is in scope in every other module.
#[macro_use]
mod helpers;

mod client;
#[path = "../support/process.rs"]
mod process;
mod proxy;
#[path = "../support/smtp.rs"]
mod smtp;

mod accounts;
mod actors;
mod binary;
mod canonical_input;
mod connections;
mod headers;
mod hostile;
mod limits;
mod live;
mod mail;
mod origin;
mod password_reset;
mod persistence;
mod pet_privacy;
mod pets_api;
mod process_faults;
mod reliability;
mod security;
mod sessions;
mod storage;
mod window;
