//! The body both `/login` and `/signup` use: a heading, the email and password form, and a
//! link to the other page. The two pages differ only in their words and their API call.
//! Someone logged in is sent on by the app's router (see `app::shown`), which is also
//! what moves on once the form has logged the user in.

use crate::api;
use crate::auth::Auth;
use crate::components::{AuthForm, AuthMode, FormErrors};
use crate::toasts::Toasts;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_query_map;
use livepet_shared::wire::{Credentials, User};
use std::future::Future;

/// A link to the other credentials page, with the question before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch {
    /// "New here? "
    pub question: &'static str,
    /// The link's text.
    pub link: &'static str,
    /// The other page's path; `?next=` is carried over.
    pub to: &'static str,
}

/// A page that sends credentials and, once the server takes them, logs the user in (which
/// opens the socket: see `WsClient::follow_session`) and says `welcome`; the router then
/// goes where `?next=` says.
#[component]
pub fn CredentialsPage<F, Fut>(
    /// Which form: its button texts and the password's autocomplete.
    mode: AuthMode,
    /// The page's heading.
    title: &'static str,
    /// The sentence under the heading.
    lead: &'static str,
    /// The way to the other page.
    switch: Switch,
    /// The message once the server has taken the credentials.
    welcome: &'static str,
    /// The API call: log in or create an account.
    call: F,
) -> impl IntoView
where
    F: Fn(Credentials) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<User, api::Error>> + 'static,
{
    let busy = RwSignal::new(false);
    let errors = RwSignal::new(FormErrors::default());
    let auth = expect_context::<Auth>();
    let toasts = expect_context::<Toasts>();
    let query = use_query_map();
    let on_submit = Callback::new(move |creds: Credentials| {
        busy.set(true);
        spawn_local(async move {
            let result = call(creds).await;
            busy.try_set(false);
            match result {
                Ok(user) => {
                    toasts.info(welcome);
                    auth.start_session(user);
                }
                Err(e) => {
                    errors.try_set(FormErrors::of(&e, None));
                }
            }
        });
    });
    let switch_href = move || match query.with(|q| q.get("next")) {
        Some(n) => format!("{}?next={n}", switch.to),
        None => switch.to.into(),
    };
    view! {
        <section class="auth-page">
            <h1>{title}</h1>
            <p class="lead">{lead}</p>
            <AuthForm mode on_submit busy errors />
            <p class="switch">{switch.question} <a href=switch_href>{switch.link}</a></p>
        </section>
    }
}

/// Where to go after logging in: the page that asked for it (`?next=/pets/12`), else the
/// pet list. Only a path of this site is followed (see [`local_path`]); anything else,
/// however it is spelled, goes to the pet list.
pub fn after_login(next: Option<String>) -> String {
    next.as_deref()
        .and_then(local_path)
        .and_then(same_origin)
        .unwrap_or_else(|| "/pets".into())
}

/// `next` when it is plainly a path of this app: it starts with one `/` (not `//`) and holds
/// only the characters our own paths use (letters, digits, `/ - _ . ? = &`). Everything a
/// browser's URL parser could turn into another origin is outside that set: `\` (read as
/// `/`), `%` (a percent-encoded `\` or `/`), `:`, `@`, tabs and newlines (dropped by the
/// parser), spaces and any other control or non-ASCII character. The login pages themselves
/// are not a destination.
pub fn local_path(next: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/-_.?=&".contains(c);
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.chars().all(allowed)
        && !["/login", "/signup"]
            .iter()
            .any(|p| next == *p || next.starts_with(&format!("{p}?")));
    ok.then(|| next.to_string())
}

/// The browser's own URL parser has the last word: `path` resolved against this page's
/// origin must stay on it; the result is its normalised path, query and fragment.
#[cfg(target_arch = "wasm32")]
fn same_origin(path: String) -> Option<String> {
    let origin = web_sys::window()?.location().origin().ok()?;
    let url = web_sys::Url::new_with_base(&path, &origin).ok()?;
    (url.origin() == origin).then(|| format!("{}{}{}", url.pathname(), url.search(), url.hash()))
}

/// Outside a browser (unit tests) only [`local_path`]'s check applies.
#[cfg(not(target_arch = "wasm32"))]
fn same_origin(path: String) -> Option<String> {
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_only_local_next_paths() {
        assert_eq!(after_login(Some("/pets/12".into())), "/pets/12");
        assert_eq!(after_login(Some("/pets/new".into())), "/pets/new");
        assert_eq!(after_login(Some("/settings".into())), "/settings");
        assert_eq!(after_login(None), "/pets");
        // Every variant the security pass found, and their relatives: none leaves the site.
        for evil in [
            "//evil.example",
            "https://evil.example",
            "http:evil.example",
            "javascript:alert(1)",
            "/\\evil.example",
            "/\\127.0.0.1:19050/",
            "/%5C127.0.0.1:19050/",
            "/%5c127.0.0.1:19050/",
            "/%2F127.0.0.1:19050/",
            "/\t/127.0.0.1:19050/",
            "/\n/127.0.0.1:19050/",
            "/\r/127.0.0.1:19050/",
            "/ /evil.example",
            "/\u{0}/evil.example",
            "/\u{202e}/evil.example",
            "/@evil.example",
            "/evil.example:80",
            "\\\\evil.example",
            "",
            "pets",
            "/login",
            "/login?next=/pets",
            "/signup",
        ] {
            assert_eq!(after_login(Some(evil.into())), "/pets", "{evil:?}");
        }
    }
}
