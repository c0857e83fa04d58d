//! Every statement LivePet runs. Functions take a connection and return diesel's
//! `QueryResult`; callers decide what a failure means.

use super::models::{stored_count, NewPetRow, NewUserRow, PetRow, PetStateRow, UserRow};
use super::schema::{pets, users};
use super::DbConn;
use crate::with_conn;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer};
use livepet_shared::PetId;

/// Rows per UPDATE statement on SQLite: 5 binds a row stays under SQLite's 32,766 limit.
const SQLITE_ROWS_PER_STATEMENT: usize = 4_000;

/// Writes pets' changing columns in one transaction. Dead rows are never touched again, so a
/// stale snapshot arriving after a death cannot bring a pet back. Returns rows updated.
pub fn write_snapshots(conn: &mut DbConn, snaps: &[PetStateRow]) -> QueryResult<usize> {
    if snaps.is_empty() {
        return Ok(0);
    }
    match conn {
        DbConn::Sqlite(c) => c.transaction(|c| {
            let mut updated = 0;
            for chunk in snaps.chunks(SQLITE_ROWS_PER_STATEMENT) {
                let mut sql = String::with_capacity(200 + chunk.len() * 16);
                sql.push_str(
                    "UPDATE pets SET age = v.column2, hunger = v.column3, is_alive = v.column4, \
                     updated_at = v.column5 FROM (VALUES ",
                );
                for i in 0..chunk.len() {
                    sql.push_str(if i == 0 {
                        "(?,?,?,?,?)"
                    } else {
                        ",(?,?,?,?,?)"
                    });
                }
                sql.push_str(") AS v WHERE pets.id = v.column1 AND pets.is_alive");
                let mut q = diesel::sql_query(sql).into_boxed::<diesel::sqlite::Sqlite>();
                for s in chunk {
                    q = q
                        .bind::<BigInt, _>(s.id)
                        .bind::<Integer, _>(s.age)
                        .bind::<Integer, _>(s.hunger)
                        .bind::<Bool, _>(s.is_alive)
                        .bind::<BigInt, _>(s.updated_at);
                }
                updated += q.execute(c)?;
            }
            Ok(updated)
        }),
        DbConn::Pg(c) => {
            // UNNEST keeps it to 5 binds whatever the batch size (PostgreSQL allows 65,535).
            use diesel::sql_types::Array;
            let ids: Vec<i64> = snaps.iter().map(|s| s.id).collect();
            let ages: Vec<i32> = snaps.iter().map(|s| s.age).collect();
            let hungers: Vec<i32> = snaps.iter().map(|s| s.hunger).collect();
            let alive: Vec<bool> = snaps.iter().map(|s| s.is_alive).collect();
            let ats: Vec<i64> = snaps.iter().map(|s| s.updated_at).collect();
            c.transaction(|c| {
                // Seeing 20,000 ids, the planner picks a hash join over a sequential scan of
                // every pet (350 ms a batch at 1M pets, the whole flush 14-21 s); with the
                // random page cost of cached or SSD data it takes the index, one lookup per
                // snapshot in id order (94 ms a batch). Only for this transaction.
                diesel::sql_query("SET LOCAL random_page_cost = 1.1").execute(c)?;
                diesel::sql_query(
                    "UPDATE pets SET age = v.age, hunger = v.hunger, is_alive = v.alive, \
                     updated_at = v.ts \
                     FROM UNNEST($1::int8[], $2::int4[], $3::int4[], $4::bool[], $5::int8[]) \
                     AS v(id, age, hunger, alive, ts) \
                     WHERE pets.id = v.id AND pets.is_alive",
                )
                .bind::<Array<BigInt>, _>(ids)
                .bind::<Array<Integer>, _>(ages)
                .bind::<Array<Integer>, _>(hungers)
                .bind::<Array<Bool>, _>(alive)
                .bind::<Array<BigInt>, _>(ats)
                .execute(c)
            })
        }
    }
}

/// One page of live pets in id order, after `after` (keyset paging keeps each page cheap).
pub fn live_pets_page(conn: &mut DbConn, after: i64, limit: i64) -> QueryResult<Vec<PetRow>> {
    with_conn!(conn, |c| pets::table
        .filter(pets::is_alive.eq(true))
        .filter(pets::id.gt(after))
        .order(pets::id.asc())
        .limit(limit)
        .select(PetRow::as_select())
        .load(c))
}

/// How many pets are alive in the database.
pub fn count_live_pets(conn: &mut DbConn) -> QueryResult<i64> {
    with_conn!(conn, |c| pets::table
        .filter(pets::is_alive.eq(true))
        .count()
        .get_result(c))
}

/// One pet row.
pub fn find_pet(conn: &mut DbConn, id: PetId) -> QueryResult<Option<PetRow>> {
    with_conn!(conn, |c| pets::table
        .find(id.0)
        .select(PetRow::as_select())
        .first(c)
        .optional())
}

/// Every pet, in id order (tests and tools compare whole tables).
pub fn all_pets(conn: &mut DbConn) -> QueryResult<Vec<PetRow>> {
    with_conn!(conn, |c| pets::table
        .order(pets::id.asc())
        .select(PetRow::as_select())
        .load(c))
}

/// Inserts one pet and returns it with its id.
pub fn insert_pet(conn: &mut DbConn, new: &NewPetRow<'_>) -> QueryResult<PetRow> {
    with_conn!(conn, |c| diesel::insert_into(pets::table)
        .values(new)
        .returning(PetRow::as_returning())
        .get_result(c))
}

/// Rows per multi-row INSERT: 8 binds a row stays under both backends' bind limits.
const INSERT_ROWS_PER_STATEMENT: usize = 4_000;

/// Inserts many pets in one transaction, a few thousand rows per statement.
pub fn insert_pets(conn: &mut DbConn, rows: &[NewPetRow<'_>]) -> QueryResult<usize> {
    with_conn!(conn, |c| c.transaction(|c| {
        let mut n = 0;
        for chunk in rows.chunks(INSERT_ROWS_PER_STATEMENT) {
            n += diesel::insert_into(pets::table).values(chunk).execute(c)?;
        }
        Ok(n)
    }))
}

/// The user with this (lowercased) email, if any.
pub fn find_user_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<UserRow>> {
    with_conn!(conn, |c| users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(c)
        .optional())
}

/// Inserts a user; a taken email surfaces as a unique violation.
pub fn insert_user(conn: &mut DbConn, new: &NewUserRow<'_>) -> QueryResult<UserRow> {
    with_conn!(conn, |c| diesel::insert_into(users::table)
        .values(new)
        .returning(UserRow::as_returning())
        .get_result(c))
}

/// Tops every user up to `max` treats; returns how many users changed.
pub fn refresh_treats(conn: &mut DbConn, max: u32) -> QueryResult<usize> {
    let max = stored_count(max);
    with_conn!(conn, |c| diesel::update(
        users::table.filter(users::available_treats.lt(max))
    )
    .set(users::available_treats.eq(max))
    .execute(c))
}

/// One user row.
pub fn find_user(conn: &mut DbConn, id: i64) -> QueryResult<Option<UserRow>> {
    with_conn!(conn, |c| users::table
        .find(id)
        .select(UserRow::as_select())
        .first(c)
        .optional())
}

/// Stores a new session (only the token's hash).
pub fn insert_session(
    conn: &mut DbConn,
    token_hash: &str,
    user_id: i64,
    now: i64,
    expires_at: i64,
) -> QueryResult<usize> {
    use super::schema::sessions;
    with_conn!(conn, |c| diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(token_hash),
            sessions::user_id.eq(user_id),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(c))
}

/// The user of an unexpired session.
pub fn find_session_user(
    conn: &mut DbConn,
    token_hash: &str,
    now: i64,
) -> QueryResult<Option<i64>> {
    use super::schema::sessions;
    with_conn!(conn, |c| sessions::table
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::expires_at.gt(now))
        .select(sessions::user_id)
        .first(c)
        .optional())
}

/// Revokes a session.
pub fn delete_session(conn: &mut DbConn, token_hash: &str) -> QueryResult<usize> {
    use super::schema::sessions;
    with_conn!(conn, |c| diesel::delete(
        sessions::table.filter(sessions::token_hash.eq(token_hash))
    )
    .execute(c))
}

/// Removes expired sessions; returns how many.
pub fn purge_expired_sessions(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    use super::schema::sessions;
    with_conn!(conn, |c| diesel::delete(
        sessions::table.filter(sessions::expires_at.le(now))
    )
    .execute(c))
}

/// Spends one treat if the user has any: one conditional UPDATE, so concurrent spends can
/// never go below zero. Returns the remaining count, or `None` when there was none to spend.
pub fn spend_treat(conn: &mut DbConn, user_id: i64) -> QueryResult<Option<i32>> {
    with_conn!(conn, |c| diesel::update(
        users::table
            .filter(users::id.eq(user_id))
            .filter(users::available_treats.gt(0))
    )
    .set(users::available_treats.eq(users::available_treats - 1))
    .returning(users::available_treats)
    .get_result(c)
    .optional())
}

/// Gives a spent treat back (its pet died before it could eat it), never above `max`.
pub fn refund_treat(conn: &mut DbConn, user_id: i64, max: u32) -> QueryResult<Option<i32>> {
    let max = stored_count(max);
    with_conn!(conn, |c| diesel::update(
        users::table
            .filter(users::id.eq(user_id))
            .filter(users::available_treats.lt(max))
    )
    .set(users::available_treats.eq(users::available_treats + 1))
    .returning(users::available_treats)
    .get_result(c)
    .optional())
}

/// A user's pets, newest first.
pub fn pets_of_user(conn: &mut DbConn, user_id: i64, limit: i64) -> QueryResult<Vec<PetRow>> {
    with_conn!(conn, |c| pets::table
        .filter(pets::user_id.eq(user_id))
        .order(pets::id.desc())
        .limit(limit)
        .select(PetRow::as_select())
        .load(c))
}
