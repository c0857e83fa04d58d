//! The JSON API under /api: accounts, sessions, species and pets.

use crate::auth::{self, CurrentUser};
use crate::clock::now_ms;
use crate::db::models::{NewPetRow, NewUserRow, PetRow, UserRow};
use crate::db::queries;
use crate::error::AppError;
use crate::startup::AppState;
use crate::world::PetRecord;
use actix_web::{web, HttpRequest, HttpResponse};
use livepet_shared::wire::{Credentials, NewPet, PetView, SpeciesInfo, User, UserBody};
use livepet_shared::{PetId, PetState, Species, UserId};
use std::collections::BTreeMap;

/// Pet names: 3 to 100 characters after trimming.
pub const NAME_MIN: usize = 3;
pub const NAME_MAX: usize = 100;
/// Most pets `GET /api/pets` lists (newest first).
const LIST_LIMIT: i64 = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::post().to(register))
        .route("/session", web::post().to(login))
        .route("/session", web::delete().to(logout))
        .route("/me", web::get().to(me))
        .route("/species", web::get().to(species))
        .route("/pets", web::get().to(list_pets))
        .route("/pets", web::post().to(create_pet))
        .route("/pets/{id}", web::get().to(get_pet));
}

fn user_json(u: &UserRow) -> UserBody {
    UserBody {
        user: User {
            id: UserId(u.id),
            email: u.email.clone(),
            available_treats: u.available_treats.max(0) as u32,
        },
    }
}

/// Runs blocking database work on the blocking pool with a pooled connection.
async fn db<T, F>(state: &AppState, f: F) -> Result<T, AppError>
where
    T: Send + 'static,
    F: FnOnce(&mut crate::db::DbConn) -> Result<T, AppError> + Send + 'static,
{
    let pool = state.pool.clone();
    web::block(move || {
        let mut conn = pool.get()?;
        f(&mut conn)
    })
    .await?
}

/// Starts a session for `user` and answers with the user and the cookie.
async fn start_session(
    state: &AppState,
    req: &HttpRequest,
    user: UserRow,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, AppError> {
    let (token, hash) = auth::new_token();
    let now = now_ms();
    let expires = now + state.auth.session_ttl.as_millis() as i64;
    let uid = user.id;
    db(state, move |c| {
        Ok(queries::insert_session(c, &hash, uid, now, expires)?)
    })
    .await?;
    Ok(HttpResponse::build(status)
        .cookie(state.auth.cookie(req, token))
        .json(user_json(&user)))
}

async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, AppError> {
    state.auth.check_rate(&req)?;
    let Credentials { email, password } = body.into_inner();
    auth::validate_registration(&email, &password)?;
    let email = auth::normalize_email(&email);
    let max_treats = state.world.rules.max_treats as i32;
    let user = db(&state, move |c| {
        let hash = auth::hash_password(&password)?;
        match queries::insert_user(
            c,
            &NewUserRow {
                email: &email,
                password_hash: &hash,
                available_treats: max_treats,
                created_at: now_ms(),
            },
        ) {
            Ok(u) => Ok(u),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Err(AppError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    log::info!("new account {}", user.id);
    start_session(&state, &req, user, actix_web::http::StatusCode::CREATED).await
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, AppError> {
    state.auth.check_rate(&req)?;
    let Credentials { email, password } = body.into_inner();
    let email = auth::normalize_email(&email);
    let dummy = state.auth.dummy_hash.clone();
    let user = db(&state, move |c| {
        let found = queries::find_user_by_email(c, &email)?;
        // Unknown email and wrong password run the very same verification (against a hash
        // no password matches when there is no user) and give the same answer, so neither
        // the status nor the timing tells which it was.
        let stored = found
            .as_ref()
            .map_or(dummy.as_str(), |u| u.password_hash.as_str());
        let ok = auth::verify_password(&password, stored, &dummy);
        Ok(found.filter(|_| ok))
    })
    .await?;
    match user {
        Some(u) => start_session(&state, &req, u, actix_web::http::StatusCode::OK).await,
        None => Err(AppError::Unauthorized("wrong email or password")),
    }
}

async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    if let Some(cookie) = req.cookie(auth::COOKIE) {
        let hash = auth::token_hash(cookie.value());
        db(&state, move |c| Ok(queries::delete_session(c, &hash)?)).await?;
    }
    Ok(HttpResponse::NoContent()
        .cookie(state.auth.clear_cookie())
        .finish())
}

async fn me(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, AppError> {
    let row = db(&state, move |c| Ok(queries::find_user(c, user.id.0)?)).await?;
    match row {
        Some(u) => Ok(HttpResponse::Ok().json(user_json(&u))),
        None => Err(AppError::Unauthorized("this account no longer exists")),
    }
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

/// The view of a stored row (dead pets, or a list before live state is overlaid).
pub fn stored_view(row: &PetRow) -> Option<PetView> {
    Some(PetView {
        id: PetId(row.id),
        name: row.name.clone(),
        species: Species::parse(&row.species)?,
        age: row.age.max(0) as u32,
        hunger: row.hunger.max(0) as u32,
        alive: row.is_alive,
        born_at: row.created_at,
        owner_id: UserId(row.user_id),
        at: row.updated_at,
    })
}

/// The freshest view of a stored pet: the live actor's state when it is alive here.
async fn current_view(state: &AppState, row: &PetRow) -> Result<PetView, AppError> {
    if row.is_alive {
        if let Some(pet) = state.world.registry.get(PetId(row.id)) {
            if let Ok(view) = pet.send(crate::actors::pet::Get).await {
                return Ok(view);
            }
        }
    }
    stored_view(row).ok_or_else(|| AppError::Internal(format!("pet {} has a bad species", row.id)))
}

async fn list_pets(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    let rows = db(&state, move |c| {
        Ok(queries::pets_of_user(c, user.id.0, LIST_LIMIT)?)
    })
    .await?;
    let mut views = Vec::with_capacity(rows.len());
    for row in &rows {
        views.push(current_view(&state, row).await?);
    }
    Ok(HttpResponse::Ok().json(views))
}

/// Validates a new pet; every problem by field.
pub fn validate_new_pet(p: &NewPet) -> Result<(String, Species), AppError> {
    let mut fields = BTreeMap::new();
    let name = p.name.trim().to_string();
    let n = name.chars().count();
    if n < NAME_MIN {
        fields.insert("name".into(), format!("at least {NAME_MIN} characters"));
    } else if n > NAME_MAX {
        fields.insert("name".into(), format!("at most {NAME_MAX} characters"));
    } else if name.chars().any(char::is_control) {
        fields.insert("name".into(), "no control characters".into());
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

async fn create_pet(
    state: web::Data<AppState>,
    user: CurrentUser,
    body: web::Json<NewPet>,
) -> Result<HttpResponse, AppError> {
    let (name, species) = validate_new_pet(&body)?;
    let newborn = PetState::newborn(&state.world.rules);
    let row = {
        let name = name.clone();
        db(&state, move |c| {
            let now = now_ms();
            Ok(queries::insert_pet(
                c,
                &NewPetRow {
                    user_id: user.id.0,
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
    let pet = state.world.start_pet(PetRecord {
        id: PetId(row.id),
        owner: user.id,
        name: name.into_boxed_str(),
        species,
        born_at: row.created_at,
        state: newborn,
    });
    // The reply comes from the running actor, so it is ticking before we answer.
    let view = pet.send(crate::actors::pet::Get).await?;
    Ok(HttpResponse::Created().json(view))
}

async fn get_pet(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    const NOT_FOUND: AppError = AppError::NotFound("no such pet");
    let Ok(id) = path.parse::<i64>() else {
        return Err(NOT_FOUND);
    };
    // A live pet answers from memory; only its owner may see it.
    if let Some(pet) = state.world.registry.get(PetId(id)) {
        if let Ok(view) = pet.send(crate::actors::pet::Get).await {
            return if view.owner_id == user.id {
                Ok(HttpResponse::Ok().json(view))
            } else {
                Err(NOT_FOUND)
            };
        }
    }
    let row = db(&state, move |c| Ok(queries::find_pet(c, PetId(id))?)).await?;
    match row {
        Some(r) if r.user_id == user.id.0 => {
            Ok(HttpResponse::Ok().json(current_view(&state, &r).await?))
        }
        _ => Err(NOT_FOUND),
    }
}
