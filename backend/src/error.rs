//! The one error type of LivePet's operations, and how each kind maps to a status and JSON
//! body at the HTTP edge (the WebSocket edge turns it into an `error` frame with the same
//! code: `ws::protocol::FrameError`).
//!
//! Policy: services and handlers return `AppError`; every variant has a stable snake_case
//! code from `livepet_shared::wire::ErrorCode`. Internal failures are logged here with their
//! cause and shown to the client only as a generic message. A database that cannot be
//! reached is a 503, not a 500, so clients know to retry.

use crate::db::models::RowError;
use crate::db::DbError;
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
    /// Known, but not allowed for this user or from this origin.
    Forbidden(&'static str),
    NotFound(&'static str),
    EmailTaken,
    /// A reset or confirmation link that is unknown, used or expired.
    InvalidToken,
    /// The pet has died; it can no longer be fed.
    PetDead,
    /// The pet is on nobody's screen (or left it), so it cannot get a treat.
    NotActive(&'static str),
    /// Treats are for other people's pets.
    OwnPet,
    /// The user has no treats left until the next top-up.
    NoTreats,
    BadRequest(String),
    InvalidJson(String),
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Too many attempts; retry after this many seconds.
    RateLimited(u64),
    /// A per-user limit that the request would pass (422): live pets.
    LimitReached(String),
    /// A per-user limit on open things (429, no retry time: closing one frees a place):
    /// WebSockets.
    TooManyOpen(String),
    /// The database is unreachable or failing; retry later.
    Unavailable(String),
    /// `--max-connections` are already open (503, retry after this many seconds).
    AtCapacity(u64),
    /// Cluster mode: the node owning the pet did not answer (its shard is moving, or its node
    /// just failed and another is taking over); 503, retry in a few seconds.
    PetMoving,
    Internal(String),
}

impl AppError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Validation(_) => ErrorCode::ValidationFailed,
            AppError::Unauthorized(_) => ErrorCode::Unauthorized,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::EmailTaken => ErrorCode::EmailTaken,
            AppError::InvalidToken => ErrorCode::InvalidToken,
            AppError::PetDead => ErrorCode::PetDead,
            AppError::NotActive(_) => ErrorCode::NotActive,
            AppError::OwnPet => ErrorCode::OwnPet,
            AppError::NoTreats => ErrorCode::NoTreats,
            AppError::BadRequest(_) => ErrorCode::BadRequest,
            AppError::InvalidJson(_) => ErrorCode::InvalidJson,
            AppError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            AppError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            AppError::RateLimited(_) => ErrorCode::RateLimited,
            AppError::LimitReached(_) | AppError::TooManyOpen(_) => ErrorCode::LimitReached,
            AppError::Unavailable(_) | AppError::AtCapacity(_) | AppError::PetMoving => {
                ErrorCode::ServiceUnavailable
            }
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        match self {
            AppError::Validation(_) => "some fields are not valid".into(),
            AppError::Unauthorized(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::NotActive(m) => (*m).into(),
            AppError::EmailTaken => "an account with this email already exists".into(),
            AppError::InvalidToken => {
                "this link is invalid, already used or expired; ask for a new one".into()
            }
            AppError::PetDead => "this pet has died".into(),
            AppError::OwnPet => "treats are for other people's pets".into(),
            AppError::NoTreats => "you have no treats left".into(),
            AppError::BadRequest(m) | AppError::InvalidJson(m) => m.clone(),
            AppError::PayloadTooLarge => "the request body is too large".into(),
            AppError::UnsupportedMediaType => {
                "send JSON with Content-Type: application/json".into()
            }
            AppError::RateLimited(s) => format!("too many attempts; try again in {s} s"),
            AppError::LimitReached(m) | AppError::TooManyOpen(m) => m.clone(),
            AppError::Unavailable(_) => "the database is unavailable; try again shortly".into(),
            AppError::AtCapacity(s) => {
                format!("the server is at its connection limit; try again in {s} s")
            }
            AppError::PetMoving => {
                "that pet is moving between servers; try again in a few seconds".into()
            }
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

    /// Logs what the client is not told: the cause of internal and database failures.
    /// Called once, where the error leaves the server (HTTP response or WebSocket frame).
    pub fn log_cause(&self) {
        match self {
            AppError::Internal(cause) => log::error!("internal error: {cause}"),
            AppError::Unavailable(cause) => log::warn!("database unavailable: {cause}"),
            _ => {}
        }
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
            AppError::Forbidden(_) | AppError::OwnPet => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::EmailTaken
            | AppError::PetDead
            | AppError::NotActive(_)
            | AppError::NoTreats => StatusCode::CONFLICT,
            AppError::BadRequest(_) | AppError::InvalidJson(_) | AppError::InvalidToken => {
                StatusCode::BAD_REQUEST
            }
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::RateLimited(_) | AppError::TooManyOpen(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::LimitReached(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unavailable(_) | AppError::AtCapacity(_) | AppError::PetMoving => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log_cause();
        let mut res = HttpResponse::build(self.status_code());
        if let AppError::RateLimited(secs) | AppError::AtCapacity(secs) = self {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.json(self.body())
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            // A COMMIT that failed, and the rollback after it too: what the user must hear
            // about is why the commit failed (often a full disk).
            Error::RollbackErrorOnCommit { commit_error, .. } => AppError::from(*commit_error),
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                info,
            ) => AppError::Unavailable(info.message().to_string()),
            Error::DatabaseError(DatabaseErrorKind::Unknown, ref info) => {
                match unavailable_cause(info.message()) {
                    Some(cause) => AppError::Unavailable(format!("{cause}: {}", info.message())),
                    None => AppError::Internal(e.to_string()),
                }
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// Why a database error means "try again later", if it does. Both drivers report a full
/// disk, an I/O error, a lost server or a locked or read-only file only through the message
/// (diesel classifies none of them).
fn unavailable_cause(message: &str) -> Option<&'static str> {
    let m = message.to_ascii_lowercase();
    let is = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if is(&[
        "disk is full",
        "no space left",
        "could not extend",
        "disk quota",
    ]) {
        Some("the disk is full")
    } else if is(&[
        "disk i/o error",
        "input/output error",
        "could not write",
        "could not read",
        "could not fsync",
        "could not open file",
    ]) {
        Some("an I/O error")
    } else if is(&["readonly", "read-only"]) {
        Some("the database is read-only")
    } else if is(&["locked", "busy"]) {
        Some("the database is locked")
    } else if is(&[
        "connection",
        "terminating",
        "server closed",
        "shutting down",
        "starting up",
        "no such host",
    ]) {
        Some("the database server is unreachable")
    } else {
        None
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Pool(e) => AppError::Unavailable(e.to_string()),
            DbError::Busy => AppError::Unavailable(e.to_string()),
            DbError::Task(e) => AppError::Internal(e),
        }
    }
}

impl From<RowError> for AppError {
    fn from(e: RowError) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody as _;
    use serde_json::{json, Value};

    /// Status, Retry-After and exact JSON body of an error as a client receives it.
    fn sent(e: AppError) -> (u16, Option<String>, Value) {
        let res = e.error_response();
        let status = res.status().as_u16();
        let retry = res
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = res.into_body().try_into_bytes().unwrap();
        (status, retry, serde_json::from_slice(&bytes).unwrap())
    }

    fn body(code: &str, message: &str) -> Value {
        json!({"error": {"code": code, "message": message}})
    }

    #[test]
    fn every_variant_has_its_exact_status_and_json() {
        let fields = BTreeMap::from([("name".to_string(), "at least 3 characters".to_string())]);
        let cases: Vec<(AppError, u16, Value)> = vec![
            (
                AppError::Validation(fields),
                422,
                json!({"error": {"code": "validation_failed", "message": "some fields are not valid",
                                 "fields": {"name": "at least 3 characters"}}}),
            ),
            (
                AppError::Unauthorized("log in first"),
                401,
                body("unauthorized", "log in first"),
            ),
            (
                AppError::Forbidden("not from here"),
                403,
                body("forbidden", "not from here"),
            ),
            (
                AppError::NotFound("no such pet"),
                404,
                body("not_found", "no such pet"),
            ),
            (
                AppError::EmailTaken,
                409,
                body("email_taken", "an account with this email already exists"),
            ),
            (
                AppError::LimitReached("at most 2 live pets".into()),
                422,
                body("limit_reached", "at most 2 live pets"),
            ),
            (
                AppError::TooManyOpen("at most 2 sockets".into()),
                429,
                body("limit_reached", "at most 2 sockets"),
            ),
            (
                AppError::InvalidToken,
                400,
                body(
                    "invalid_token",
                    "this link is invalid, already used or expired; ask for a new one",
                ),
            ),
            (
                AppError::PetDead,
                409,
                body("pet_dead", "this pet has died"),
            ),
            (AppError::NotActive("gone"), 409, body("not_active", "gone")),
            (
                AppError::OwnPet,
                403,
                body("own_pet", "treats are for other people's pets"),
            ),
            (
                AppError::NoTreats,
                409,
                body("no_treats", "you have no treats left"),
            ),
            (
                AppError::BadRequest("bad".into()),
                400,
                body("bad_request", "bad"),
            ),
            (
                AppError::InvalidJson("not JSON".into()),
                400,
                body("invalid_json", "not JSON"),
            ),
            (
                AppError::PayloadTooLarge,
                413,
                body("payload_too_large", "the request body is too large"),
            ),
            (
                AppError::UnsupportedMediaType,
                415,
                body(
                    "unsupported_media_type",
                    "send JSON with Content-Type: application/json",
                ),
            ),
            (
                AppError::Unavailable("connection refused".into()),
                503,
                body(
                    "service_unavailable",
                    "the database is unavailable; try again shortly",
                ),
            ),
            (
                AppError::Internal("secret cause".into()),
                500,
                body("internal", "something went wrong on our side"),
            ),
        ];
        for (error, status, json) in cases {
            let what = format!("{error:?}");
            let (got_status, retry, got) = sent(error);
            assert_eq!(got_status, status, "{what}");
            assert_eq!(got, json, "{what}");
            assert_eq!(retry, None, "{what}");
        }
        let (status, retry, got) = sent(AppError::RateLimited(7));
        assert_eq!(status, 429);
        assert_eq!(retry.as_deref(), Some("7"));
        assert_eq!(
            got,
            body("rate_limited", "too many attempts; try again in 7 s")
        );
    }

    #[test]
    fn database_failures_are_503_or_500_by_cause() {
        use diesel::result::{DatabaseErrorKind, Error};
        let locked = Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_string()),
        );
        assert_eq!(AppError::from(locked).code(), ErrorCode::ServiceUnavailable);
        let unknown =
            |m: &str| Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new(m.to_string()));
        // SQLite's and PostgreSQL's words for a full disk and for I/O errors: 503, and the
        // log says which it was.
        for (message, cause) in [
            ("database or disk is full", "the disk is full"),
            (
                "could not extend file \"base/16384/16397\": No space left on device",
                "the disk is full",
            ),
            // PostgreSQL's words when the disk had part of a page left.
            (
                "could not extend file \"base/16384/16397\": wrote only 4096 of 8192 bytes at block 7",
                "the disk is full",
            ),
            ("disk I/O error", "an I/O error"),
            (
                "could not write to file \"pg_wal/xlogtemp.123\": Input/output error",
                "an I/O error",
            ),
            (
                "attempt to write a readonly database",
                "the database is read-only",
            ),
        ] {
            match AppError::from(unknown(message)) {
                AppError::Unavailable(logged) => {
                    assert_eq!(logged, format!("{cause}: {message}"))
                }
                other => panic!("{message}: {other:?}"),
            }
        }
        // A COMMIT that failed, whose rollback failed too, is judged by the commit.
        let commit = Error::RollbackErrorOnCommit {
            rollback_error: Box::new(Error::BrokenTransactionManager),
            commit_error: Box::new(unknown("database or disk is full")),
        };
        assert_eq!(AppError::from(commit).code(), ErrorCode::ServiceUnavailable);
        let constraint = Error::DatabaseError(
            DatabaseErrorKind::ForeignKeyViolation,
            Box::new("FOREIGN KEY constraint failed".to_string()),
        );
        assert_eq!(AppError::from(constraint).code(), ErrorCode::Internal);
        assert_eq!(AppError::from(Error::NotFound).code(), ErrorCode::Internal);
        let damaged = RowError::species(3, "dragon");
        assert_eq!(AppError::from(damaged).code(), ErrorCode::Internal);
        assert_eq!(
            AppError::from(DbError::Task("cancelled".into())).code(),
            ErrorCode::Internal
        );
    }
}
