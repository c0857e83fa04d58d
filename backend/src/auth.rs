//! Accounts and sessions: argon2id password hashes, random session tokens stored only as
//! SHA-256 hashes, the session cookie, the `CurrentUser` extractor, and the per-IP limiter
//! for login and registration.

use crate::clock::now_ms;
use crate::db::queries;
use crate::error::AppError;
use crate::startup::AppState;
use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use governor::{DefaultKeyedRateLimiter, Quota};
use livepet_shared::UserId;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::time::Duration;

pub const COOKIE: &str = "livepet_session";

/// Password and email limits (the form and the API agree on these).
pub const PASSWORD_MIN: usize = 12;
pub const PASSWORD_MAX: usize = 72;
pub const EMAIL_MAX: usize = 160;

/// argon2id with OWASP's recommended minimum: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    #[allow(clippy::expect_used)] // constant parameters that argon2 documents as valid
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password. Slow on purpose (~tens of ms): call it on the blocking pool.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AppError::Internal(format!("salt: {e}")))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("hashing: {e}")))
}

/// Checks a password against a stored hash. An unparsable hash (a seeded user without a
/// password) never matches, but still costs a full verification so timing reveals nothing.
pub fn verify_password(password: &str, stored: &str, dummy: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => hasher().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => {
            burn_verification(password, dummy);
            false
        }
    }
}

/// Spends the time of one verification against a hash no password matches, so an unknown
/// email takes as long as a wrong password.
pub fn burn_verification(password: &str, dummy: &str) {
    if let Ok(h) = PasswordHash::new(dummy) {
        let _ = hasher().verify_password(password.as_bytes(), &h);
    }
}

/// A new session token (32 random bytes, base64url) and the hash that is stored.
pub fn new_token() -> (String, String) {
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = token_hash(&token);
    (token, hash)
}

/// SHA-256 of a token, hex: the only form a token is stored in.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Normalises an email for storage and lookup: trimmed and lowercased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Validates registration input; field → message for every problem.
pub fn validate_registration(email: &str, password: &str) -> Result<(), AppError> {
    let mut fields = BTreeMap::new();
    let email = normalize_email(email);
    if email.is_empty() {
        fields.insert("email".into(), "enter your email address".into());
    } else if email.chars().count() > EMAIL_MAX {
        fields.insert("email".into(), format!("at most {EMAIL_MAX} characters"));
    } else if !email.contains('@') || email.contains(char::is_whitespace) {
        fields.insert(
            "email".into(),
            "enter an email address like name@example.com".into(),
        );
    }
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        fields.insert(
            "password".into(),
            format!("at least {PASSWORD_MIN} characters"),
        );
    } else if n > PASSWORD_MAX {
        fields.insert(
            "password".into(),
            format!("at most {PASSWORD_MAX} characters"),
        );
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(fields))
    }
}

/// Session and limiter settings, plus the precomputed dummy hash.
pub struct Auth {
    pub dummy_hash: String,
    pub session_ttl: Duration,
    pub secure_cookies: bool,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl Auth {
    pub fn new(
        attempts_per_minute: u32,
        session_ttl: Duration,
        secure_cookies: bool,
    ) -> Result<Auth, AppError> {
        let per_minute = NonZeroU32::new(attempts_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Auth {
            dummy_hash: hash_password("no password ever matches this one")?,
            session_ttl,
            secure_cookies,
            limiter: governor::RateLimiter::keyed(Quota::per_minute(per_minute)),
        })
    }

    /// Counts one login/registration attempt from this client; 429 past the limit.
    pub fn check_rate(&self, req: &HttpRequest) -> Result<(), AppError> {
        let Some(ip) = req.peer_addr().map(|a| a.ip()) else {
            return Ok(());
        };
        self.limiter.check_key(&ip).map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited(wait.as_secs().max(1))
        })
    }

    /// Drops limiter state for clients that have been quiet (bounded memory).
    pub fn forget_quiet_clients(&self) {
        self.limiter.retain_recent();
    }

    /// The session cookie for a new token.
    pub fn cookie(&self, req: &HttpRequest, token: String) -> Cookie<'static> {
        Cookie::build(COOKIE, token)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure_cookies || req.connection_info().scheme() == "https")
            .max_age(time::Duration::seconds(self.session_ttl.as_secs() as i64))
            .finish()
    }

    /// A cookie that clears the session cookie.
    pub fn clear_cookie(&self) -> Cookie<'static> {
        let mut c = Cookie::build(COOKIE, "")
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .finish();
        c.make_removal();
        c
    }
}

/// The logged-in user of a request; extracting it answers 401 when there is none.
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser {
    pub id: UserId,
}

/// Looks a session token up; `None` when unknown or expired.
pub async fn user_for_token(state: &AppState, token: &str) -> Result<Option<UserId>, AppError> {
    let hash = token_hash(token);
    let pool = state.pool.clone();
    let found = web::block(move || -> Result<Option<i64>, AppError> {
        let mut conn = pool.get()?;
        Ok(queries::find_session_user(&mut conn, &hash, now_ms())?)
    })
    .await??;
    Ok(found.map(UserId))
}

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = req.cookie(COOKIE).map(|c| c.value().to_string());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(AppError::Unauthorized("log in first"));
            };
            match user_for_token(&state, &token).await? {
                Some(id) => Ok(CurrentUser { id }),
                None => Err(AppError::Unauthorized(
                    "your session has ended; log in again",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let dummy = hash_password("dummy dummy dummy").unwrap();
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &a, &dummy));
        assert!(!verify_password("wrong horse battery", &a, &dummy));
        assert!(!verify_password("anything at all", "!", &dummy));
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (t1, h1) = new_token();
        let (t2, _) = new_token();
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 43, "32 bytes in unpadded base64url");
        assert_eq!(h1, token_hash(&t1));
        assert_eq!(h1.len(), 64);
        assert_ne!(h1, t1);
    }

    #[test]
    fn registration_rules() {
        assert!(validate_registration("a@b.c", "twelve chars").is_ok());
        let Err(AppError::Validation(f)) = validate_registration("nope", "short") else {
            panic!("expected validation errors")
        };
        assert!(f.contains_key("email") && f.contains_key("password"));
        assert!(validate_registration("a b@c.d", "twelve chars").is_err());
        assert!(
            validate_registration(&format!("{}@x.y", "a".repeat(160)), "twelve chars").is_err()
        );
        assert!(validate_registration("a@b.c", &"p".repeat(73)).is_err());
        assert!(validate_registration("a@b.c", &"p".repeat(72)).is_ok());
    }
}
