//! DirtyPets: which pets changed since the last flush, and the newest state of each.

use super::cell::{PetCell, Snapshot};
use livepet_shared::{PetId, PetState};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Pets changed since the last flush. Each pet owns a [`PetCell`] with its newest state;
/// the first change after a flush puts the cell on its shard's list, later changes only
/// update the cell. A tick therefore costs two stores and one swap on the pet's own cell,
/// not a hash-map insert (which was a quarter of all tick CPU at a million pets). Shards
/// follow the arbiters, so pets on different threads never share a lock.
pub struct DirtyPets {
    shards: Vec<Mutex<Vec<Arc<PetCell>>>>,
    /// Snapshots a failed write handed back; written by the next flush unless the pet has
    /// a newer state by then. Only used after database failures.
    restored: Mutex<HashMap<PetId, Snapshot>>,
}

impl DirtyPets {
    pub fn new(shards: usize) -> Self {
        DirtyPets {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            restored: Mutex::default(),
        }
    }

    fn shard(&self, id: PetId) -> &Mutex<Vec<Arc<PetCell>>> {
        &self.shards[id.0.rem_euclid(self.shards.len() as i64) as usize]
    }

    /// Records a pet's new state in its cell, listing the cell if it is not listed yet.
    pub fn mark(&self, cell: &Arc<PetCell>, state: PetState, at: i64) {
        cell.store(state, at);
        // SeqCst pairs with take_all: either this swap sees the flag take_all cleared (and
        // lists the cell again), or take_all's read comes after the store above.
        if !cell.dirty.swap(true, Ordering::SeqCst) {
            // A poisoned lock only means another thread panicked mid-push; the list is
            // still a valid list, so keep going rather than lose every later change.
            self.shard(cell.id())
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cell.clone());
        }
    }

    /// Takes every dirty pet's newest state, leaving the set empty.
    pub fn take_all(&self) -> Vec<Snapshot> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let hint = shard.lock().map(|v| v.len()).unwrap_or(0);
            // Allocate the replacement outside the lock so ticks never wait on the allocator.
            let fresh = Vec::with_capacity(hint + hint / 8);
            let taken =
                std::mem::replace(&mut *shard.lock().unwrap_or_else(|e| e.into_inner()), fresh);
            out.reserve(taken.len());
            for cell in taken {
                // Unlist first, then read: a change after the read lists the cell again.
                cell.dirty.store(false, Ordering::SeqCst);
                out.push(cell.snapshot());
            }
        }
        let restored =
            std::mem::take(&mut *self.restored.lock().unwrap_or_else(|e| e.into_inner()));
        if !restored.is_empty() {
            let newer: HashSet<PetId> = out.iter().map(|s| s.id).collect();
            out.extend(restored.into_values().filter(|s| !newer.contains(&s.id)));
        }
        out
    }

    /// Puts back snapshots a failed flush could not write, unless the pet has moved on since.
    pub fn restore(&self, snaps: impl IntoIterator<Item = Snapshot>) {
        let mut restored = self.restored.lock().unwrap_or_else(|e| e.into_inner());
        for snap in snaps {
            match restored.entry(snap.id) {
                Entry::Occupied(mut e) if e.get().at <= snap.at => {
                    e.insert(snap);
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(e) => {
                    e.insert(snap);
                }
            }
        }
    }

    /// Pets waiting for the next flush (a pet with a newer listed state and a restored
    /// older one counts twice: this is for metrics and logs).
    pub fn len(&self) -> usize {
        let listed: usize = self
            .shards
            .iter()
            .map(|s| s.lock().map(|v| v.len()).unwrap_or(0))
            .sum();
        listed + self.restored.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
