//! `/api/users`, `/api/session`, `/api/me`: signing up, logging in and out, who am I.

use super::auth::{clear_cookie, client_ip, session_cookie, session_token, CurrentUser};
use crate::error::AppError;
use crate::services::accounts::NewSession;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use livepet_shared::wire::{Credentials, UserBody};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::post().to(sign_up))
        .route("/session", web::post().to(log_in))
        .route("/session", web::delete().to(log_out))
        .route("/me", web::get().to(me));
}

/// The user and the cookie of a new session.
fn session_response(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    session: NewSession,
) -> HttpResponse {
    HttpResponse::build(status)
        .cookie(session_cookie(state, req, session.token))
        .json(UserBody { user: session.user })
}

async fn sign_up(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, AppError> {
    state.services.accounts.check_attempt(client_ip(&req))?;
    let Credentials { email, password } = body.into_inner();
    let session = state.services.sign_up(&email, password).await?;
    Ok(session_response(&state, &req, StatusCode::CREATED, session))
}

async fn log_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, AppError> {
    state.services.accounts.check_attempt(client_ip(&req))?;
    let Credentials { email, password } = body.into_inner();
    let session = state.services.log_in(&email, password).await?;
    Ok(session_response(&state, &req, StatusCode::OK, session))
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
