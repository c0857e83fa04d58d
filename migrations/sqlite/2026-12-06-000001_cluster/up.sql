-- The cluster tables exist here only so both databases have one schema (db/schema.rs); a
-- cluster runs on PostgreSQL, and a single node on SQLite never writes them.
CREATE TABLE cluster_nodes (
    node TEXT PRIMARY KEY NOT NULL,
    addr TEXT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    status TEXT NOT NULL
);

CREATE TABLE shard_leases (
    shard INTEGER PRIMARY KEY NOT NULL,
    node TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
