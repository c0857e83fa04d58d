//! The app's root: shared state in context (who is logged in, the socket, messages), the
//! header, the page for the URL and the message corner.

use crate::auth::Auth;
use crate::components::{Header, ToastList};
use crate::pages::credentials::after_login;
use crate::pages::{
    ConfirmEmailPage, DashboardPage, ForgotPasswordPage, LoginPage, NewPetPage, NotFound, PetPage,
    PetsPage, ResetPasswordPage, SettingsPage, SignupPage,
};
use crate::toasts::Toasts;
use crate::ws::WsClient;
use leptos::prelude::*;
use leptos_router::components::{Redirect, Router};
use leptos_router::hooks::{use_location, use_navigate, use_query_map};
use leptos_router::location::{BrowserUrl, LocationProvider as _};
use livepet_shared::PetId;

#[component]
pub fn App() -> impl IntoView {
    let toasts = Toasts::new();
    let auth = Auth::new();
    let ws = WsClient::new(toasts);
    provide_context(toasts);
    provide_context(auth);
    provide_context(ws);
    auth.check(toasts);
    // The one place the socket's lifetime is decided: it follows who is logged in.
    ws.follow_session(auth);

    view! {
        <Router>
            <SessionEnded />
            <Header />
            <main class="container" id="main">
                <Pages />
            </main>
            <ToastList toasts />
        </Router>
    }
}

/// The app's screens, by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    Home,
    Login,
    Signup,
    Pets,
    NewPet,
    Pet(PetId),
    Dashboard,
    Settings,
    ForgotPassword,
    ResetPassword(String),
    ConfirmEmail(String),
    NotFound,
}

impl Screen {
    /// The screen for a URL's path.
    pub fn of(path: &str) -> Screen {
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        match (parts.next(), parts.next(), parts.next()) {
            (None, ..) => Screen::Home,
            (Some("login"), None, _) => Screen::Login,
            (Some("signup"), None, _) => Screen::Signup,
            (Some("pets"), None, _) => Screen::Pets,
            (Some("pets"), Some("new"), None) => Screen::NewPet,
            (Some("pets"), Some(id), None) => match id.parse::<i64>() {
                Ok(n) if n > 0 => Screen::Pet(PetId(n)),
                _ => Screen::NotFound,
            },
            (Some("dashboard"), None, _) => Screen::Dashboard,
            (Some("settings"), None, _) => Screen::Settings,
            (Some("forgot-password"), None, _) => Screen::ForgotPassword,
            (Some("reset-password"), Some(token), None) => Screen::ResetPassword(token.into()),
            (Some("confirm-email"), Some(token), None) => Screen::ConfirmEmail(token.into()),
            _ => Screen::NotFound,
        }
    }
}

/// What the main area shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// Waiting for the server to say who is logged in.
    Loading,
    /// Elsewhere: members-only pages send visitors to log in (and back after), `/`, `/login`
    /// and `/signup` send members to their pets.
    Go(String),
    Page(Screen),
}

/// What to show for `screen` (at `path`, with `?next=` in `next`), given whether the
/// first `GET /api/me` has answered (`checked`) and whether someone is logged in.
pub fn shown(
    screen: Screen,
    path: &str,
    next: Option<String>,
    checked: bool,
    logged_in: bool,
) -> Shown {
    let members_only = matches!(
        screen,
        Screen::Pets | Screen::NewPet | Screen::Pet(_) | Screen::Dashboard | Screen::Settings
    );
    match screen {
        _ if members_only && !checked => Shown::Loading,
        Screen::Home if !checked => Shown::Loading,
        Screen::Home if logged_in => Shown::Go("/pets".into()),
        Screen::Home => Shown::Go("/login".into()),
        // Logging in only sets the user; this is the navigation that follows it.
        Screen::Login | Screen::Signup if logged_in => Shown::Go(after_login(next)),
        _ if members_only && !logged_in => Shown::Go(format!("/login?next={path}")),
        screen => Shown::Page(screen),
    }
}

/// The page of the current URL. A `match` on the path instead of leptos_router's
/// `<Routes>`, and one decision about logging in instead of a wrapper per route: the
/// nested matcher is generic over the tuple of every route and, measured on this app
/// (2026-11-23), cost 31 KB of the 250 KB gzipped budget, more than all the account pages
/// together, while these routes are flat. A new path (another pet) builds a new page; a new
/// query or a new treat count does not.
#[component]
fn Pages() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let location = use_location();
    let query = use_query_map();
    let what = Memo::new(move |_| {
        location.pathname.with(|path| {
            shown(
                Screen::of(path),
                path,
                query.with(|q| q.get("next")),
                auth.checked.get(),
                auth.logged_in(),
            )
        })
    });
    // A followed link shows in the address bar only once the router is told that its page
    // is ready (leptos_router's `<Routes>` tells it after loading); pages here are built at
    // once, so as soon as the path has changed.
    if let Some(provider) = use_context::<BrowserUrl>() {
        Effect::new(move |_| {
            location.pathname.track();
            provider.ready_to_complete();
        });
    }
    move || match what.get() {
        Shown::Loading => view! { <p class="loading">"Loading…"</p> }.into_any(),
        Shown::Go(path) => view! { <Redirect path /> }.into_any(),
        Shown::Page(screen) => page(screen),
    }
}

/// The page of a screen.
fn page(screen: Screen) -> AnyView {
    match screen {
        // `/` only ever redirects (see `shown`).
        Screen::Home => ().into_any(),
        Screen::Login => view! { <LoginPage /> }.into_any(),
        Screen::Signup => view! { <SignupPage /> }.into_any(),
        Screen::Pets => view! { <PetsPage /> }.into_any(),
        Screen::NewPet => view! { <NewPetPage /> }.into_any(),
        Screen::Pet(id) => view! { <PetPage id /> }.into_any(),
        Screen::Dashboard => view! { <DashboardPage /> }.into_any(),
        Screen::Settings => view! { <SettingsPage /> }.into_any(),
        Screen::ForgotPassword => view! { <ForgotPasswordPage /> }.into_any(),
        Screen::ResetPassword(token) => view! { <ResetPasswordPage token /> }.into_any(),
        Screen::ConfirmEmail(token) => view! { <ConfirmEmailPage token /> }.into_any(),
        Screen::NotFound => view! { <NotFound /> }.into_any(),
    }
}

/// Logs out a tab whose session ended under it (see `WsClient::session_ended`) and sends
/// it to the login page; the message saying so is a toast, which outlives the navigation.
#[component]
fn SessionEnded() -> impl IntoView {
    let ws = expect_context::<WsClient>();
    let auth = expect_context::<Auth>();
    let toasts = expect_context::<Toasts>();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if ws.session_ended.get() {
            // The URL first (it changes at once), then the user: the page is then built
            // once, for /login, instead of first redirecting to /login?next=….
            navigate("/login", Default::default());
            auth.user.set(None);
            toasts.info("You were logged out.");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_pick_their_screens() {
        assert_eq!(Screen::of("/"), Screen::Home);
        assert_eq!(Screen::of(""), Screen::Home);
        assert_eq!(Screen::of("/login"), Screen::Login);
        assert_eq!(Screen::of("/pets/"), Screen::Pets);
        assert_eq!(Screen::of("/pets/new"), Screen::NewPet);
        assert_eq!(Screen::of("/pets/12"), Screen::Pet(PetId(12)));
        assert_eq!(Screen::of("/pets/0"), Screen::NotFound);
        assert_eq!(Screen::of("/pets/abc"), Screen::NotFound);
        assert_eq!(Screen::of("/pets/12/x"), Screen::NotFound);
        assert_eq!(Screen::of("/settings"), Screen::Settings);
        assert_eq!(Screen::of("/forgot-password"), Screen::ForgotPassword);
        assert_eq!(
            Screen::of("/reset-password/abc_-9"),
            Screen::ResetPassword("abc_-9".into())
        );
        assert_eq!(
            Screen::of("/confirm-email/t0k"),
            Screen::ConfirmEmail("t0k".into())
        );
        assert_eq!(Screen::of("/reset-password"), Screen::NotFound);
        assert_eq!(Screen::of("/login/x"), Screen::NotFound);
        assert_eq!(Screen::of("/nowhere"), Screen::NotFound);
    }

    #[test]
    fn members_pages_wait_for_the_answer_then_send_visitors_to_log_in() {
        let pets = || Screen::Pets;
        assert_eq!(shown(pets(), "/pets", None, false, false), Shown::Loading);
        assert_eq!(
            shown(pets(), "/pets", None, true, false),
            Shown::Go("/login?next=/pets".into())
        );
        assert_eq!(
            shown(pets(), "/pets", None, true, true),
            Shown::Page(Screen::Pets)
        );
        let settings = shown(Screen::Settings, "/settings", None, true, false);
        assert_eq!(settings, Shown::Go("/login?next=/settings".into()));
    }

    #[test]
    fn home_login_and_signup_send_members_to_their_pets() {
        assert_eq!(shown(Screen::Home, "/", None, false, false), Shown::Loading);
        assert_eq!(
            shown(Screen::Home, "/", None, true, false),
            Shown::Go("/login".into())
        );
        assert_eq!(
            shown(Screen::Home, "/", None, true, true),
            Shown::Go("/pets".into())
        );
        // Before the answer the form shows; once logged in (or just logged in), onwards.
        assert_eq!(
            shown(Screen::Login, "/login", None, false, false),
            Shown::Page(Screen::Login)
        );
        assert_eq!(
            shown(Screen::Login, "/login", Some("/pets/3".into()), true, true),
            Shown::Go("/pets/3".into())
        );
        assert_eq!(
            shown(Screen::Signup, "/signup", Some("//evil".into()), true, true),
            Shown::Go("/pets".into())
        );
        // Pages for everyone show either way.
        for logged_in in [false, true] {
            assert_eq!(
                shown(
                    Screen::ForgotPassword,
                    "/forgot-password",
                    None,
                    true,
                    logged_in
                ),
                Shown::Page(Screen::ForgotPassword)
            );
        }
    }
}
