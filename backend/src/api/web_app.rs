//! The web app's static files, with `index.html` for the single-page app's own routes.

use crate::error::AppError;
use actix_files::{Files, NamedFile};
use actix_web::dev::{fn_service, ServiceRequest, ServiceResponse};
use actix_web::{web, HttpResponse};
use std::path::PathBuf;

/// Serves the built app from `static_dir`; without one, every other path says how to build it.
pub fn configure(cfg: &mut web::ServiceConfig, static_dir: Option<PathBuf>) {
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

async fn no_app() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound(
        "the web app is not built; run `cargo xtask run` or pass --static-dir",
    ))
}
