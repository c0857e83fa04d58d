//! Pets as their owners see them: adopting one, listing one's pets, looking one up, and
//! explaining why a pet that is not alive here cannot be watched or fed. A pet whose stored
//! row is damaged is shown as damaged (what could be read, and what is wrong), never as a
//! failed list.

use super::canonical::canonical_pet_name;
use super::Services;
use crate::actors::pet::Get;
use crate::clock::now_ms;
use crate::cluster::messages::Request;
use crate::cluster::remote::RemoteError;
use crate::cluster::Cluster;
use crate::db::models::{NewPetRow, PetRow, StoredPetRow};
use crate::db::queries;
use crate::error::AppError;
use crate::world::{DirtyPets, PetRecord};
use livepet_shared::rules::{pet_name_problem, NameProblem, PET_NAME_MAX, PET_NAME_MIN};
use livepet_shared::wire::{NewPet, PetListEntry, PetView, PETS_PAGE};
use livepet_shared::{PetId, PetState, Species, UserId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A pet on another node that cannot be reached right now (its shard is moving, or its node
/// just failed and the others are taking over).
pub fn unavailable() -> AppError {
    AppError::PetMoving
}

/// Most pets one page of the list shows (newest first).
const LIST_LIMIT: i64 = PETS_PAGE as i64;
/// What every owner-only path says about someone else's pet and about a missing one, over
/// HTTP and over the WebSocket (watch, feed): the same code and message, so ids reveal
/// nothing about which pets exist.
pub const NO_SUCH_PET: AppError = AppError::NotFound("no such pet");

/// Validates a new pet; every problem by field. Returns the name as stored (NFC, trimmed:
/// see [`canonical_pet_name`]) and the species.
pub fn validate_new_pet(p: &NewPet) -> Result<(String, Species), AppError> {
    let mut fields = BTreeMap::new();
    let name = canonical_pet_name(&p.name);
    let problem = pet_name_problem(&name).map(|problem| match problem {
        NameProblem::TooShort(_) => format!("at least {PET_NAME_MIN} characters"),
        NameProblem::TooLong(_) => format!("at most {PET_NAME_MAX} characters"),
        NameProblem::ControlCharacter => "no control characters".into(),
        NameProblem::FormatCharacter => {
            "no invisible formatting characters (zero-width, right-to-left override, \
             byte-order mark)"
                .into()
        }
        NameProblem::Invisible => "the name must have something visible in it".into(),
    });
    if let Some(problem) = problem {
        fields.insert("name".into(), problem);
    }
    let species = Species::parse(&p.species);
    if species.is_none() {
        fields.insert("species".into(), "choose one of the species".into());
    }
    match species {
        Some(s) if fields.is_empty() => Ok((name, s)),
        _ => Err(AppError::Validation(fields)),
    }
}

impl Services {
    /// Refuses a write once the SQLite file the world was loaded from is gone (deleted or
    /// replaced): whatever is written then is lost, so the honest answer is 503. Call it on
    /// the blocking pool, just before the write.
    pub(crate) fn check_database_file(dirty: &DirtyPets) -> Result<(), AppError> {
        dirty.file.check().map_err(AppError::Unavailable)
    }

    /// Adopts a pet: stores it (committed before anything else happens), starts its actor,
    /// and answers with the running actor's view, so it is ticking before the owner hears of
    /// it. A failed write starts nothing.
    pub async fn adopt(&self, owner: UserId, new: &NewPet) -> Result<PetView, AppError> {
        let (name, species) = validate_new_pet(new)?;
        self.limits.check_adoption(owner)?;
        let newborn = PetState::newborn(&self.world.rules);
        let max_live = i64::from(self.limits.settings.pets);
        let row = {
            let name = name.clone();
            let dirty = self.world.dirty.clone();
            self.db(move |c| {
                Services::check_database_file(&dirty)?;
                let now = now_ms();
                Ok(queries::insert_pet_within(
                    c,
                    &NewPetRow {
                        user_id: owner.0,
                        name: &name,
                        species: species.as_str(),
                        age: newborn.age as i32,
                        hunger: newborn.hunger as i32,
                        is_alive: true,
                        created_at: now,
                        updated_at: now,
                    },
                    max_live,
                )?)
            })
            .await?
        };
        let Some(row) = row else {
            return Err(self.limits.too_many_pets());
        };
        if let Some(cluster) = self.remote(PetId(row.id)) {
            // Its shard is another node's: that node starts it, from the committed row.
            return match cluster
                .request(&Request::Start { pet: PetId(row.id) })
                .await
            {
                Ok(view) => Ok(view),
                Err(e) => {
                    log::error!(
                        "pet {} was adopted but its node could not start it ({e:?}); it starts \
                         when its shard is next taken",
                        row.id
                    );
                    Err(unavailable())
                }
            };
        }
        let pet = self
            .world
            .try_start_pet(PetRecord {
                id: PetId(row.id),
                owner,
                name: name.into_boxed_str(),
                species,
                born_at: row.created_at,
                state: newborn,
            })
            .map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(pet.send(Get).await?)
    }

    /// The owner's pets, newest first, each with its live state when it is alive here. A pet
    /// whose stored row is damaged is listed as such (and logged), not a failed list.
    pub async fn pets_of(
        &self,
        owner: UserId,
        before: Option<i64>,
    ) -> Result<Vec<PetListEntry>, AppError> {
        let before = before.unwrap_or(i64::MAX);
        let rows = self
            .db(move |c| {
                Ok(queries::stored_pets_of_user(
                    c, owner.0, before, LIST_LIMIT,
                )?)
            })
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for stored in rows {
            entries.push(self.entry(stored).await);
        }
        Ok(entries)
    }

    /// One of the owner's pets; someone else's pet and a missing one are both not found.
    pub async fn pet_of(&self, owner: UserId, id: PetId) -> Result<PetListEntry, AppError> {
        // A live pet answers from memory (its node's, in cluster mode).
        if let Some(view) = self.live_pet(id).await? {
            return if view.owner_id == owner {
                Ok(PetListEntry {
                    pet: view,
                    damaged: None,
                })
            } else {
                Err(NO_SUCH_PET)
            };
        }
        match self.stored_pet(id).await? {
            Some(stored) if stored.user_id == Some(owner.0) => Ok(self.entry(stored).await),
            _ => Err(NO_SUCH_PET),
        }
    }

    /// Why the user cannot act on a pet that is not alive in this process, or, when they
    /// only want to look (`acting` false) at their own dead pet, its stored view. Someone
    /// else's pet, dead or stored, is [`NO_SUCH_PET`], exactly like a missing one.
    pub async fn pet_not_live(
        &self,
        user: UserId,
        id: PetId,
        acting: bool,
    ) -> Result<PetView, AppError> {
        match self.stored_pet(id).await? {
            Some(row) if row.user_id == Some(user.0) => {
                let row = PetRow::try_from(row)?;
                if acting {
                    Err(AppError::PetDead)
                } else {
                    Ok(PetView::try_from(&row)?)
                }
            }
            _ => Err(NO_SUCH_PET),
        }
    }

    async fn stored_pet(&self, id: PetId) -> Result<Option<StoredPetRow>, AppError> {
        self.db(move |c| Ok(queries::find_stored_pet(c, id)?)).await
    }

    /// The list entry of a stored pet: its freshest view (the live actor's state when it is
    /// alive here), or, when its row is damaged, what could be read and what is wrong.
    async fn entry(&self, stored: StoredPetRow) -> PetListEntry {
        let damaged_view = stored.damaged_view();
        let checked = PetRow::try_from(stored).and_then(|row| {
            let view = PetView::try_from(&row)?;
            Ok((row.is_alive, view))
        });
        match checked {
            Ok((alive, view)) => PetListEntry {
                pet: self.live_view(alive, view).await,
                damaged: None,
            },
            Err(e) => {
                log::error!("{e}; pet {} is listed as damaged", e.id);
                PetListEntry {
                    pet: damaged_view,
                    damaged: Some(e.problem),
                }
            }
        }
    }

    /// The live actor's view of a stored pet that is alive (here, or on its node in cluster
    /// mode); the stored view otherwise.
    async fn live_view(&self, alive: bool, stored: PetView) -> PetView {
        if alive {
            if let Ok(Some(view)) = self.live_pet(stored.id).await {
                return view;
            }
        }
        stored
    }

    /// The cluster, when the pet's shard belongs to another node; `None` on a single node
    /// and for this node's own pets.
    pub fn remote(&self, id: PetId) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref().filter(|c| !c.fence.holds(id))
    }

    /// A live pet's state now, from its actor here or from its node; `None` if it is not
    /// alive (dead, or no such pet). 503 when its node cannot be reached.
    pub async fn live_pet(&self, id: PetId) -> Result<Option<PetView>, AppError> {
        if let Some(cluster) = self.remote(id) {
            return match cluster.request(&Request::Get { pet: id }).await {
                Ok(view) => Ok(Some(view)),
                Err(RemoteError::Unavailable) => Err(unavailable()),
                Err(_) => Ok(None),
            };
        }
        match self.world.registry.get(id) {
            Some(pet) => Ok(pet.send(Get).await.ok()),
            None => Ok(None),
        }
    }
}
