//! Integration tests of the LivePet server: real actors, real SQLite files, the real
//! PostgreSQL (a database created and dropped per test), the real `livepet` binary.

// First, so its macro is in scope in every other module.
#[macro_use]
mod helpers;

mod accounts;
mod actors;
mod binary;
mod client;
mod hostile;
mod live;
mod persistence;
mod pets_api;
mod proxy;
mod reliability;
mod security;
