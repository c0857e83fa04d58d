//! The one error type at the HTTP edge, and how each kind maps to a status and JSON body.
//!
//! Policy: handlers return `AppError`; every variant has a stable snake_case code from
//! `livepet_shared::wire::ErrorCode`. Internal failures are logged here with their cause and
//! shown to the client only as a generic message. A database that cannot be reached is a 503,
//! not a 500, so clients know to retry.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use livepet_shared::wire::{ApiError, ApiErrorDetail, ErrorCode};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug)]
pub enum AppError {
    /// Field-by-field validation failures (422).
    Validation(BTreeMap<String, String>),
    Unauthorized(&'static str),
    NotFound(&'static str),
    EmailTaken,
    BadRequest(String),
    InvalidJson(String),
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Too many attempts; retry after this many seconds.
    RateLimited(u64),
    /// The database is unreachable or failing; retry later.
    Unavailable(String),
    Internal(String),
}

impl AppError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Validation(_) => ErrorCode::ValidationFailed,
            AppError::Unauthorized(_) => ErrorCode::Unauthorized,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::EmailTaken => ErrorCode::EmailTaken,
            AppError::BadRequest(_) => ErrorCode::BadRequest,
            AppError::InvalidJson(_) => ErrorCode::InvalidJson,
            AppError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            AppError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            AppError::RateLimited(_) => ErrorCode::RateLimited,
            AppError::Unavailable(_) => ErrorCode::ServiceUnavailable,
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }

    fn message(&self) -> String {
        match self {
            AppError::Validation(_) => "some fields are not valid".into(),
            AppError::Unauthorized(m) | AppError::NotFound(m) => (*m).into(),
            AppError::EmailTaken => "an account with this email already exists".into(),
            AppError::BadRequest(m) | AppError::InvalidJson(m) => m.clone(),
            AppError::PayloadTooLarge => "the request body is too large".into(),
            AppError::UnsupportedMediaType => {
                "send JSON with Content-Type: application/json".into()
            }
            AppError::RateLimited(s) => format!("too many attempts; try again in {s} s"),
            AppError::Unavailable(_) => "the database is unavailable; try again shortly".into(),
            AppError::Internal(_) => "something went wrong on our side".into(),
        }
    }

    /// The JSON body for this error.
    pub fn body(&self) -> ApiError {
        ApiError {
            error: ApiErrorDetail {
                code: self.code(),
                message: self.message(),
                fields: match self {
                    AppError::Validation(f) => Some(f.clone()),
                    _ => None,
                },
            },
        }
    }

    /// One field's validation failure.
    pub fn field(name: &str, message: &str) -> AppError {
        AppError::Validation(BTreeMap::from([(name.to_string(), message.to_string())]))
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code().as_str(), self.message())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::EmailTaken => StatusCode::CONFLICT,
            AppError::BadRequest(_) | AppError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AppError::Internal(cause) => log::error!("internal error: {cause}"),
            AppError::Unavailable(cause) => log::warn!("database unavailable: {cause}"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        if let AppError::RateLimited(secs) = self {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.json(self.body())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                AppError::Unavailable(info.message().to_string())
            }
            Error::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if is_unavailable(info.message()) =>
            {
                AppError::Unavailable(info.message().to_string())
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// Both drivers report a lost server, a locked or read-only file only through the message.
fn is_unavailable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "locked",
        "readonly",
        "read-only",
        "busy",
        "connection",
        "terminating",
        "server closed",
        "shutting down",
        "starting up",
        "no such host",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

impl From<r2d2::Error> for AppError {
    fn from(e: r2d2::Error) -> Self {
        AppError::Unavailable(e.to_string())
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        AppError::Internal(e.to_string())
    }
}

impl From<actix::MailboxError> for AppError {
    fn from(e: actix::MailboxError) -> Self {
        AppError::Internal(format!("actor unavailable: {e}"))
    }
}

/// Maps actix-web's JSON extractor failures to our error shape (400/413/415, never HTML).
pub fn json_error(err: actix_web::error::JsonPayloadError) -> AppError {
    use actix_web::error::JsonPayloadError as J;
    match err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => AppError::PayloadTooLarge,
        J::ContentType => AppError::UnsupportedMediaType,
        J::Deserialize(e) if e.is_data() => AppError::BadRequest(format!("invalid body: {e}")),
        J::Deserialize(e) => AppError::InvalidJson(format!("the body is not valid JSON: {e}")),
        other => AppError::BadRequest(other.to_string()),
    }
}
