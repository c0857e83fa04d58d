//! Sessions at the HTTP edge: the session cookie, the client address for attempt limits,
//! and the `CurrentUser` extractor (401 when there is no live session).

use crate::error::AppError;
use crate::services::accounts::COOKIE;
use crate::state::AppState;
use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use livepet_shared::UserId;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// The session cookie for a new token: HttpOnly, SameSite=Lax, Secure over https or when
/// configured, living as long as the session.
pub fn session_cookie(state: &AppState, req: &HttpRequest, token: String) -> Cookie<'static> {
    let ttl = state.services.accounts.session_ttl;
    Cookie::build(COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.secure_cookies || req.connection_info().scheme() == "https")
        .max_age(time::Duration::seconds(ttl.as_secs() as i64))
        .finish()
}

/// A cookie that clears the session cookie.
pub fn clear_cookie() -> Cookie<'static> {
    let mut c = Cookie::build(COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    c.make_removal();
    c
}

/// The session token a request carries, if any.
pub fn session_token(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE).map(|c| c.value().to_string())
}

/// The address attempts are counted against.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

/// The logged-in user of a request; extracting it answers 401 when there is none.
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser {
    pub id: UserId,
}

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = session_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(AppError::Unauthorized("log in first"));
            };
            match state.services.session_user(&token).await? {
                Some(id) => Ok(CurrentUser { id }),
                None => Err(AppError::Unauthorized(
                    "your session has ended; log in again",
                )),
            }
        })
    }
}
