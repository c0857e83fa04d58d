//! Accounts and sessions: argon2id password hashes, random session tokens stored only as
//! SHA-256 hashes, sign-up, log-in and log-out, finding the user of a session, and the
//! per-client limit on log-in and sign-up attempts.

use super::Services;
use crate::clock::now_ms;
use crate::db::models::{NewUserRow, UserRow};
use crate::db::queries;
use crate::error::AppError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use diesel::Connection as _;
use governor::{DefaultKeyedRateLimiter, Quota};
use livepet_shared::wire::User;
use livepet_shared::UserId;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// The cookie that carries a session token.
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
fn burn_verification(password: &str, dummy: &str) {
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

/// Account settings, the precomputed dummy hash, and the attempt limiter.
pub struct Accounts {
    /// A hash no password matches: unknown emails are verified against it.
    dummy_hash: String,
    pub session_ttl: Duration,
    max_treats: u32,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

/// A user who has just signed up or logged in, with their new session token (sent to the
/// browser once, stored only as its hash).
pub struct NewSession {
    pub user: User,
    pub token: String,
}

impl Accounts {
    /// Hashes the dummy password: slow, call it on a blocking thread.
    pub fn new(
        attempts_per_minute: u32,
        session_ttl: Duration,
        max_treats: u32,
    ) -> Result<Accounts, AppError> {
        let per_minute = NonZeroU32::new(attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        Ok(Accounts {
            dummy_hash: hash_password("no password ever matches this one")?,
            session_ttl,
            max_treats,
            limiter: governor::RateLimiter::keyed(Quota::per_minute(per_minute)),
        })
    }

    /// Counts one log-in or sign-up attempt from this client; `RateLimited` past the limit.
    pub fn check_attempt(&self, client: Option<IpAddr>) -> Result<(), AppError> {
        let Some(ip) = client else {
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
}

impl Services {
    /// Creates an account and its first session, both in one transaction: a sign-up that
    /// cannot be committed (a full disk) leaves neither behind and answers 503.
    pub async fn sign_up(&self, email: &str, password: String) -> Result<NewSession, AppError> {
        validate_registration(email, &password)?;
        let email = normalize_email(email);
        let max_treats = self.accounts.max_treats as i32;
        let (token, hash) = new_token();
        let ttl = self.session_ttl_ms();
        let dirty = self.world.dirty.clone();
        let row = self
            .db(move |c| {
                let password_hash = hash_password(&password)?;
                Services::check_database_file(&dirty)?;
                c.transaction(|c| {
                    let now = now_ms();
                    let new = NewUserRow {
                        email: &email,
                        password_hash: &password_hash,
                        available_treats: max_treats,
                        created_at: now,
                    };
                    let user = match queries::insert_user(c, &new) {
                        Ok(u) => u,
                        Err(diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::UniqueViolation,
                            _,
                        )) => return Err(AppError::EmailTaken),
                        Err(e) => return Err(e.into()),
                    };
                    queries::insert_session(c, &hash, user.id, now, now.saturating_add(ttl))?;
                    Ok(user)
                })
            })
            .await?;
        log::info!("new account {}", row.id);
        Ok(NewSession {
            user: User::try_from(&row)?,
            token,
        })
    }

    fn session_ttl_ms(&self) -> i64 {
        i64::try_from(self.accounts.session_ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Checks credentials and starts a session. An unknown email and a wrong password run the
    /// very same verification and give the same answer, so neither the status nor the timing
    /// tells which it was.
    pub async fn log_in(&self, email: &str, password: String) -> Result<NewSession, AppError> {
        let email = normalize_email(email);
        let dummy = self.accounts.dummy_hash.clone();
        let user = self
            .db(move |c| {
                let found = queries::find_user_by_email(c, &email)?;
                let stored = found
                    .as_ref()
                    .map_or(dummy.as_str(), |u| u.password_hash.as_str());
                let ok = verify_password(&password, stored, &dummy);
                Ok(found.filter(|_| ok))
            })
            .await?;
        match user {
            Some(row) => self.start_session(row).await,
            None => Err(AppError::Unauthorized("wrong email or password")),
        }
    }

    async fn start_session(&self, row: UserRow) -> Result<NewSession, AppError> {
        let user = User::try_from(&row)?;
        let (token, hash) = new_token();
        let now = now_ms();
        let expires = now.saturating_add(self.session_ttl_ms());
        let dirty = self.world.dirty.clone();
        self.db(move |c| {
            Services::check_database_file(&dirty)?;
            Ok(queries::insert_session(c, &hash, row.id, now, expires)?)
        })
        .await?;
        Ok(NewSession { user, token })
    }

    /// Revokes the session of this token (nothing happens for an unknown one).
    pub async fn log_out(&self, token: &str) -> Result<(), AppError> {
        let hash = token_hash(token);
        let dirty = self.world.dirty.clone();
        self.db(move |c| {
            Services::check_database_file(&dirty)?;
            Ok(queries::delete_session(c, &hash)?)
        })
        .await?;
        Ok(())
    }

    /// The user of an unexpired session; `None` when the token is unknown or expired.
    pub async fn session_user(&self, token: &str) -> Result<Option<UserId>, AppError> {
        let hash = token_hash(token);
        let found = self
            .db(move |c| Ok(queries::find_session_user(c, &hash, now_ms())?))
            .await?;
        Ok(found.map(UserId))
    }

    /// The user as the API shows it.
    pub async fn user(&self, id: UserId) -> Result<User, AppError> {
        let row = self.db(move |c| Ok(queries::find_user(c, id.0)?)).await?;
        match row {
            Some(u) => Ok(User::try_from(&u)?),
            None => Err(AppError::Unauthorized("this account no longer exists")),
        }
    }

    /// Deletes expired sessions; returns how many.
    pub async fn purge_expired_sessions(&self) -> Result<usize, AppError> {
        self.db(|c| Ok(queries::purge_expired_sessions(c, now_ms())?))
            .await
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
