DROP TABLE shard_leases;
DROP TABLE cluster_nodes;
