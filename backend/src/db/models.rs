//! Rows as diesel reads and writes them. Insertable `New*` rows are kept apart from the rows
//! read back, and both apart from the wire views in `livepet-shared`.

use super::schema::{pets, users};
use diesel::prelude::*;

/// A pet row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = pets)]
pub struct PetRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub species: String,
    pub age: i32,
    pub hunger: i32,
    pub is_alive: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A pet about to be inserted.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = pets)]
pub struct NewPetRow<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub species: &'a str,
    pub age: i32,
    pub hunger: i32,
    pub is_alive: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user row as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub available_treats: i32,
    pub created_at: i64,
}

/// A user about to be inserted.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUserRow<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub available_treats: i32,
    pub created_at: i64,
}
