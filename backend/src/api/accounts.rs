//! `/api/users`, `/api/session`, `/api/me`: signing up, logging in and out, who am I.

use super::auth::{clear_cookie, client_ip, session_cookie, session_token, CurrentUser};
use crate::error::AppError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use livepet_shared::wire::{Credentials, UserBody};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/users",
        web::post().to(|s, r, b| enter(s, r, b, Entry::SignUp)),
    )
    .route(
        "/session",
        web::post().to(|s, r, b| enter(s, r, b, Entry::LogIn)),
    )
    .route("/session", web::delete().to(log_out))
    .route("/me", web::get().to(me));
}

/// The two ways in with an email and a password.
#[derive(Clone, Copy)]
enum Entry {
    /// `POST /api/users`: a new account (201).
    SignUp,
    /// `POST /api/session`: an existing one (200).
    LogIn,
}

/// Signs up or logs in, counted against the client's attempts; answers with the user and
/// the new session's cookie.
async fn enter(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Credentials>,
    entry: Entry,
) -> Result<HttpResponse, AppError> {
    state.services.accounts.check_attempt(client_ip(&req))?;
    let Credentials { email, password } = body.into_inner();
    let (status, session) = match entry {
        Entry::SignUp => (
            StatusCode::CREATED,
            state.services.sign_up(&email, password).await?,
        ),
        Entry::LogIn => (
            StatusCode::OK,
            state.services.log_in(&email, password).await?,
        ),
    };
    Ok(HttpResponse::build(status)
        .cookie(session_cookie(&state, &req, session.token))
        .json(UserBody { user: session.user }))
}

async fn log_out(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    if let Some(token) = session_token(&req) {
        state.services.log_out(&token).await?;
    }
    Ok(HttpResponse::NoContent().cookie(clear_cookie()).finish())
}

async fn me(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, AppError> {
    let user = state.services.user(user.id).await?;
    Ok(HttpResponse::Ok().json(UserBody { user }))
}
