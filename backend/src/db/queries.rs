//! Every statement LivePet runs. Functions take a connection and return diesel's
//! `QueryResult`; callers decide what a failure means.
//!
//! Every write whose success a user is told of runs in an explicit transaction, even a single
//! statement: on SQLite a statement in autocommit mode hands its `RETURNING` row back before
//! its implicit commit, and a commit that then fails (a full disk) is never reported. An
//! explicit COMMIT is a statement of its own, and its failure is an error the caller sees.

use super::models::{
    stored_count, NewPetRow, NewUserRow, PetRow, PetStateRow, StoredPetRow, UserRow,
};
use super::schema::{pets, users};
use super::DbConn;
use crate::with_conn;
use diesel::dsl::case_when;
use diesel::dsl::sql;
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use livepet_shared::PetId;

/// Rows per UPDATE statement on SQLite: 4 binds a row stays under SQLite's 32,766 limit.
const SQLITE_ROWS_PER_STATEMENT: usize = 8_000;

/// One snapshot UPDATE on SQLite: `rows` joined from a VALUES list. Unlike `sql_query`, which
/// diesel never caches, this is prepared once per shape and reused (re-parsing 8,000 rows of
/// placeholders for every statement was a large part of a flush). A living pet's row is
/// written without `is_alive`: setting it, even to the same value, makes SQLite rewrite the
/// pet's entry in the partial index of live pets (sqlite3 shell, a million rows: 1.8 s with
/// it, 1.3 s without).
/// `UPDATE OR FAIL`: the caller's transaction is what rolls back on an error, so SQLite need
/// not keep a statement journal to undo half a statement.
struct SnapshotUpdate<'a> {
    rows: &'a [PetStateRow],
    /// Also write `is_alive` (for the pets that died).
    deaths: bool,
}

impl QueryId for SnapshotUpdate<'_> {
    type QueryId = ();
    // Cached by its SQL text, which differs with the row count and `deaths`.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<diesel::sqlite::Sqlite> for SnapshotUpdate<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        out.push_sql("UPDATE OR FAIL pets SET age = v.column2, hunger = v.column3, ");
        out.push_sql(if self.deaths {
            "is_alive = v.column5, updated_at = v.column4 FROM (VALUES "
        } else {
            "updated_at = v.column4 FROM (VALUES "
        });
        for (i, r) in self.rows.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ",(" });
            out.push_bind_param::<BigInt, _>(&r.id)?;
            out.push_sql(",");
            out.push_bind_param::<Integer, _>(&r.age)?;
            out.push_sql(",");
            out.push_bind_param::<Integer, _>(&r.hunger)?;
            out.push_sql(",");
            out.push_bind_param::<BigInt, _>(&r.updated_at)?;
            if self.deaths {
                out.push_sql(",");
                out.push_bind_param::<Bool, _>(&r.is_alive)?;
            }
            out.push_sql(")");
        }
        out.push_sql(") AS v WHERE pets.id = v.column1 AND pets.is_alive");
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for SnapshotUpdate<'_> {}

/// `rows` as statements of [`SQLITE_ROWS_PER_STATEMENT`] rows and, for the rest, of
/// power-of-two sizes, so a few prepared shapes serve any count.
fn sqlite_update_rows(
    c: &mut diesel::SqliteConnection,
    mut rows: &[PetStateRow],
    deaths: bool,
) -> QueryResult<usize> {
    let mut updated = 0;
    while !rows.is_empty() {
        let n = if rows.len() >= SQLITE_ROWS_PER_STATEMENT {
            SQLITE_ROWS_PER_STATEMENT
        } else {
            1 << rows.len().ilog2()
        };
        let (now, rest) = rows.split_at(n);
        updated += SnapshotUpdate { rows: now, deaths }.execute(c)?;
        rows = rest;
    }
    Ok(updated)
}

/// Writes pets' changing columns in one transaction. Dead rows are never touched again, so a
/// stale snapshot arriving after a death cannot bring a pet back. Returns rows updated.
pub fn write_snapshots(conn: &mut DbConn, snaps: &[PetStateRow]) -> QueryResult<usize> {
    if snaps.is_empty() {
        return Ok(0);
    }
    match conn {
        DbConn::Sqlite(c) => c.transaction(|c| {
            let living = snaps.iter().filter(|s| s.is_alive).count();
            if living == snaps.len() {
                return sqlite_update_rows(c, snaps, false);
            }
            let (alive, dead): (Vec<PetStateRow>, Vec<PetStateRow>) =
                snaps.iter().partition(|s| s.is_alive);
            Ok(sqlite_update_rows(c, &alive, false)? + sqlite_update_rows(c, &dead, true)?)
        }),
        DbConn::Pg(c) => pg_update_rows(c, snaps, None),
    }
}

/// The PostgreSQL side of [`write_snapshots`] and [`write_snapshots_fenced`]: one UPDATE from
/// arrays, joined to `shard_leases` when `fence` gives each row's epoch and this node's name.
fn pg_update_rows(
    c: &mut diesel::pg::PgConnection,
    snaps: &[PetStateRow],
    fence: Option<(&[i64], &str)>,
) -> QueryResult<usize> {
    // UNNEST keeps it to a few binds whatever the batch size (PostgreSQL allows 65,535).
    use diesel::sql_types::Array;
    let ids: Vec<i64> = snaps.iter().map(|s| s.id).collect();
    let ages: Vec<i32> = snaps.iter().map(|s| s.age).collect();
    let hungers: Vec<i32> = snaps.iter().map(|s| s.hunger).collect();
    let alive: Vec<bool> = snaps.iter().map(|s| s.is_alive).collect();
    let ats: Vec<i64> = snaps.iter().map(|s| s.updated_at).collect();
    // The arrays' alias, and for a fenced write the epochs and the lease each row needs.
    let source = if fence.is_some() {
        ", $6::int8[]) AS v(id, age, hunger, alive, ts, epoch) \
         JOIN shard_leases l ON l.shard = v.id % 1024 AND l.epoch = v.epoch AND l.node = $7 \
         AND l.expires_at > (extract(epoch from clock_timestamp()) * 1000)::int8"
    } else {
        ") AS v(id, age, hunger, alive, ts)"
    };
    c.transaction(|c| {
        // Seeing 20,000 ids, the planner picks a hash join over a sequential scan of every
        // pet (350 ms a batch at 1M pets, the whole flush 14-21 s); with the random page cost
        // of cached or SSD data it takes the index, one lookup per snapshot in id order
        // (94 ms a batch). Only for this transaction.
        diesel::sql_query("SET LOCAL random_page_cost = 1.1").execute(c)?;
        let mut update = diesel::sql_query(format!(
            "UPDATE pets SET age = v.age, hunger = v.hunger, is_alive = v.alive, \
             updated_at = v.ts \
             FROM UNNEST($1::int8[], $2::int4[], $3::int4[], $4::bool[], $5::int8[]{source} \
             WHERE pets.id = v.id AND pets.is_alive"
        ))
        .into_boxed()
        .bind::<Array<BigInt>, _>(ids)
        .bind::<Array<Integer>, _>(ages)
        .bind::<Array<Integer>, _>(hungers)
        .bind::<Array<Bool>, _>(alive)
        .bind::<Array<BigInt>, _>(ats);
        if let Some((epochs, node)) = fence {
            update = update
                .bind::<Array<BigInt>, _>(epochs.to_vec())
                .bind::<Text, _>(node.to_string());
        }
        update.execute(c)
    })
}

/// How the commits of a long run of snapshot writes (the final flush) reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkCommit {
    /// Until the last batch: commits that are not flushed to disk one by one. SQLite also
    /// stops checkpointing, so each page is written once (to the WAL) instead of being
    /// copied into the database file and synced every thousand pages; PostgreSQL does not
    /// wait for the WAL flush of each commit. A crash of this process loses nothing
    /// committed; a power cut before the last commit can lose deferred ones (as it would
    /// have lost the rest of the flush anyway); nothing is ever torn.
    Deferred,
    /// The last batch: its commit is synced, and with it every deferred one before it (both
    /// logs are written in order).
    Durable,
    /// Back to the connection's usual settings.
    Normal,
}

/// Sets how the next commits on this connection reach the disk.
pub fn set_bulk_commit(conn: &mut DbConn, mode: BulkCommit) -> QueryResult<()> {
    use diesel::connection::SimpleConnection as _;
    let sql = match (&*conn, mode) {
        (DbConn::Sqlite(_), BulkCommit::Deferred) => {
            "PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = NORMAL;"
        }
        (DbConn::Sqlite(_), BulkCommit::Durable) => "PRAGMA synchronous = FULL;",
        // As `db::establish` sets it, and SQLite's default checkpoint interval.
        (DbConn::Sqlite(_), BulkCommit::Normal) => {
            "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 1000;"
        }
        (DbConn::Pg(_), BulkCommit::Deferred) => "SET synchronous_commit = off",
        (DbConn::Pg(_), BulkCommit::Durable) => "SET synchronous_commit = on",
        (DbConn::Pg(_), BulkCommit::Normal) => "RESET synchronous_commit",
    };
    conn.batch_execute(sql)
}

/// How a pet is read without trusting it (see [`StoredPetRow`]): the same columns on both
/// backends, decoded by position.
type StoredPetColumns = (
    pets::id,
    SqlLiteral<Nullable<BigInt>>,
    SqlLiteral<Nullable<Text>>,
    SqlLiteral<Nullable<Text>>,
    SqlLiteral<Nullable<BigInt>>,
    SqlLiteral<Nullable<BigInt>>,
    SqlLiteral<Nullable<BigInt>>,
    SqlLiteral<Nullable<BigInt>>,
    SqlLiteral<Nullable<BigInt>>,
    SqlLiteral<Text>,
);

/// SQLite keeps any value in any column. A value of the wrong storage class is described in
/// `mistyped`, so it is named rather than read as 0 (text read as a number) or cut to 32 bits
/// (a large integer read as INTEGER); the numbers are read as 64-bit and checked by the
/// caller. A sound row costs one chain of `typeof` tests (measured: +0.35 s per million
/// rows); only a damaged one builds the description. Text columns holding anything else read
/// as NULL, so a blob is never decoded as text.
fn sqlite_stored_pet() -> StoredPetColumns {
    (
        pets::id,
        sql("user_id"),
        sql("CASE WHEN typeof(name) = 'text' THEN name END"),
        sql("CASE WHEN typeof(species) = 'text' THEN species END"),
        sql("age"),
        sql("hunger"),
        sql("is_alive"),
        sql("created_at"),
        sql("updated_at"),
        sql(sqlite_mistyped()),
    )
}

/// The pet columns a loaded row is checked for, with the storage class each must have.
const SQLITE_COLUMN_TYPES: [(&str, &str); 8] = [
    ("user_id", "integer"),
    ("name", "text"),
    ("species", "text"),
    ("age", "integer"),
    ("hunger", "integer"),
    ("is_alive", "integer"),
    ("created_at", "integer"),
    ("updated_at", "integer"),
];

/// An SQL expression that is '' for a row whose columns all have their storage class, and
/// otherwise names each mistyped column and its value (`age is 'abc'; name is X'00'`).
/// NULLs are let through here: the caller names them.
fn sqlite_mistyped() -> &'static str {
    static EXPR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    EXPR.get_or_init(|| {
        let sound: Vec<String> = SQLITE_COLUMN_TYPES
            .iter()
            .map(|(c, t)| format!("typeof({c}) = '{t}'"))
            .collect();
        let named: Vec<String> = SQLITE_COLUMN_TYPES
            .iter()
            .map(|(c, t)| {
                format!(
                    "CASE WHEN typeof({c}) IN ('{t}', 'null') THEN '' \
                     ELSE '{c} is ' || substr(quote({c}), 1, 40) || '; ' END"
                )
            })
            .collect();
        format!(
            "CASE WHEN {} THEN '' ELSE rtrim({}, '; ') END",
            sound.join(" AND "),
            named.join(" || ")
        )
    })
}

/// PostgreSQL holds its column types, so only the counts need widening to compare them with
/// the domain (NULLs are still possible where someone dropped a NOT NULL).
fn pg_stored_pet() -> StoredPetColumns {
    (
        pets::id,
        sql("user_id"),
        sql("name"),
        sql("species"),
        sql("age::int8"),
        sql("hunger::int8"),
        sql("(CASE WHEN is_alive THEN 1 WHEN NOT is_alive THEN 0 END)::int8"),
        sql("created_at"),
        sql("updated_at"),
        sql("''::text"),
    )
}

/// One page of pets that are not known dead, in id order after `after` and up to `until`
/// (keyset paging keeps each page cheap; the upper bound lets several readers share the table
/// by id range), read without trusting them: the loader checks each row. On SQLite that
/// includes rows whose `is_alive` is damaged (2, NULL, 'abc'), so they are named, not
/// skipped silently.
pub fn live_pets_page(
    conn: &mut DbConn,
    after: i64,
    until: i64,
    limit: i64,
) -> QueryResult<Vec<StoredPetRow>> {
    match conn {
        DbConn::Sqlite(c) => pets::table
            .select(sqlite_stored_pet())
            .filter(sql::<Bool>("is_alive IS NOT 0"))
            .filter(pets::id.gt(after))
            .filter(pets::id.le(until))
            .order(pets::id.asc())
            .limit(limit)
            .load(c),
        DbConn::Pg(c) => pets::table
            .select(pg_stored_pet())
            .filter(pets::is_alive.eq(true))
            .filter(pets::id.gt(after))
            .filter(pets::id.le(until))
            .order(pets::id.asc())
            .limit(limit)
            .load(c),
    }
}

/// The lowest and highest pet id in the table (dead pets included), if there is any pet. Two
/// queries: each is one look at an end of the primary key, where one query with both
/// aggregates scans the whole table on SQLite.
pub fn pet_id_bounds(conn: &mut DbConn) -> QueryResult<Option<(i64, i64)>> {
    use diesel::dsl::{max, min};
    let lo: Option<i64> = with_conn!(conn, |c| pets::table.select(min(pets::id)).get_result(c))?;
    let hi: Option<i64> = with_conn!(conn, |c| pets::table.select(max(pets::id)).get_result(c))?;
    Ok(lo.zip(hi))
}

/// One page of a user's pets, newest first (ids below `before`), read without trusting
/// them (a damaged one is shown as such).
pub fn stored_pets_of_user(
    conn: &mut DbConn,
    user_id: i64,
    before: i64,
    limit: i64,
) -> QueryResult<Vec<StoredPetRow>> {
    match conn {
        DbConn::Sqlite(c) => pets::table
            .select(sqlite_stored_pet())
            .filter(pets::user_id.eq(user_id))
            .filter(pets::id.lt(before))
            .order(pets::id.desc())
            .limit(limit)
            .load(c),
        DbConn::Pg(c) => pets::table
            .select(pg_stored_pet())
            .filter(pets::user_id.eq(user_id))
            .filter(pets::id.lt(before))
            .order(pets::id.desc())
            .limit(limit)
            .load(c),
    }
}

/// One pet, read without trusting it.
pub fn find_stored_pet(conn: &mut DbConn, id: PetId) -> QueryResult<Option<StoredPetRow>> {
    match conn {
        DbConn::Sqlite(c) => pets::table
            .select(sqlite_stored_pet())
            .filter(pets::id.eq(id.0))
            .first(c)
            .optional(),
        DbConn::Pg(c) => pets::table
            .select(pg_stored_pet())
            .filter(pets::id.eq(id.0))
            .first(c)
            .optional(),
    }
}

/// The live pets of some shards (cluster mode, PostgreSQL only: a pet's shard is its id mod
/// 1,024). Read with the partial index on the shard, one query for all of them: a caller
/// asks for a few shards at a time, so the rows stay a page's worth.
pub fn live_pets_of_shards(conn: &mut DbConn, shards: &[i64]) -> QueryResult<Vec<StoredPetRow>> {
    use diesel::sql_types::Array;
    match conn {
        DbConn::Sqlite(_) => Err(diesel::result::Error::QueryBuilderError(
            "shards of pets are a cluster feature, which needs PostgreSQL".into(),
        )),
        DbConn::Pg(c) => pets::table
            .select(pg_stored_pet())
            .filter(pets::is_alive.eq(true))
            .filter(
                sql::<Bool>("(pets.id % 1024) = ANY(")
                    .bind::<Array<BigInt>, _>(shards.to_vec())
                    .sql(")"),
            )
            .order(pets::id.asc())
            .load(c),
    }
}

/// Writes snapshots like [`write_snapshots`], but each only under its shard's lease: a row is
/// written only if `shard_leases` says this `node` holds the pet's shard at the epoch given
/// for it (`epochs[i]` for `snaps[i]`, 0 for none) and the lease has not expired on the
/// database's clock. Returns how many rows were written; the rest were fenced off (their
/// shard moved to another node, which owns their state now). PostgreSQL only.
pub fn write_snapshots_fenced(
    conn: &mut DbConn,
    snaps: &[PetStateRow],
    epochs: &[i64],
    node: &str,
) -> QueryResult<usize> {
    let DbConn::Pg(c) = conn else {
        return Err(diesel::result::Error::QueryBuilderError(
            "fenced writes are a cluster feature, which needs PostgreSQL".into(),
        ));
    };
    // A row of a shard this node does not hold (epoch 0) is not even sent.
    let (held, epochs): (Vec<PetStateRow>, Vec<i64>) = snaps
        .iter()
        .zip(epochs)
        .filter(|(_, e)| **e != 0)
        .map(|(s, e)| (*s, *e))
        .unzip();
    if held.is_empty() {
        return Ok(0);
    }
    pg_update_rows(c, &held, Some((&epochs, node)))
}

/// How many pets are alive in the database. `WHERE is_alive`, not `= true`: on SQLite only
/// the former is answered from the partial index of live pets (at ten million pets, 0.35 s of
/// CPU instead of a scan of the whole table).
pub fn count_live_pets(conn: &mut DbConn) -> QueryResult<i64> {
    with_conn!(conn, |c| pets::table
        .filter(pets::is_alive)
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

/// Inserts one pet and returns it with its id, once committed.
pub fn insert_pet(conn: &mut DbConn, new: &NewPetRow<'_>) -> QueryResult<PetRow> {
    with_conn!(conn, |c| c.transaction(|c| diesel::insert_into(
        pets::table
    )
    .values(new)
    .returning(PetRow::as_returning())
    .get_result(c)))
}

/// Inserts a pet unless its owner already has `max_live` live pets (then `None`), committed
/// on return. The count and the insert are one unit per owner: SQLite takes its write lock
/// before counting (an immediate transaction), PostgreSQL locks the owner's row first, so
/// two adoptions at once cannot both take the last place.
pub fn insert_pet_within(
    conn: &mut DbConn,
    new: &NewPetRow<'_>,
    max_live: i64,
) -> QueryResult<Option<PetRow>> {
    // One body for both backends, as `with_conn!` writes it; only the lock differs.
    macro_rules! count_then_insert {
        ($c:ident) => {{
            let live: i64 = pets::table
                .filter(pets::user_id.eq(new.user_id))
                .filter(pets::is_alive.eq(true))
                .count()
                .get_result($c)?;
            if live >= max_live {
                return Ok(None);
            }
            diesel::insert_into(pets::table)
                .values(new)
                .returning(PetRow::as_returning())
                .get_result($c)
                .map(Some)
        }};
    }
    match conn {
        DbConn::Sqlite(c) => c.immediate_transaction(|c| count_then_insert!(c)),
        DbConn::Pg(c) => c.transaction(|c| {
            users::table
                .find(new.user_id)
                .select(users::id)
                .for_update()
                .first::<i64>(c)?;
            count_then_insert!(c)
        }),
    }
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

/// Inserts a user, committed on return; a taken email surfaces as a unique violation.
pub fn insert_user(conn: &mut DbConn, new: &NewUserRow<'_>) -> QueryResult<UserRow> {
    with_conn!(conn, |c| c.transaction(|c| diesel::insert_into(
        users::table
    )
    .values(new)
    .returning(UserRow::as_returning())
    .get_result(c)))
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
    with_conn!(conn, |c| c.transaction(|c| diesel::insert_into(
        sessions::table
    )
    .values((
        sessions::token_hash.eq(token_hash),
        sessions::user_id.eq(user_id),
        sessions::created_at.eq(now),
        sessions::expires_at.eq(expires_at),
    ))
    .execute(c)))
}

/// The user of an unexpired session and when it expires.
pub fn find_session(
    conn: &mut DbConn,
    token_hash: &str,
    now: i64,
) -> QueryResult<Option<(i64, i64)>> {
    use super::schema::sessions;
    with_conn!(conn, |c| sessions::table
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::expires_at.gt(now))
        .select((sessions::user_id, sessions::expires_at))
        .first(c)
        .optional())
}

/// Revokes a session, committed on return; the user it belonged to, if it existed.
pub fn delete_session(conn: &mut DbConn, token_hash: &str) -> QueryResult<Option<i64>> {
    use super::schema::sessions;
    with_conn!(conn, |c| c.transaction(|c| diesel::delete(
        sessions::table.filter(sessions::token_hash.eq(token_hash))
    )
    .returning(sessions::user_id)
    .get_result(c)
    .optional()))
}

/// Revokes every session of a user but `keep` (a token hash), if given; returns how many.
pub fn delete_sessions_of_user(
    conn: &mut DbConn,
    user_id: i64,
    keep: Option<&str>,
) -> QueryResult<usize> {
    use super::schema::sessions;
    let keep = keep.unwrap_or("");
    with_conn!(conn, |c| diesel::delete(
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::token_hash.ne(keep))
    )
    .execute(c))
}

/// Removes expired sessions and expired mailed links; returns how many sessions.
pub fn purge_expired_sessions(conn: &mut DbConn, now: i64) -> QueryResult<usize> {
    use super::schema::{account_tokens, sessions};
    with_conn!(conn, |c| {
        diesel::delete(account_tokens::table.filter(account_tokens::expires_at.le(now)))
            .execute(c)?;
        diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(c)
    })
}

/// Sets a user's password hash; returns rows changed (0 for a deleted user).
pub fn set_password_hash(conn: &mut DbConn, user_id: i64, hash: &str) -> QueryResult<usize> {
    with_conn!(conn, |c| diesel::update(users::table.find(user_id))
        .set(users::password_hash.eq(hash))
        .execute(c))
}

/// Sets a user's email; a taken one surfaces as a unique violation.
pub fn set_email(conn: &mut DbConn, user_id: i64, email: &str) -> QueryResult<usize> {
    with_conn!(conn, |c| diesel::update(users::table.find(user_id))
        .set(users::email.eq(email))
        .execute(c))
}

/// Deletes a user (its sessions, links and pets go with it, by foreign key); returns the ids
/// of its pets, read in the same transaction, so their actors can be stopped.
pub fn delete_user(conn: &mut DbConn, user_id: i64) -> QueryResult<Vec<i64>> {
    with_conn!(conn, |c| c.transaction(|c| {
        let ids = pets::table
            .filter(pets::user_id.eq(user_id))
            .select(pets::id)
            .load::<i64>(c)?;
        diesel::delete(users::table.find(user_id)).execute(c)?;
        Ok(ids)
    }))
}

/// What a mailed link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    ResetPassword,
    ConfirmEmail,
}

impl TokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::ResetPassword => "reset_password",
            TokenPurpose::ConfirmEmail => "confirm_email",
        }
    }
}

/// Stores a mailed link's hash, replacing the user's earlier link of the same purpose (a
/// new reset mail makes the older one useless). One statement on the (user, purpose) key,
/// so two links asked for at once still leave exactly one.
pub fn replace_account_token(
    conn: &mut DbConn,
    token_hash: &str,
    user_id: i64,
    purpose: TokenPurpose,
    new_email: Option<&str>,
    now: i64,
    expires_at: i64,
) -> QueryResult<()> {
    use super::schema::account_tokens as t;
    with_conn!(conn, |c| c.transaction(|c| {
        diesel::insert_into(t::table)
            .values((
                t::token_hash.eq(token_hash),
                t::user_id.eq(user_id),
                t::purpose.eq(purpose.as_str()),
                t::new_email.eq(new_email),
                t::created_at.eq(now),
                t::expires_at.eq(expires_at),
            ))
            .on_conflict((t::user_id, t::purpose))
            .do_update()
            .set((
                t::token_hash.eq(token_hash),
                t::new_email.eq(new_email),
                t::created_at.eq(now),
                t::expires_at.eq(expires_at),
            ))
            .execute(c)?;
        Ok(())
    }))
}

/// Uses up a mailed link of this purpose: deletes it, expired or not, and returns its user
/// and new email if it had not expired. Call it inside the transaction that acts on the
/// link, so a failed action leaves the link usable.
pub fn take_account_token(
    conn: &mut DbConn,
    token_hash: &str,
    purpose: TokenPurpose,
    now: i64,
) -> QueryResult<Option<(i64, Option<String>)>> {
    use super::schema::account_tokens as t;
    let row: Option<(i64, Option<String>, i64)> = with_conn!(conn, |c| diesel::delete(
        t::table
            .filter(t::token_hash.eq(token_hash))
            .filter(t::purpose.eq(purpose.as_str()))
    )
    .returning((t::user_id, t::new_email, t::expires_at))
    .get_result(c)
    .optional())?;
    Ok(row
        .filter(|(_, _, expires)| *expires > now)
        .map(|(user, email, _)| (user, email)))
}

/// Spends one treat if the user has any: one conditional UPDATE, so concurrent spends can
/// never go below zero. Returns the remaining count once committed, or `None` when there was
/// none to spend.
pub fn spend_treat(conn: &mut DbConn, user_id: i64) -> QueryResult<Option<i32>> {
    with_conn!(conn, |c| c.transaction(|c| diesel::update(
        users::table
            .filter(users::id.eq(user_id))
            .filter(users::available_treats.gt(0))
    )
    .set(users::available_treats.eq(users::available_treats - 1))
    .returning(users::available_treats)
    .get_result(c)
    .optional()))
}

/// Adds the refunded treat, never above `max`; returns the count stored, or `None` if the user
/// is gone. Never refused: when a top-up ran between paying and refunding, the user already
/// holds `max`, exactly what they would hold had the treat never been spent (the top-up would
/// have found them full), so the count stays at `max` and that is what the user is told.
/// Refusing instead left the session showing the count from before the top-up.
pub fn refund_treat(conn: &mut DbConn, user_id: i64, max: u32) -> QueryResult<Option<i32>> {
    let max = stored_count(max);
    with_conn!(conn, |c| c.transaction(|c| diesel::update(
        users::table.filter(users::id.eq(user_id))
    )
    .set(
        users::available_treats.eq(case_when(
            users::available_treats.lt(max),
            users::available_treats + 1,
        )
        .otherwise(users::available_treats))
    )
    .returning(users::available_treats)
    .get_result(c)
    .optional()))
}
