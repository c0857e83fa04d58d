//! The JSON API under `/api`: one async function per call, each returning the shared wire
//! type or an [`Error`] that knows the server's code, field messages and a sentence to show.

use gloo_net::http::{Request, RequestBuilder, Response};
use livepet_shared::wire::{
    ApiError, ApiErrorDetail, ChangeEmail, ChangePassword, Credentials, DeleteAccount, ErrorCode,
    NewPassword, NewPet, PetView, ResetRequest, User, UserBody,
};
use livepet_shared::PetId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The server answered with an error body.
    Server {
        status: u16,
        detail: ApiErrorDetail,
        /// Seconds from `Retry-After`, on 429.
        retry_after: Option<u64>,
    },
    /// No answer at all: the network or the server is down.
    Network(String),
    /// An answer this app cannot read (a proxy's error page, a version mismatch).
    Unexpected { status: u16, message: String },
}

impl Error {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Server { status, .. } | Error::Unexpected { status, .. } => Some(*status),
            Error::Network(_) => None,
        }
    }

    /// The server's error code, when it sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Server { detail, .. } => Some(detail.code),
            _ => None,
        }
    }

    /// Per-field messages of a validation error (empty otherwise).
    pub fn fields(&self) -> BTreeMap<String, String> {
        match self {
            Error::Server { detail, .. } => detail.fields.clone().unwrap_or_default(),
            _ => BTreeMap::new(),
        }
    }

    /// A sentence for people.
    pub fn message(&self) -> String {
        match self {
            Error::Server {
                detail,
                retry_after,
                ..
            } => match detail.code {
                ErrorCode::RateLimited => match retry_after {
                    Some(s) => format!("Too many attempts. Please wait {s} s and try again."),
                    None => "Too many attempts. Please wait a minute and try again.".into(),
                },
                ErrorCode::ValidationFailed => "Please fix the fields marked below.".into(),
                ErrorCode::ServiceUnavailable => {
                    "The server is busy or its database is down. Please try again soon.".into()
                }
                _ => capitalize(&detail.message),
            },
            Error::Network(_) => {
                "Could not reach the server. Check your connection and try again.".into()
            }
            Error::Unexpected { status, .. } => {
                format!("The server sent an answer this page cannot read (HTTP {status}).")
            }
        }
    }
}

/// `wrong email or password` → `Wrong email or password.`
pub fn capitalize(s: &str) -> String {
    let mut chars = s.trim().chars();
    // ASCII only: Unicode case tables would add ~10 KB to the WASM, and the server's
    // messages are English.
    let mut out: String = match chars.next() {
        Some(c) => std::iter::once(c.to_ascii_uppercase())
            .chain(chars)
            .collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

async fn send(req: Result<Request, gloo_net::Error>) -> Result<Response, Error> {
    let req = req.map_err(|e| Error::Network(e.to_string()))?;
    req.send().await.map_err(|e| Error::Network(e.to_string()))
}

async fn send_builder(req: RequestBuilder) -> Result<Response, Error> {
    send(req.build()).await
}

/// Reads a success body as `T`, or any other status as an [`Error`].
async fn read<T: DeserializeOwned>(resp: Response) -> Result<T, Error> {
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| Error::Network(e.to_string()))?;
    if resp.ok() {
        return serde_json::from_str(&text).map_err(|e| Error::Unexpected {
            status,
            message: e.to_string(),
        });
    }
    Err(error_from(status, &text, retry_after(&resp)))
}

/// Turns a failed response's body into an [`Error`].
pub fn error_from(status: u16, body: &str, retry_after: Option<u64>) -> Error {
    match serde_json::from_str::<ApiError>(body) {
        Ok(e) => Error::Server {
            status,
            detail: e.error,
            retry_after,
        },
        Err(_) => Error::Unexpected {
            status,
            message: body.chars().take(200).collect(),
        },
    }
}

fn retry_after(resp: &Response) -> Option<u64> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.trim().parse().ok())
}

/// `GET /api/me`: the logged-in user, or `None` when nobody is.
pub async fn me() -> Result<Option<User>, Error> {
    let resp = send_builder(Request::get("/api/me")).await?;
    if resp.status() == 401 {
        return Ok(None);
    }
    read::<UserBody>(resp).await.map(|b| Some(b.user))
}

/// `POST /api/users`: a new account, logged in. Takes the credentials by value, like
/// [`login`], so either fits the credentials page's `call`.
pub async fn register(creds: Credentials) -> Result<User, Error> {
    let resp = send_json("POST", "/api/users", &creds).await?;
    read::<UserBody>(resp).await.map(|b| b.user)
}

/// `POST /api/session`: log in.
pub async fn login(creds: Credentials) -> Result<User, Error> {
    let resp = send_json("POST", "/api/session", &creds).await?;
    read::<UserBody>(resp).await.map(|b| b.user)
}

/// `DELETE /api/session`: log out. A 401 means the session had already ended: logged out
/// all the same.
pub async fn logout() -> Result<(), Error> {
    match empty(send_builder(Request::delete("/api/session")).await?).await {
        Err(e) if e.status() == Some(401) => Ok(()),
        result => result,
    }
}

/// A request with a JSON body. The body is serialised here, and the rest is one
/// non-generic function, so each call adds only its own body's serialiser to the WASM.
async fn send_json<T: Serialize>(
    method: &'static str,
    url: &str,
    body: &T,
) -> Result<Response, Error> {
    let json = serde_json::to_string(body).map_err(|e| Error::Network(e.to_string()))?;
    send_text(method, url, json).await
}

async fn send_text(method: &'static str, url: &str, json: String) -> Result<Response, Error> {
    let req = match method {
        "PUT" => Request::put(url),
        "DELETE" => Request::delete(url),
        _ => Request::post(url),
    };
    send(req.header("content-type", "application/json").body(json)).await
}

/// Reads an answer without a body (202, 204) as `Ok`, anything else as an [`Error`].
async fn empty(resp: Response) -> Result<(), Error> {
    if resp.ok() {
        return Ok(());
    }
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    Err(error_from(status, &text, retry_after(&resp)))
}

/// A token from a link, made safe to put in a URL path.
fn path_part(token: &str) -> String {
    String::from(js_sys::encode_uri_component(token))
}

/// `POST /api/password-reset`: mail a reset link, if the address has an account. The
/// answer is the same either way.
pub async fn request_reset(email: String) -> Result<(), Error> {
    empty(send_json("POST", "/api/password-reset", &ResetRequest { email }).await?).await
}

/// `POST /api/password-reset/{token}`: set a new password through a reset link.
pub async fn reset_password(token: &str, password: String) -> Result<(), Error> {
    let url = format!("/api/password-reset/{}", path_part(token));
    empty(send_json("POST", &url, &NewPassword { password }).await?).await
}

/// `PUT /api/me/password`: change the password; every other session ends.
pub async fn change_password(body: ChangePassword) -> Result<(), Error> {
    empty(send_json("PUT", "/api/me/password", &body).await?).await
}

/// `PUT /api/me/email`: ask to change the email; a link goes to the new address.
pub async fn change_email(body: ChangeEmail) -> Result<(), Error> {
    empty(send_json("PUT", "/api/me/email", &body).await?).await
}

/// `POST /api/me/email/{token}`: confirm a new email address through its link.
pub async fn confirm_email(token: &str) -> Result<(), Error> {
    let url = format!("/api/me/email/{}", path_part(token));
    empty(send_text("POST", &url, String::new()).await?).await
}

/// `DELETE /api/me/sessions`: log out everywhere, this tab included.
pub async fn logout_everywhere() -> Result<(), Error> {
    empty(send_builder(Request::delete("/api/me/sessions")).await?).await
}

/// `DELETE /api/me`: delete the account and its pets.
pub async fn delete_account(password: String) -> Result<(), Error> {
    empty(send_json("DELETE", "/api/me", &DeleteAccount { password }).await?).await
}

/// `GET /api/pets`: one page of my pets, newest first: the newest ones, or those older than
/// `before`. A page shorter than [`livepet_shared::wire::PETS_PAGE`] is the last.
pub async fn pets(before: Option<PetId>) -> Result<Vec<PetView>, Error> {
    let url = match before {
        Some(id) => format!("/api/pets?before={id}"),
        None => "/api/pets".into(),
    };
    read(send_builder(Request::get(&url)).await?).await
}

/// `POST /api/pets`: adopt a pet.
pub async fn create_pet(pet: &NewPet) -> Result<PetView, Error> {
    read(send_json("POST", "/api/pets", pet).await?).await
}

/// `GET /api/pets/{id}`: one of my pets.
pub async fn pet(id: PetId) -> Result<PetView, Error> {
    read(send_builder(Request::get(&format!("/api/pets/{id}"))).await?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_bodies_and_their_fields() {
        let body = r#"{"error":{"code":"validation_failed","message":"invalid",
            "fields":{"email":"enter an email address like name@example.com"}}}"#;
        let e = error_from(422, body, None);
        assert_eq!(e.code(), Some(ErrorCode::ValidationFailed));
        assert_eq!(
            e.fields().get("email").map(String::as_str),
            Some("enter an email address like name@example.com")
        );
        assert_eq!(e.status(), Some(422));
    }

    #[test]
    fn friendly_messages() {
        let wrong = error_from(
            401,
            r#"{"error":{"code":"unauthorized","message":"wrong email or password"}}"#,
            None,
        );
        assert_eq!(wrong.message(), "Wrong email or password.");
        let limited = error_from(
            429,
            r#"{"error":{"code":"rate_limited","message":"slow down"}}"#,
            Some(42),
        );
        assert_eq!(
            limited.message(),
            "Too many attempts. Please wait 42 s and try again."
        );
        let html = error_from(502, "<html>Bad gateway</html>", None);
        assert!(matches!(html, Error::Unexpected { status: 502, .. }));
        assert!(Error::Network("x".into())
            .message()
            .contains("reach the server"));
    }
}
