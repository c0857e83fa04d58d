//! The HTTP edge: every route the server answers — the JSON API under `/api` (by resource:
//! accounts and pets), the WebSocket upgrade, health and metrics, and the web app's files.

pub mod accounts;
pub mod auth;
pub mod body_deadline;
pub mod connections;
pub mod headers;
pub mod ops;
pub mod pets;
pub mod web_app;

use crate::error::{json_error, AppError};
use actix_web::{web, HttpResponse};
use std::path::PathBuf;

/// Largest JSON body the API accepts.
const MAX_BODY: usize = 16 * 1024;

/// Registers every route; `static_dir` is the built web app, if there is one; `metrics`
/// says whether /metrics is served here (it is not when `--metrics-bind` gives it an
/// address of its own, see [`configure_metrics`]).
pub fn configure(cfg: &mut web::ServiceConfig, static_dir: Option<PathBuf>, metrics: bool) {
    if metrics {
        cfg.route("/metrics", web::get().to(ops::metrics));
    }
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/ws", web::get().to(crate::ws::upgrade::upgrade))
        .service(
            web::scope("/api")
                .app_data(
                    web::JsonConfig::default()
                        .limit(MAX_BODY)
                        .error_handler(|err, _| json_error(err).into()),
                )
                .app_data(web::QueryConfig::default().error_handler(|err, _| {
                    AppError::BadRequest(format!("invalid query string: {err}")).into()
                }))
                .route(
                    headers::REPORT_PATH.trim_start_matches("/api"),
                    web::post().to(headers::report),
                )
                .configure(accounts::configure)
                .configure(pets::configure)
                .default_service(web::to(api_not_found)),
        );
    web_app::configure(cfg, static_dir);
}

/// The routes of the separate metrics address: /metrics, /healthz and /readyz only.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(ops::metrics))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz));
}

async fn api_not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound("no such API endpoint"))
}
