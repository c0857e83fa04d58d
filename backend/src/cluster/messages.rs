//! What nodes say to each other over NATS: requests to the node owning a pet (and its
//! answers), and the events every node hears. JSON, like the browser's frames, so a
//! `nats sub 'livepet.>'` shows an operator what is going on.

use crate::actors::pet::PetError;
use livepet_shared::wire::{ActivePet, PetView};
use livepet_shared::{PetId, UserId};
use serde::{Deserialize, Serialize};

/// Requests to a pet go to the subject of its shard, which only its owner subscribes to.
pub fn shard_subject(shard: usize) -> String {
    format!("livepet.shard.{shard}")
}

/// A watched pet's frames are published here by its owner, for the nodes whose sessions
/// watch it.
pub fn pet_subject(pet: PetId) -> String {
    format!("livepet.pet.{}", pet.0)
}

/// Membership, presence, treats and revocations: every node hears every event.
pub const EVENTS: &str = "livepet.events";

/// A request to the node that owns a pet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Get {
        pet: PetId,
    },
    Feed {
        pet: PetId,
        by: UserId,
    },
    Treat {
        pet: PetId,
        by: UserId,
    },
    /// Publish the pet's frames for `node` (its owner is watching it from there).
    Watch {
        pet: PetId,
        by: UserId,
        node: String,
    },
    /// `node` no longer watches the pet.
    Unwatch {
        pet: PetId,
        node: String,
    },
    /// A pet was just adopted through another node: load it and start it.
    Start {
        pet: PetId,
    },
}

impl Request {
    pub fn pet(&self) -> PetId {
        match self {
            Request::Get { pet }
            | Request::Feed { pet, .. }
            | Request::Treat { pet, .. }
            | Request::Watch { pet, .. }
            | Request::Unwatch { pet, .. }
            | Request::Start { pet } => *pet,
        }
    }

    /// The operation's name in metrics.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Get { .. } => "get",
            Request::Feed { .. } => "feed",
            Request::Treat { .. } => "treat",
            Request::Watch { .. } => "watch",
            Request::Unwatch { .. } => "unwatch",
            Request::Start { .. } => "start",
        }
    }
}

/// The owner's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    Ok {
        pet: PetView,
    },
    /// The pet is not alive on the node that owns its shard (dead, or no such pet).
    NotLive,
    /// The pet said no.
    Refused {
        why: Refusal,
    },
}

/// [`PetError`] as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    NotOwner,
    Dead,
    OwnPet,
}

impl From<PetError> for Refusal {
    fn from(e: PetError) -> Self {
        match e {
            PetError::NotOwner => Refusal::NotOwner,
            PetError::Dead => Refusal::Dead,
            PetError::OwnPet => Refusal::OwnPet,
        }
    }
}

impl From<Refusal> for PetError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotOwner => PetError::NotOwner,
            Refusal::Dead => PetError::Dead,
            Refusal::OwnPet => PetError::OwnPet,
        }
    }
}

/// Something every node hears of.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A node started: the others tell it which pets their sessions show.
    Hello {
        node: String,
    },
    /// A node is leaving (SIGTERM): forget what its sessions showed.
    Gone {
        node: String,
    },
    /// A session on `node` shows this pet (the first one there).
    Joined {
        node: String,
        pet: ActivePet,
    },
    /// No session on `node` shows the pet any more.
    Left {
        node: String,
        pet: PetId,
    },
    Treats {
        node: String,
        user: UserId,
        available: u32,
    },
    TreatsRefreshed {
        node: String,
        available: u32,
    },
    /// Sessions of a user ended (logout, password change, deletion): close their sockets.
    Revoked {
        node: String,
        user: UserId,
        revocation: serde_json::Value,
    },
    /// `node` took these shards and started their pets: watches of them are renewed there.
    Acquired {
        node: String,
        shards: Vec<usize>,
    },
    /// `node` let these shards go: whoever should own them may take them now.
    Released {
        node: String,
        shards: Vec<usize>,
    },
}

impl Event {
    pub fn node(&self) -> &str {
        match self {
            Event::Hello { node }
            | Event::Gone { node }
            | Event::Joined { node, .. }
            | Event::Left { node, .. }
            | Event::Treats { node, .. }
            | Event::TreatsRefreshed { node, .. }
            | Event::Revoked { node, .. }
            | Event::Acquired { node, .. }
            | Event::Released { node, .. } => node,
        }
    }
}
