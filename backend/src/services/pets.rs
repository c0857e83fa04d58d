//! Pets as their owners see them: adopting one, listing one's pets, looking one up, and
//! explaining why a pet that is not alive here cannot be watched or fed.

use super::Services;
use crate::actors::pet::Get;
use crate::clock::now_ms;
use crate::db::models::{NewPetRow, PetRow};
use crate::db::queries;
use crate::error::AppError;
use crate::world::PetRecord;
use livepet_shared::rules::{pet_name_problem, NameProblem, PET_NAME_MAX, PET_NAME_MIN};
use livepet_shared::wire::{NewPet, PetView};
use livepet_shared::{PetId, PetState, Species, UserId};
use std::collections::BTreeMap;

/// Most pets a list shows (newest first).
const LIST_LIMIT: i64 = 500;
/// What every lookup of someone else's or a missing pet says over HTTP: the same answer,
/// so ids reveal nothing.
const NO_SUCH_PET: AppError = AppError::NotFound("no such pet");

/// Validates a new pet; every problem by field. Returns the trimmed name and the species.
pub fn validate_new_pet(p: &NewPet) -> Result<(String, Species), AppError> {
    let mut fields = BTreeMap::new();
    match pet_name_problem(&p.name) {
        Some(NameProblem::TooShort(_)) => {
            fields.insert("name".into(), format!("at least {PET_NAME_MIN} characters"));
        }
        Some(NameProblem::TooLong(_)) => {
            fields.insert("name".into(), format!("at most {PET_NAME_MAX} characters"));
        }
        Some(NameProblem::ControlCharacter) => {
            fields.insert("name".into(), "no control characters".into());
        }
        None => {}
    }
    let species = Species::parse(&p.species);
    if species.is_none() {
        fields.insert("species".into(), "choose one of the species".into());
    }
    match species {
        Some(s) if fields.is_empty() => Ok((p.name.trim().to_string(), s)),
        _ => Err(AppError::Validation(fields)),
    }
}

impl Services {
    /// Adopts a pet: stores it, starts its actor, and answers with the running actor's view,
    /// so it is ticking before the owner hears of it.
    pub async fn adopt(&self, owner: UserId, new: &NewPet) -> Result<PetView, AppError> {
        let (name, species) = validate_new_pet(new)?;
        let newborn = PetState::newborn(&self.world.rules);
        let row = {
            let name = name.clone();
            self.db(move |c| {
                let now = now_ms();
                Ok(queries::insert_pet(
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
                )?)
            })
            .await?
        };
        let pet = self.world.start_pet(PetRecord {
            id: PetId(row.id),
            owner,
            name: name.into_boxed_str(),
            species,
            born_at: row.created_at,
            state: newborn,
        });
        Ok(pet.send(Get).await?)
    }

    /// The owner's pets, newest first, each with its live state when it is alive here.
    pub async fn pets_of(&self, owner: UserId) -> Result<Vec<PetView>, AppError> {
        let rows = self
            .db(move |c| Ok(queries::pets_of_user(c, owner.0, LIST_LIMIT)?))
            .await?;
        let mut views = Vec::with_capacity(rows.len());
        for row in &rows {
            views.push(self.current_view(row).await?);
        }
        Ok(views)
    }

    /// One of the owner's pets; someone else's pet and a missing one are both not found.
    pub async fn pet_of(&self, owner: UserId, id: PetId) -> Result<PetView, AppError> {
        // A live pet answers from memory.
        if let Some(pet) = self.world.registry.get(id) {
            if let Ok(view) = pet.send(Get).await {
                return if view.owner_id == owner {
                    Ok(view)
                } else {
                    Err(NO_SUCH_PET)
                };
            }
        }
        match self.stored_pet(id).await? {
            Some(row) if row.user_id == owner.0 => self.current_view(&row).await,
            _ => Err(NO_SUCH_PET),
        }
    }

    /// Why the user cannot act on a pet that is not alive in this process, or, when they
    /// only want to look (`acting` false) at their own dead pet, its stored view.
    pub async fn pet_not_live(
        &self,
        user: UserId,
        id: PetId,
        acting: bool,
    ) -> Result<PetView, AppError> {
        match self.stored_pet(id).await? {
            Some(row) if row.user_id != user.0 => {
                Err(AppError::Forbidden("this pet belongs to someone else"))
            }
            Some(_) if acting => Err(AppError::PetDead),
            Some(row) => Ok(PetView::try_from(&row)?),
            None => Err(AppError::NotFound("there is no such pet")),
        }
    }

    async fn stored_pet(&self, id: PetId) -> Result<Option<PetRow>, AppError> {
        self.db(move |c| Ok(queries::find_pet(c, id)?)).await
    }

    /// The freshest view of a stored pet: the live actor's state when it is alive here.
    async fn current_view(&self, row: &PetRow) -> Result<PetView, AppError> {
        if row.is_alive {
            if let Some(pet) = self.world.registry.get(PetId(row.id)) {
                if let Ok(view) = pet.send(Get).await {
                    return Ok(view);
                }
            }
        }
        Ok(PetView::try_from(row)?)
    }
}
