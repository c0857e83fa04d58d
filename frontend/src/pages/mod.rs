//! One component per screen; the router in `app.rs` picks one by URL.

pub mod dashboard;
pub mod home;
pub mod login;
pub mod new_pet;
pub mod not_found;
pub mod pet;
pub mod pets;
pub mod signup;

pub use dashboard::DashboardPage;
pub use home::HomePage;
pub use login::LoginPage;
pub use new_pet::NewPetPage;
pub use not_found::NotFound;
pub use pet::PetPage;
pub use pets::PetsPage;
pub use signup::SignupPage;

use crate::api;
use crate::auth::Auth;
use crate::components::FormErrors;
use crate::ws::WsClient;
use leptos::prelude::*;
use livepet_shared::wire::User;

/// Where to go after logging in: the page that asked for it (`?next=/pets/12`), else the
/// pet list. Only same-site paths are followed.
pub(crate) fn after_login(next: Option<String>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/login") => n,
        _ => "/pets".into(),
    }
}

/// Shared by log in and sign up: remember the user and open the socket. Takes the
/// contexts as arguments because it runs in a task, where there is no reactive owner.
pub(crate) fn logged_in(auth: Auth, ws: WsClient, user: User) {
    auth.user.set(Some(user));
    ws.connect();
}

/// The form's view of a refused attempt.
pub(crate) fn form_errors(e: &api::Error) -> FormErrors {
    FormErrors {
        message: Some(e.message()),
        fields: e.fields(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_only_local_next_paths() {
        assert_eq!(after_login(Some("/pets/12".into())), "/pets/12");
        assert_eq!(after_login(Some("//evil.example".into())), "/pets");
        assert_eq!(after_login(Some("https://evil.example".into())), "/pets");
        assert_eq!(after_login(Some("/login".into())), "/pets");
        assert_eq!(after_login(None), "/pets");
    }
}
