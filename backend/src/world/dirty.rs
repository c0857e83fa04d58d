//! DirtyPets: what the persister must write — which pets changed since the last flush and
//! the newest state of each, the deaths waiting to be durable before anyone is told — and
//! [`DbFile`], whether the SQLite file it writes to is still the one the world was loaded
//! from.

use super::cell::{PetCell, Snapshot};
use crate::actors::pet::DeathDurable;
use actix::Recipient;
use livepet_shared::{PetId, PetState};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A pet's death waiting to be durable: its final state, and its actor, which shows the
/// death to its viewers only once told it is written.
pub struct PendingDeath {
    pub snapshot: Snapshot,
    pub actor: Recipient<DeathDurable>,
}

/// The deaths no write has made durable yet, and whether a courier is already carrying
/// them to the persister (see `actors::persister::carry_deaths`).
#[derive(Default)]
struct Deaths {
    pending: Vec<PendingDeath>,
    courier: bool,
}

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
    deaths: Mutex<Deaths>,
    /// The pets are stopping: the final flush is coming and writes every pet, so a flush
    /// under way may leave the rest to it.
    stopping: AtomicBool,
    /// Snapshots a flush cut short by the stop left to the next one (see [`Self::leave`]).
    left: Mutex<Vec<Snapshot>>,
    /// The SQLite file every write must land in.
    pub file: DbFile,
}

impl DirtyPets {
    pub fn new(shards: usize) -> Self {
        DirtyPets {
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            restored: Mutex::default(),
            deaths: Mutex::default(),
            stopping: AtomicBool::new(false),
            left: Mutex::default(),
            file: DbFile::default(),
        }
    }

    fn deaths(&self) -> std::sync::MutexGuard<'_, Deaths> {
        // A poisoned lock only means a thread panicked mid-push; the list is still valid.
        self.deaths.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a death to be written before it is shown. Returns true when no courier is
    /// carrying deaths to the persister: the caller starts one (it alone, so one courier
    /// serves any number of deaths).
    pub fn add_death(&self, death: PendingDeath) -> bool {
        let mut deaths = self.deaths();
        deaths.pending.push(death);
        !std::mem::replace(&mut deaths.courier, true)
    }

    /// Takes every death waiting to be written.
    pub fn take_deaths(&self) -> Vec<PendingDeath> {
        std::mem::take(&mut self.deaths().pending)
    }

    /// Puts back deaths a failed write could not make durable; the next write retries them.
    pub fn return_deaths(&self, mut back: Vec<PendingDeath>) {
        if back.is_empty() {
            return;
        }
        let mut deaths = self.deaths();
        back.append(&mut deaths.pending);
        deaths.pending = back;
    }

    /// Called by the courier when a write succeeded: it may stop once nothing waits (under
    /// the same lock as [`add_death`](Self::add_death), so no death is left without one).
    pub fn courier_may_stop(&self) -> bool {
        let mut deaths = self.deaths();
        if deaths.pending.is_empty() {
            deaths.courier = false;
            true
        } else {
            false
        }
    }

    /// The courier stopped without finishing (the persister is gone): the next death starts
    /// a new one.
    pub fn courier_stopped(&self) {
        self.deaths().courier = false;
    }

    /// Deaths not yet durable (so not yet shown).
    pub fn deaths_pending(&self) -> usize {
        self.deaths().pending.len()
    }

    fn shard(&self, id: PetId) -> &Mutex<Vec<Arc<PetCell>>> {
        &self.shards[id.0.rem_euclid(self.shards.len() as i64) as usize]
    }

    /// The pets are stopping and the final flush is coming (see `stopping`).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Leaves snapshots a flush did not get to (it was cut short by the stop) to the next
    /// one, which writes them unless it has a fresher state of the same pet.
    pub fn leave(&self, mut snaps: Vec<Snapshot>) {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        if left.is_empty() {
            *left = snaps;
        } else {
            left.append(&mut snaps);
        }
    }

    /// Takes what an earlier flush left (see [`Self::leave`]).
    pub fn take_left(&self) -> Vec<Snapshot> {
        std::mem::take(&mut *self.left.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Makes room for about `pets` more listed pets (loading: every pet changes on its first
    /// tick), so the lists do not regrow and copy themselves on the way.
    pub fn reserve(&self, pets: usize) {
        let each = pets.div_ceil(self.shards.len());
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reserve(each);
        }
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

    /// Pets waiting for the next flush (a pet with a newer listed state and a restored or
    /// left older one counts twice: this is for metrics and logs).
    pub fn len(&self) -> usize {
        let listed: usize = self
            .shards
            .iter()
            .map(|s| s.lock().map(|v| v.len()).unwrap_or(0))
            .sum();
        listed
            + self.restored.lock().map(|m| m.len()).unwrap_or(0)
            + self.left.lock().map(|v| v.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The identity (device and inode) of the SQLite file the world was loaded from, and whether
/// it is still the file at that path. A file deleted or replaced while the server runs would
/// otherwise take every later write with it silently: writes go on into the unlinked file,
/// and the next start finds nothing (or someone else's data). Once lost, it stays lost:
/// writing into whatever file now has that name would be no better.
#[derive(Default)]
pub struct DbFile {
    known: OnceLock<(PathBuf, FileId)>,
    lost: OnceLock<String>,
}

/// Device and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

fn file_id(path: &Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path)?;
    Ok(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

impl DbFile {
    /// Remembers the file at `path` as the one every write must land in (the first call
    /// wins). Not called for PostgreSQL, where there is no file to watch.
    pub fn record(&self, path: &Path) -> std::io::Result<()> {
        let id = file_id(path)?;
        let _ = self.known.set((path.to_path_buf(), id));
        Ok(())
    }

    /// Whether the file at the recorded path is still the recorded file; `Err` says what
    /// happened to it. The first call that finds it gone logs it, loudly, once.
    pub fn check(&self) -> Result<(), String> {
        if let Some(why) = self.lost.get() {
            return Err(why.clone());
        }
        let Some((path, was)) = self.known.get() else {
            return Ok(());
        };
        let why = match file_id(path) {
            Ok(now) if now == *was => return Ok(()),
            Ok(now) => format!(
                "the database file {} was replaced while the server ran (it was device {} \
                 inode {}, it is now device {} inode {})",
                path.display(),
                was.dev,
                was.ino,
                now.dev,
                now.ino
            ),
            Err(e) => format!(
                "the database file {} was deleted or moved while the server ran ({e})",
                path.display()
            ),
        };
        if self.lost.set(why.clone()).is_ok() {
            log::error!(
                "{why}: nothing more can be saved and writes are refused; pet states since \
                 the last flush are lost unless the file is put back before a restart"
            );
        }
        Err(why)
    }

    /// Why the file is lost, if it is.
    pub fn lost(&self) -> Option<&str> {
        self.lost.get().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_or_replaced_file_is_lost_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        std::fs::write(&path, b"one").unwrap();
        let file = DbFile::default();
        assert_eq!(file.check(), Ok(()), "nothing recorded: nothing to check");
        file.record(&path).unwrap();
        assert_eq!(file.check(), Ok(()));
        std::fs::write(&path, b"rewritten in place").unwrap();
        assert_eq!(file.check(), Ok(()), "the same file, written to");

        std::fs::remove_file(&path).unwrap();
        let why = file.check().unwrap_err();
        assert!(why.contains("deleted or moved"), "{why}");
        // A new file under the old name does not bring it back.
        std::fs::write(&path, b"another").unwrap();
        assert_eq!(file.check().unwrap_err(), why);
        assert_eq!(file.lost(), Some(why.as_str()));
    }

    #[test]
    fn a_file_replaced_under_its_name_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let (path, other) = (dir.path().join("x.db"), dir.path().join("other.db"));
        std::fs::write(&path, b"one").unwrap();
        std::fs::write(&other, b"two").unwrap();
        let file = DbFile::default();
        file.record(&path).unwrap();
        std::fs::rename(&other, &path).unwrap();
        let why = file.check().unwrap_err();
        assert!(why.contains("was replaced"), "{why}");
    }
}
