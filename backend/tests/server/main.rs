//! Integration tests of the LivePet server: real actors, real SQLite files, the real
//! PostgreSQL (a database created and dropped per test), the real `livepet` binary.

mod accounts;
mod actors;
mod binary;
mod client;
mod helpers;
mod hostile;
mod live;
mod persistence;
mod pets_api;
mod proxy;
mod reliability;
mod security;
