//! HTTP routes: health, metrics, and the web app's static files with an SPA fallback.

use crate::startup::AppState;
use actix_files::{Files, NamedFile};
use actix_web::dev::{fn_service, ServiceRequest, ServiceResponse};
use actix_web::{web, HttpResponse};
use livepet_shared::wire::{ApiError, ApiErrorDetail, ErrorCode};
use std::path::PathBuf;

/// Largest JSON body the API accepts.
const MAX_BODY: usize = 16 * 1024;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig, static_dir: Option<PathBuf>) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics))
        .route("/ws", web::get().to(crate::ws::upgrade))
        .service(
            web::scope("/api")
                .app_data(
                    web::JsonConfig::default()
                        .limit(MAX_BODY)
                        .error_handler(|err, _| crate::error::json_error(err).into()),
                )
                .app_data(
                    web::PathConfig::default().error_handler(|_, _| {
                        crate::error::AppError::NotFound("no such pet").into()
                    }),
                )
                .configure(crate::api::configure)
                .default_service(web::to(api_not_found)),
        );
    match static_dir {
        Some(dir) => {
            let index = dir.join("index.html");
            cfg.service(
                Files::new("/", dir)
                    .index_file("index.html")
                    .default_handler(fn_service(move |req: ServiceRequest| {
                        let index = index.clone();
                        async move {
                            // App routes like /pets/12 are the SPA's: hand it index.html.
                            let (req, _) = req.into_parts();
                            let file = NamedFile::open_async(&index).await?;
                            let res = file.into_response(&req);
                            Ok(ServiceResponse::new(req, res))
                        }
                    })),
            );
        }
        None => {
            cfg.default_service(web::to(no_app));
        }
    }
}

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "pets_alive": state.world.metrics.pets_alive.get(),
    }))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.world.metrics.render())
}

/// The JSON error body every API failure uses.
pub fn error_body(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError {
        error: ApiErrorDetail {
            code,
            message: message.into(),
            fields: None,
        },
    }
}

async fn api_not_found() -> HttpResponse {
    HttpResponse::NotFound().json(error_body(ErrorCode::NotFound, "no such API endpoint"))
}

async fn no_app() -> HttpResponse {
    HttpResponse::NotFound().json(error_body(
        ErrorCode::NotFound,
        "the web app is not built; run `cargo xtask run` or pass --static-dir",
    ))
}
