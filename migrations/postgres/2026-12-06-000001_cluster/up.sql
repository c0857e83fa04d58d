-- Several nodes (livepet serve --nats-url): who is alive, and which node owns which shard of
-- pets (shard = pet id mod 1024). Times are milliseconds since the Unix epoch on PostgreSQL's
-- clock, so no node's clock decides who owns what. Unused by a single node.
CREATE TABLE cluster_nodes (
    node TEXT PRIMARY KEY NOT NULL,
    addr TEXT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    status TEXT NOT NULL
);

-- A lease is a row, not an advisory lock: it outlives the connection that took it, expires on
-- its own, and carries the epoch that fences the persister's writes.
CREATE TABLE shard_leases (
    shard BIGINT PRIMARY KEY NOT NULL,
    node TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- A node that takes over shards loads their live pets by shard: without this, every shard
-- taken would read the whole table.
CREATE INDEX pets_live_by_shard ON pets ((id % 1024)) WHERE is_alive;
