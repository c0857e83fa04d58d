//! `/api/users`, `/api/session`, `/api/me`, `/api/password-reset`: signing up, logging in
//! and out, who am I, and the account settings (password, email, sessions, deletion).

use super::auth::{clear_cookie, client_ip, session_cookie, session_token, CurrentUser};
use crate::error::AppError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use livepet_shared::wire::{
    ChangeEmail, ChangePassword, Credentials, DeleteAccount, NewPassword, ResetRequest, UserBody,
};

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
    .route("/me", web::get().to(me))
    .route("/me", web::delete().to(delete_account))
    .route("/me/sessions", web::delete().to(log_out_everywhere))
    .route("/me/password", web::put().to(change_password))
    .route("/me/email", web::put().to(change_email))
    .route("/me/email/{token}", web::post().to(confirm_email))
    .route("/password-reset", web::post().to(request_reset))
    .route("/password-reset/{token}", web::post().to(reset_password));
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
    let Credentials {
        email,
        password,
        remember,
    } = body.into_inner();
    let (status, session) = match entry {
        Entry::SignUp => (
            StatusCode::CREATED,
            state.services.sign_up(&email, password, remember).await?,
        ),
        Entry::LogIn => (
            StatusCode::OK,
            state.services.log_in(&email, password, remember).await?,
        ),
    };
    Ok(HttpResponse::build(status)
        .cookie(session_cookie(&state, &session))
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

/// `DELETE /api/me/sessions`: log out everywhere, this browser included.
async fn log_out_everywhere(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    state.services.log_out_everywhere(user.id).await?;
    Ok(HttpResponse::NoContent().cookie(clear_cookie()).finish())
}

/// `PUT /api/me/password`: every other session ends; this one stays.
async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: CurrentUser,
    body: web::Json<ChangePassword>,
) -> Result<HttpResponse, AppError> {
    // A stolen session guessing the password is an attempt like a log-in.
    state.services.accounts.check_attempt(client_ip(&req))?;
    let ChangePassword {
        current_password,
        new_password,
    } = body.into_inner();
    state
        .services
        .change_password(user.id, &user.session, current_password, new_password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT /api/me/email`: a confirmation link goes to the new address (202).
async fn change_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: CurrentUser,
    body: web::Json<ChangeEmail>,
) -> Result<HttpResponse, AppError> {
    state.services.accounts.check_attempt(client_ip(&req))?;
    let ChangeEmail {
        current_password,
        email,
    } = body.into_inner();
    state
        .services
        .request_email_change(user.id, current_password, &email)
        .await?;
    Ok(HttpResponse::Accepted().finish())
}

/// `POST /api/me/email/{token}`: the link from the confirmation mail. Needs no session:
/// the token is the proof, and the mail may be opened on another device.
async fn confirm_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    state.services.accounts.check_attempt(client_ip(&req))?;
    state.services.confirm_email(&token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /api/me`: the account, its sessions and its pets.
async fn delete_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: CurrentUser,
    body: web::Json<DeleteAccount>,
) -> Result<HttpResponse, AppError> {
    state.services.accounts.check_attempt(client_ip(&req))?;
    state
        .services
        .delete_account(user.id, body.into_inner().password)
        .await?;
    Ok(HttpResponse::NoContent().cookie(clear_cookie()).finish())
}

/// `POST /api/password-reset`: 202 at once, whatever the address; the lookup and the mail
/// run afterwards, so neither the answer nor its timing tells whether it has an account.
async fn request_reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ResetRequest>,
) -> Result<HttpResponse, AppError> {
    state.services.accounts.check_attempt(client_ip(&req))?;
    let email = body.into_inner().email;
    let state = state.into_inner();
    actix_rt::spawn(async move {
        if let Err(e) = state.services.mail_reset_link(&email).await {
            e.log_cause();
            log::warn!("a password reset link could not be made: {e}");
        }
    });
    Ok(HttpResponse::Accepted().finish())
}

/// `POST /api/password-reset/{token}`: sets the new password; every session ends.
async fn reset_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    body: web::Json<NewPassword>,
) -> Result<HttpResponse, AppError> {
    state.services.accounts.check_attempt(client_ip(&req))?;
    state
        .services
        .reset_password(&token, body.into_inner().password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
