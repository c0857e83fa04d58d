//! The cluster's statements (PostgreSQL only): membership in `cluster_nodes`, shard leases in
//! `shard_leases`. Every time is PostgreSQL's clock in milliseconds since the Unix epoch, so
//! nodes whose clocks disagree still agree on who holds what.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text};

/// PostgreSQL's clock, in milliseconds since the Unix epoch (the time of the statement, not of
/// its transaction's start).
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::int8";

#[derive(Debug, QueryableByName)]
struct NodeName {
    #[diesel(sql_type = Text)]
    node: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Lease {
    #[diesel(sql_type = BigInt)]
    pub shard: i64,
    #[diesel(sql_type = BigInt)]
    pub epoch: i64,
}

#[derive(Debug, QueryableByName)]
struct Age {
    #[diesel(sql_type = BigInt)]
    ms: i64,
}

/// Records that `node` (serving on `addr`) is alive, and returns the nodes alive now: those
/// whose last heartbeat is younger than `ttl_ms` and that have not left, sorted by name.
pub fn heartbeat(
    c: &mut PgConnection,
    node: &str,
    addr: &str,
    ttl_ms: i64,
) -> QueryResult<Vec<String>> {
    c.transaction(|c| {
        diesel::sql_query(format!(
            "INSERT INTO cluster_nodes (node, addr, heartbeat_at, status) \
             VALUES ($1, $2, {NOW_MS}, 'up') \
             ON CONFLICT (node) DO UPDATE SET addr = excluded.addr, \
             heartbeat_at = excluded.heartbeat_at, status = 'up'"
        ))
        .bind::<Text, _>(node)
        .bind::<Text, _>(addr)
        .execute(c)?;
        alive(c, ttl_ms)
    })
}

/// The nodes alive now (see [`heartbeat`]), sorted by name.
pub fn alive(c: &mut PgConnection, ttl_ms: i64) -> QueryResult<Vec<String>> {
    let rows: Vec<NodeName> = diesel::sql_query(format!(
        "SELECT node FROM cluster_nodes WHERE status = 'up' AND heartbeat_at > {NOW_MS} - $1 \
         ORDER BY node"
    ))
    .bind::<BigInt, _>(ttl_ms)
    .load(c)?;
    Ok(rows.into_iter().map(|r| r.node).collect())
}

/// How long ago (ms) a node of this name that has not left last sent a heartbeat, if one did.
pub fn last_heartbeat_of(c: &mut PgConnection, node: &str) -> QueryResult<Option<i64>> {
    let rows: Vec<Age> = diesel::sql_query(format!(
        "SELECT {NOW_MS} - heartbeat_at AS ms FROM cluster_nodes \
         WHERE node = $1 AND status = 'up'"
    ))
    .bind::<Text, _>(node)
    .load(c)?;
    Ok(rows.first().map(|a| a.ms))
}

/// Marks the node as gone, so the others stop counting it at once instead of after its
/// heartbeat grows old.
pub fn leave(c: &mut PgConnection, node: &str) -> QueryResult<usize> {
    diesel::sql_query("UPDATE cluster_nodes SET status = 'left' WHERE node = $1")
        .bind::<Text, _>(node)
        .execute(c)
}

/// Extends every unexpired lease `node` holds by `ttl_ms`; returns the leases it still holds.
/// A lease missing from the answer (or at another epoch) is no longer this node's.
pub fn renew(c: &mut PgConnection, node: &str, ttl_ms: i64) -> QueryResult<Vec<Lease>> {
    diesel::sql_query(format!(
        "UPDATE shard_leases SET expires_at = {NOW_MS} + $2 \
         WHERE node = $1 AND expires_at > {NOW_MS} RETURNING shard, epoch"
    ))
    .bind::<Text, _>(node)
    .bind::<BigInt, _>(ttl_ms)
    .load(c)
}

/// Takes the leases of those `shards` that are free (never taken, released, or expired), each
/// at the next epoch; returns the ones taken. A shard another node holds is left alone.
pub fn acquire(
    c: &mut PgConnection,
    node: &str,
    shards: &[i64],
    ttl_ms: i64,
) -> QueryResult<Vec<Lease>> {
    if shards.is_empty() {
        return Ok(Vec::new());
    }
    diesel::sql_query(format!(
        "INSERT INTO shard_leases (shard, node, epoch, expires_at) \
         SELECT s, $2, 1, {NOW_MS} + $3 FROM UNNEST($1::int8[]) AS s \
         ON CONFLICT (shard) DO UPDATE SET node = excluded.node, \
         epoch = shard_leases.epoch + 1, expires_at = excluded.expires_at \
         WHERE shard_leases.expires_at <= {NOW_MS} \
         RETURNING shard, epoch"
    ))
    .bind::<Array<BigInt>, _>(shards.to_vec())
    .bind::<Text, _>(node)
    .bind::<BigInt, _>(ttl_ms)
    .load(c)
}

/// Gives the leases back (after their pets were stopped and written): free at once for the
/// next owner. Only leases `node` still holds at these epochs are touched.
pub fn release(c: &mut PgConnection, node: &str, leases: &[Lease]) -> QueryResult<usize> {
    if leases.is_empty() {
        return Ok(0);
    }
    let shards: Vec<i64> = leases.iter().map(|l| l.shard).collect();
    let epochs: Vec<i64> = leases.iter().map(|l| l.epoch).collect();
    diesel::sql_query(
        "UPDATE shard_leases SET expires_at = 0 FROM UNNEST($1::int8[], $2::int8[]) AS v(s, e) \
         WHERE shard_leases.shard = v.s AND shard_leases.epoch = v.e AND shard_leases.node = $3",
    )
    .bind::<Array<BigInt>, _>(shards)
    .bind::<Array<BigInt>, _>(epochs)
    .bind::<Text, _>(node)
    .execute(c)
}
