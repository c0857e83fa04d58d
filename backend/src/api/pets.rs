//! `/api/species` and `/api/pets`: the species list, my pets, adopting one, one pet.

use super::auth::CurrentUser;
use crate::error::AppError;
use crate::services::pets::NO_SUCH_PET;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use livepet_shared::wire::{NewPet, SpeciesInfo};
use livepet_shared::{PetId, Species};
use serde::Deserialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/species", web::get().to(species))
        .route("/pets", web::get().to(list_pets))
        .route("/pets", web::post().to(adopt))
        .route("/pets/{id}", web::get().to(get_pet));
}

async fn species() -> HttpResponse {
    let list: Vec<SpeciesInfo> = Species::ALL
        .into_iter()
        .map(|s| SpeciesInfo {
            id: s,
            label: s.label().into(),
            emoji: s.emoji().into(),
        })
        .collect();
    HttpResponse::Ok().json(list)
}

/// `?before={id}`: the page of pets older than that one.
#[derive(Debug, Deserialize)]
struct Page {
    before: Option<i64>,
}

/// `GET /api/pets[?before={id}]`: up to `PETS_PAGE` (500) of my pets, newest first; a full page
/// means there may be more, asked for with `?before=` the last id.
async fn list_pets(
    state: web::Data<AppState>,
    user: CurrentUser,
    page: web::Query<Page>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(state.services.pets_of(user.id, page.before).await?))
}

async fn adopt(
    state: web::Data<AppState>,
    user: CurrentUser,
    body: web::Json<NewPet>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Created().json(state.services.adopt(user.id, &body).await?))
}

async fn get_pet(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    // A malformed id is as unknown as a missing one.
    let Ok(id) = path.parse::<i64>() else {
        return Err(NO_SUCH_PET);
    };
    Ok(HttpResponse::Ok().json(state.services.pet_of(user.id, PetId(id)).await?))
}
