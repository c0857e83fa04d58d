//! `GET /ws`: checks the Origin (against cross-site WebSocket hijacking) and the session
//! cookie, then hands the connection to a `ViewerSession`.

use super::session::{ViewerSession, MAX_FRAME};
use crate::error::AppError;
use crate::services::accounts::COOKIE;
use crate::state::{AppState, EdgeSettings};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// Whether the request's Origin is this server itself (`--public-url`, else the Host it was
/// asked for; see `EdgeSettings::request_origin`) or explicitly allowed.
pub fn origin_allowed(req: &HttpRequest, settings: &EdgeSettings) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return false;
    };
    let (scheme, host) = settings.request_origin(req);
    let own = format!("{scheme}://{host}");
    origin.eq_ignore_ascii_case(&own)
        || settings
            .allowed_origins
            .iter()
            .any(|a| a.eq_ignore_ascii_case(origin))
}

pub async fn upgrade(
    state: web::Data<AppState>,
    req: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, AppError> {
    if !origin_allowed(&req, &state.settings) {
        let e = AppError::Forbidden("WebSocket connections must come from this site");
        state
            .metrics()
            .ws_errors_total
            .with_label_values(&[e.code().as_str()])
            .inc();
        return Err(e);
    }
    let Some(token) = req.cookie(COOKIE).map(|c| c.value().to_string()) else {
        return Err(AppError::Unauthorized("log in first"));
    };
    let Some(login) = state.services.session(&token).await? else {
        return Err(AppError::Unauthorized(
            "your session has ended; log in again",
        ));
    };
    let limits = &state.services.limits;
    if state.services.live.open_of(login.user) >= limits.settings.sockets as usize {
        return Err(limits.too_many_sockets());
    }
    let session = ViewerSession::new(login, state.clone());
    actix_web_actors::ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(MAX_FRAME)
        .start()
        .map_err(|e| AppError::BadRequest(format!("not a WebSocket upgrade: {e}")))
}
