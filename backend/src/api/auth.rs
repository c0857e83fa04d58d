//! Sessions at the HTTP edge: the session cookie, the client address (from
//! `X-Forwarded-For` only through a trusted proxy), and the `CurrentUser` extractor (401
//! when there is no live session).

use crate::error::AppError;
use crate::services::accounts::{NewSession, SessionInfo, COOKIE};
use crate::state::AppState;
use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::header::HeaderName;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use livepet_shared::UserId;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

/// The session cookie for a new session: HttpOnly, SameSite=Lax, Secure when configured
/// (`--secure-cookies` or an https `--public-url`; never because a header says https).
/// With "keep me logged in" it lasts as long as the session; without, it is a
/// browser-session cookie (no Max-Age), gone when the browser closes.
pub fn session_cookie(state: &AppState, session: &NewSession) -> Cookie<'static> {
    let mut cookie = Cookie::build(COOKIE, session.token.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.secure_cookies)
        .finish();
    if session.remember {
        let secs = i64::try_from(session.ttl.as_secs()).unwrap_or(i64::MAX);
        cookie.set_max_age(time::Duration::seconds(secs));
    }
    cookie
}

/// A cookie that clears the session cookie.
pub fn clear_cookie() -> Cookie<'static> {
    let mut c = Cookie::build(COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    c.make_removal();
    c
}

/// The session token a request carries, if any.
pub fn session_token(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE).map(|c| c.value().to_string())
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address attempts are counted against and logs name: the peer, unless the peer is a
/// trusted proxy, in which case the nearest address in `X-Forwarded-For` that is not itself
/// a trusted proxy (a client can prepend anything to the header; only what our proxies
/// appended is believed).
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip())?;
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.trusted_proxies.as_slice())
        .unwrap_or_default();
    forwarded_client(
        peer,
        trusted,
        req.headers()
            .get_all(&X_FORWARDED_FOR)
            .filter_map(|v| v.to_str().ok()),
    )
}

/// The client address given the peer, the trusted proxies and the `X-Forwarded-For` values
/// in the order they arrived.
fn forwarded_client<'a>(
    peer: IpAddr,
    trusted: &[ipnet::IpNet],
    headers: impl Iterator<Item = &'a str>,
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = headers.flat_map(|h| h.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            // An unreadable hop: everything before it is unverifiable; stop at what we have.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// The logged-in user of a request; extracting it answers 401 when there is none.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: UserId,
    /// The session the request came with (settings keep it while ending the others).
    pub session: SessionInfo,
}

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = session_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(AppError::Unauthorized("log in first"));
            };
            match state.services.session(&token).await? {
                Some(session) => Ok(CurrentUser {
                    id: session.user,
                    session,
                }),
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

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_through_trusted_proxies() {
        let none = nets(&[]);
        let proxies = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        // No trusted proxies: the header is ignored.
        assert_eq!(
            forwarded_client(ip("127.0.0.1"), &none, ["6.6.6.6"].into_iter()),
            Some(ip("127.0.0.1"))
        );
        // A peer that is not a proxy cannot name someone else.
        assert_eq!(
            forwarded_client(ip("8.8.8.8"), &proxies, ["6.6.6.6"].into_iter()),
            Some(ip("8.8.8.8"))
        );
        // Through our proxy: the address it appended.
        assert_eq!(
            forwarded_client(ip("127.0.0.1"), &proxies, ["203.0.113.9"].into_iter()),
            Some(ip("203.0.113.9"))
        );
        // A client-forged first hop is skipped: the rightmost untrusted hop counts.
        assert_eq!(
            forwarded_client(
                ip("127.0.0.1"),
                &proxies,
                ["1.2.3.4, 203.0.113.9", "10.1.2.3"].into_iter()
            ),
            Some(ip("203.0.113.9"))
        );
        // Garbage in the header: stop at the last readable hop.
        assert_eq!(
            forwarded_client(ip("127.0.0.1"), &proxies, ["nonsense"].into_iter()),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            forwarded_client(ip("::1"), &nets(&["::1/128"]), ["2001:db8::7"].into_iter()),
            Some(ip("2001:db8::7"))
        );
    }
}
