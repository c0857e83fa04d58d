//! Shards and the leases this process holds on them (cluster mode). A pet's shard is its id
//! mod [`SHARDS`]; the [`Fence`] keeps, for each shard, the epoch of the lease this node holds
//! (0: none). The persister writes a pet only under its shard's epoch, and the database
//! refuses the write unless that lease is still this node's at that epoch, so a node that lost
//! a shard (paused, cut off) cannot overwrite the new owner's pets.

use livepet_shared::PetId;
use std::sync::atomic::{AtomicI64, Ordering};

/// Shards pets fall into; every node must agree on it (it is part of the stored leases).
pub const SHARDS: usize = 1024;

/// The shard of a pet.
pub fn shard_of(id: PetId) -> usize {
    id.0.rem_euclid(SHARDS as i64) as usize
}

/// The epochs of the leases this node holds, by shard, and the node's name.
pub struct Fence {
    pub node: String,
    epochs: Vec<AtomicI64>,
}

impl Fence {
    pub fn new(node: String) -> Self {
        Fence {
            node,
            epochs: (0..SHARDS).map(|_| AtomicI64::new(0)).collect(),
        }
    }

    /// The epoch this node holds `shard` at; 0 when it does not hold it.
    pub fn epoch(&self, shard: usize) -> i64 {
        self.epochs
            .get(shard)
            .map_or(0, |e| e.load(Ordering::SeqCst))
    }

    pub fn set(&self, shard: usize, epoch: i64) {
        if let Some(e) = self.epochs.get(shard) {
            e.store(epoch, Ordering::SeqCst);
        }
    }

    /// Whether this node holds the shard of `id`.
    pub fn holds(&self, id: PetId) -> bool {
        self.epoch(shard_of(id)) != 0
    }

    /// How many shards this node holds.
    pub fn held(&self) -> usize {
        self.epochs
            .iter()
            .filter(|e| e.load(Ordering::SeqCst) != 0)
            .count()
    }
}
