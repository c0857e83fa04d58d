//! Accounts and pets over the real HTTP API: sign up, log in, adopt.

use anyhow::{anyhow, bail, Context as _};
use livepet_shared::wire::PetView;
use serde_json::json;
use std::time::Duration;

pub const COOKIE: &str = "livepet_session";

/// An HTTP client for setup calls (generous timeout: sign-ups hash passwords).
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .max_http_version(awc::http::Version::HTTP_11)
        .finish()
}

/// Signs up and returns the session cookie's value.
pub async fn sign_up(
    client: &awc::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let mut res = client
        .post(format!("{base}/api/users"))
        .send_json(&json!({"email": email, "password": password}))
        .await
        .map_err(|e| anyhow!("POST /api/users: {e}"))?;
    if res.status().as_u16() != 201 {
        let body = res.body().await.unwrap_or_default();
        bail!(
            "POST /api/users answered {}: {}",
            res.status(),
            String::from_utf8_lossy(&body)
        );
    }
    let cookie = res
        .cookie(COOKIE)
        .context("sign-up set no session cookie")?;
    Ok(cookie.value().to_string())
}

/// Adopts a cat and returns it.
pub async fn adopt(
    client: &awc::Client,
    base: &str,
    cookie: &str,
    name: &str,
) -> anyhow::Result<PetView> {
    let mut res = client
        .post(format!("{base}/api/pets"))
        .insert_header(("Cookie", format!("{COOKIE}={cookie}")))
        .send_json(&json!({"name": name, "species": "cat"}))
        .await
        .map_err(|e| anyhow!("POST /api/pets: {e}"))?;
    if res.status().as_u16() != 201 {
        let body = res.body().await.unwrap_or_default();
        bail!(
            "POST /api/pets answered {}: {}",
            res.status(),
            String::from_utf8_lossy(&body)
        );
    }
    res.json::<PetView>()
        .await
        .map_err(|e| anyhow!("reading the adopted pet: {e}"))
}
