//! Accounts and sessions: argon2id password hashes, random tokens stored only as SHA-256
//! hashes, sign-up, log-in and log-out, password reset and change, email change, log out
//! everywhere, account deletion, finding the user of a session, and the per-client limit on
//! attempts. Every operation that ends sessions closes their sockets (see `sockets`).

use super::canonical::canonical_email;
use super::mail::Mail;
use super::sockets::Ending;
use super::Services;
use crate::actors::pet::Release;
use crate::clock::now_ms;
use crate::db::models::{NewUserRow, UserRow};
use crate::db::queries::{self, TokenPurpose};
use crate::db::DbConn;
use crate::error::AppError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use diesel::Connection as _;
use governor::{DefaultKeyedRateLimiter, Quota};
use livepet_shared::wire::User;
use livepet_shared::{PetId, UserId};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// The cookie that carries a session token.
pub const COOKIE: &str = "livepet_session";

pub use super::canonical::EMAIL_MAX;
/// Password and email limits (the password's are shared with the web app's forms).
pub use livepet_shared::rules::{PASSWORD_MAX, PASSWORD_MIN};

/// How long a password-reset link works.
pub const RESET_LINK_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a link confirming a new email address works.
pub const CONFIRM_LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

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

/// The user, if there is one and the password is theirs. No user costs the same one
/// verification (against `dummy`), so the timing does not tell the two apart.
fn password_matches(found: Option<UserRow>, password: &str, dummy: &str) -> Option<UserRow> {
    let stored = found.as_ref().map_or(dummy, |u| u.password_hash.as_str());
    let ok = verify_password(password, stored, dummy);
    found.filter(|_| ok)
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

/// Validates registration input, field → message for every problem; returns the email in
/// its canonical form (see `canonical`), the one that is stored.
pub fn validate_registration(email: &str, password: &str) -> Result<String, AppError> {
    let mut fields = BTreeMap::new();
    let email = canonical_email(email);
    if let Err(problem) = &email {
        fields.insert("email".into(), problem.message());
    }
    if let Some(problem) = password_problem(password) {
        fields.insert("password".into(), problem);
    }
    match email {
        Ok(email) if fields.is_empty() => Ok(email),
        _ => Err(AppError::Validation(fields)),
    }
}

/// One field's problem as a validation error.
fn invalid(field: &str, problem: Option<String>) -> Result<(), AppError> {
    match problem {
        None => Ok(()),
        Some(p) => Err(AppError::Validation(BTreeMap::from([(field.into(), p)]))),
    }
}

/// The canonical form of an email address typed in `field`, or a 422 saying what is wrong.
fn checked_email(field: &str, email: &str) -> Result<String, AppError> {
    canonical_email(email).map_err(|problem| {
        AppError::Validation(BTreeMap::from([(field.into(), problem.message())]))
    })
}

/// What is wrong with a new password, if anything. Passwords are not normalised: they are
/// only ever hashed (argon2 takes any bytes, NUL included), never stored or looked up as
/// text, and a normalisation other than the one a password was set with would lock its
/// owner out. A new password with a control character (NUL, a line break, ESC) is refused
/// all the same: no keyboard types one, and a NUL cuts the password short in tools built
/// on C strings. Checking a password (log-in, the current password) refuses nothing: a
/// wrong one is just wrong.
fn password_problem(password: &str) -> Option<String> {
    let n = password.chars().count();
    if n < PASSWORD_MIN {
        Some(format!("at least {PASSWORD_MIN} characters"))
    } else if n > PASSWORD_MAX {
        Some(format!("at most {PASSWORD_MAX} characters"))
    } else if password.chars().any(char::is_control) {
        Some("no control characters (such as NUL or a line break)".into())
    } else {
        None
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Account settings, the precomputed dummy hash, and the attempt limiter.
pub struct Accounts {
    /// A hash no password matches: unknown emails are verified against it.
    dummy_hash: String,
    /// A session without "keep me logged in" (its cookie also ends with the browser).
    pub session_ttl: Duration,
    /// A session with "keep me logged in".
    pub remember_ttl: Duration,
    max_treats: u32,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

/// A user who has just signed up or logged in, with their new session token (sent to the
/// browser once, stored only as its hash).
pub struct NewSession {
    pub user: User,
    pub token: String,
    /// Whether the cookie should outlive the browser ("keep me logged in").
    pub remember: bool,
    /// How long the session lasts.
    pub ttl: Duration,
}

/// A live login session, as a request or a socket found it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub user: UserId,
    /// The token's hash: names the session without being able to act as it.
    pub token_hash: Arc<str>,
    /// When it ends, ms since the Unix epoch.
    pub expires_at: i64,
}

impl Accounts {
    /// Hashes the dummy password: slow, call it on a blocking thread.
    pub fn new(
        attempts_per_minute: u32,
        session_ttl: Duration,
        remember_ttl: Duration,
        max_treats: u32,
    ) -> Result<Accounts, AppError> {
        let per_minute = NonZeroU32::new(attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        Ok(Accounts {
            dummy_hash: hash_password("no password ever matches this one")?,
            session_ttl,
            remember_ttl,
            max_treats,
            limiter: governor::RateLimiter::keyed(Quota::per_minute(per_minute)),
        })
    }

    /// Counts one attempt (log-in, sign-up, reset request, password check) from this client;
    /// `RateLimited` past the limit.
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

    fn ttl(&self, remember: bool) -> Duration {
        if remember {
            self.remember_ttl
        } else {
            self.session_ttl
        }
    }
}

impl Services {
    /// Creates an account and its first session, both in one transaction: a sign-up that
    /// cannot be committed (a full disk) leaves neither behind and answers 503.
    pub async fn sign_up(
        &self,
        email: &str,
        password: String,
        remember: bool,
    ) -> Result<NewSession, AppError> {
        let email = validate_registration(email, &password)?;
        let max_treats = self.accounts.max_treats as i32;
        let (token, hash) = new_token();
        let ttl = self.accounts.ttl(remember);
        let ttl_ms = millis(ttl);
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
                        Err(e) if is_unique_violation(&e) => return Err(AppError::EmailTaken),
                        Err(e) => return Err(e.into()),
                    };
                    queries::insert_session(c, &hash, user.id, now, now.saturating_add(ttl_ms))?;
                    Ok(user)
                })
            })
            .await?;
        log::info!("new account {}", row.id);
        Ok(NewSession {
            user: User::try_from(&row)?,
            token,
            remember,
            ttl,
        })
    }

    /// Checks credentials and starts a session. An unknown email, a malformed one and a wrong
    /// password run the very same verification and give the same answer, so neither the
    /// status nor the timing tells which it was. A malformed address (a NUL, a control
    /// character, not an address at all) is never looked up: it cannot have an account.
    pub async fn log_in(
        &self,
        email: &str,
        password: String,
        remember: bool,
    ) -> Result<NewSession, AppError> {
        let email = canonical_email(email).ok();
        let dummy = self.accounts.dummy_hash.clone();
        let user = self
            .db(move |c| {
                let found = match &email {
                    Some(email) => queries::find_user_by_email(c, email)?,
                    None => None,
                };
                Ok(password_matches(found, &password, &dummy))
            })
            .await?;
        match user {
            Some(row) => self.start_session(row, remember).await,
            None => Err(AppError::Unauthorized("wrong email or password")),
        }
    }

    async fn start_session(&self, row: UserRow, remember: bool) -> Result<NewSession, AppError> {
        let user = User::try_from(&row)?;
        let (token, hash) = new_token();
        let now = now_ms();
        let ttl = self.accounts.ttl(remember);
        let expires = now.saturating_add(millis(ttl));
        let dirty = self.world.dirty.clone();
        self.db(move |c| {
            Services::check_database_file(&dirty)?;
            Ok(queries::insert_session(c, &hash, row.id, now, expires)?)
        })
        .await?;
        Ok(NewSession {
            user,
            token,
            remember,
            ttl,
        })
    }

    /// Revokes the session of this token and closes its sockets (nothing happens for an
    /// unknown one).
    pub async fn log_out(&self, token: &str) -> Result<(), AppError> {
        let Some(session) = self.session(token).await? else {
            return Ok(());
        };
        let hash = session.token_hash.clone();
        self.ending(session.user, Ending::One(&session.token_hash), move |c| {
            Ok(queries::delete_session(c, &hash)?)
        })
        .await?;
        Ok(())
    }

    /// Log out everywhere: every session of the user ends, this one included.
    pub async fn log_out_everywhere(&self, user: UserId) -> Result<(), AppError> {
        let ended = self
            .ending(user, Ending::All, move |c| {
                Ok(queries::delete_sessions_of_user(c, user.0, None)?)
            })
            .await?;
        log::info!("user {user} logged out everywhere ({ended} sessions)");
        Ok(())
    }

    /// Runs a database change that ends sessions of `user`: their sockets act on no frame
    /// while it runs and close once it is committed; if it fails they carry on.
    async fn ending<T, F>(&self, user: UserId, ending: Ending<'_>, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, AppError> + Send + 'static,
    {
        let suspended = self.live.suspend(user, ending);
        let dirty = self.world.dirty.clone();
        let out = self
            .db(move |c| {
                Services::check_database_file(&dirty)?;
                f(c)
            })
            .await?;
        suspended.commit();
        Ok(out)
    }

    /// The live session of a token: `None` when the token is unknown, revoked or expired.
    pub async fn session(&self, token: &str) -> Result<Option<SessionInfo>, AppError> {
        let hash = token_hash(token);
        let found = self
            .db(move |c| {
                Ok(
                    queries::find_session(c, &hash, now_ms())?.map(|(user, expires_at)| {
                        SessionInfo {
                            user: UserId(user),
                            token_hash: hash.into(),
                            expires_at,
                        }
                    }),
                )
            })
            .await?;
        Ok(found)
    }

    /// What a new WebSocket needs before its first frame, in one database turn (a reconnect
    /// storm makes thousands at once): whether its login session still stands (`None` if
    /// not) and the user's treats.
    pub async fn socket_start(
        &self,
        token_hash: Arc<str>,
        user: UserId,
    ) -> Result<Option<u32>, AppError> {
        let row = self
            .db(move |c| {
                if queries::find_session(c, &token_hash, now_ms())?.is_none() {
                    return Ok(None);
                }
                Ok(queries::find_user(c, user.0)?)
            })
            .await?;
        match row {
            Some(u) => Ok(Some(User::try_from(&u)?.available_treats)),
            None => Ok(None),
        }
    }

    /// The user as the API shows it.
    pub async fn user(&self, id: UserId) -> Result<User, AppError> {
        let row = self.db(move |c| Ok(queries::find_user(c, id.0)?)).await?;
        match row {
            Some(u) => Ok(User::try_from(&u)?),
            None => Err(AppError::Unauthorized("this account no longer exists")),
        }
    }

    /// Checks a signed-in user's password (settings ask for it before changing anything);
    /// a wrong one is 401 `unauthorized` with "wrong password".
    async fn check_password(&self, user: UserId, password: String) -> Result<(), AppError> {
        let dummy = self.accounts.dummy_hash.clone();
        let found = self
            .db(move |c| {
                let found = queries::find_user(c, user.0)?;
                Ok(password_matches(found, &password, &dummy))
            })
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(AppError::Unauthorized("wrong password")),
        }
    }

    /// Makes a password-reset link for an email address and mails it, if the address has an
    /// account. The HTTP handler answers 202 before calling this (in a task of its own), so
    /// neither the answer nor its timing says whether the address has an account.
    pub async fn mail_reset_link(&self, email: &str) -> Result<(), AppError> {
        let Ok(email) = canonical_email(email) else {
            log::info!("password reset asked for something that is not an email address");
            return Ok(());
        };
        let (token, hash) = new_token();
        let now = now_ms();
        let expires = now.saturating_add(millis(RESET_LINK_TTL));
        let dirty = self.world.dirty.clone();
        let lookup = email.clone();
        let user = self
            .db(move |c| {
                let Some(user) = queries::find_user_by_email(c, &lookup)? else {
                    return Ok(None);
                };
                Services::check_database_file(&dirty)?;
                queries::replace_account_token(
                    c,
                    &hash,
                    user.id,
                    TokenPurpose::ResetPassword,
                    None,
                    now,
                    expires,
                )?;
                Ok(Some(user.id))
            })
            .await?;
        let Some(user) = user else {
            log::info!("password reset asked for an address with no account");
            return Ok(());
        };
        log::info!("password reset link made for user {user}");
        let link = self.links.reset_password(&token);
        self.mailer.send(Mail {
            to: email,
            subject: "Reset your LivePet password".into(),
            text: format!(
                "Someone (hopefully you) asked to reset the password of your LivePet account.\n\n\
                 To choose a new password, open this link within a day:\n\n{link}\n\n\
                 The link works once. If you did not ask for it, ignore this mail: your \
                 password stays as it is.\n"
            ),
        });
        Ok(())
    }

    /// Sets a new password through a reset link: the link is used up and every session of
    /// the user ends (their sockets close).
    pub async fn reset_password(&self, token: &str, password: String) -> Result<(), AppError> {
        invalid("password", password_problem(&password))?;
        let hash = token_hash(token);
        let dirty = self.world.dirty.clone();
        let user = self
            .db(move |c| {
                let password_hash = hash_password(&password)?;
                Services::check_database_file(&dirty)?;
                c.transaction(|c| {
                    let Some((user, _)) = queries::take_account_token(
                        c,
                        &hash,
                        TokenPurpose::ResetPassword,
                        now_ms(),
                    )?
                    else {
                        return Err(AppError::InvalidToken);
                    };
                    queries::set_password_hash(c, user, &password_hash)?;
                    queries::delete_sessions_of_user(c, user, None)?;
                    Ok(UserId(user))
                })
            })
            .await?;
        // The user was only known inside the transaction, so the sockets are closed right
        // after it commits (before the answer), not suspended ahead of it.
        self.live.end(user, Ending::All);
        log::info!("user {user} reset their password; every session ended");
        Ok(())
    }

    /// Changes the password of a signed-in user: every other session ends, this one stays.
    pub async fn change_password(
        &self,
        user: UserId,
        session: &SessionInfo,
        current: String,
        new: String,
    ) -> Result<(), AppError> {
        invalid("new_password", password_problem(&new))?;
        self.check_password(user, current).await?;
        let keep = session.token_hash.clone();
        self.ending(user, Ending::AllBut(&session.token_hash), move |c| {
            let password_hash = hash_password(&new)?;
            c.transaction(|c| {
                queries::set_password_hash(c, user.0, &password_hash)?;
                queries::delete_sessions_of_user(c, user.0, Some(&keep))?;
                Ok(())
            })
        })
        .await?;
        log::info!("user {user} changed their password; other sessions ended");
        Ok(())
    }

    /// Asks to change the email of a signed-in user: a link goes to the new address, and
    /// the email changes only when it is opened (within 7 days).
    pub async fn request_email_change(
        &self,
        user: UserId,
        current: String,
        email: &str,
    ) -> Result<(), AppError> {
        let email = checked_email("email", email)?;
        self.check_password(user, current).await?;
        let (token, hash) = new_token();
        let now = now_ms();
        let expires = now.saturating_add(millis(CONFIRM_LINK_TTL));
        let dirty = self.world.dirty.clone();
        let new_email = email.clone();
        self.db(move |c| {
            Services::check_database_file(&dirty)?;
            Ok(queries::replace_account_token(
                c,
                &hash,
                user.0,
                TokenPurpose::ConfirmEmail,
                Some(&new_email),
                now,
                expires,
            )?)
        })
        .await?;
        let link = self.links.confirm_email(&token);
        self.mailer.send(Mail {
            to: email,
            subject: "Confirm your new LivePet email address".into(),
            text: format!(
                "Someone (hopefully you) asked to use this address for a LivePet account.\n\n\
                 To confirm it, open this link within 7 days:\n\n{link}\n\n\
                 Until then the account keeps its old address. If you did not ask for this, \
                 ignore this mail.\n"
            ),
        });
        log::info!("user {user} asked to change their email; confirmation link mailed");
        Ok(())
    }

    /// Confirms a new email address through its link.
    pub async fn confirm_email(&self, token: &str) -> Result<(), AppError> {
        let hash = token_hash(token);
        let dirty = self.world.dirty.clone();
        let user = self
            .db(move |c| {
                Services::check_database_file(&dirty)?;
                c.transaction(|c| {
                    let Some((user, Some(email))) = queries::take_account_token(
                        c,
                        &hash,
                        TokenPurpose::ConfirmEmail,
                        now_ms(),
                    )?
                    else {
                        return Err(AppError::InvalidToken);
                    };
                    match queries::set_email(c, user, &email) {
                        Ok(_) => Ok(user),
                        Err(e) if is_unique_violation(&e) => Err(AppError::EmailTaken),
                        Err(e) => Err(e.into()),
                    }
                })
            })
            .await?;
        log::info!("user {user} confirmed a new email address");
        Ok(())
    }

    /// Deletes a signed-in user's account after checking the password: its sessions end,
    /// its pets stop (leaving the active list with its sockets) and are deleted with it.
    pub async fn delete_account(&self, user: UserId, password: String) -> Result<(), AppError> {
        self.check_password(user, password).await?;
        let pets = self
            .ending(user, Ending::All, move |c| {
                Ok(queries::delete_user(c, user.0)?)
            })
            .await?;
        for id in &pets {
            if let Some(pet) = self.world.registry.get(PetId(*id)) {
                pet.do_send(Release);
            }
        }
        log::info!("user {user} deleted their account and {} pets", pets.len());
        Ok(())
    }

    /// Deletes expired sessions and links; returns how many sessions.
    pub async fn purge_expired_sessions(&self) -> Result<usize, AppError> {
        self.db(|c| Ok(queries::purge_expired_sessions(c, now_ms())?))
            .await
    }
}

fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
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
        assert_eq!(
            validate_registration(" A@B.c ", "twelve chars").unwrap(),
            "a@b.c"
        );
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
        // Any printable character is fine in a password, spaces and other scripts too;
        // control characters are not.
        assert!(validate_registration("a@b.c", "pässwörd ﬁ 王 ＡＢ").is_ok());
        for bad in ["twelve chars\0", "twelve\nchars", "twelve\u{1b}chars"] {
            let Err(AppError::Validation(f)) = validate_registration("a@b.c", bad) else {
                panic!("{bad:?} accepted")
            };
            assert_eq!(
                f["password"],
                "no control characters (such as NUL or a line break)"
            );
        }
        let Err(AppError::Validation(f)) = validate_registration("a\0@b.c", "twelve chars") else {
            panic!("a NUL in the email accepted")
        };
        assert_eq!(
            f["email"],
            "no spaces, control characters or invisible characters"
        );
    }
}
