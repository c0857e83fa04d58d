//! Who is logged in, shared through context. Filled from `GET /api/me` when the app starts
//! and by the login and sign-up pages; cleared by logging out (here, in another tab, or by
//! the server: see `WsClient::follow_session`).

use crate::{api, toasts::Toasts};
use leptos::prelude::*;
use leptos::task::spawn_local;
use livepet_shared::wire::User;

#[derive(Debug, Clone, Copy)]
pub struct Auth {
    /// The logged-in user, if any.
    pub user: RwSignal<Option<User>>,
    /// Whether the first `GET /api/me` has answered; until then pages show "Loading…".
    pub checked: RwSignal<bool>,
    /// Counts the sessions this tab has started (logins and sign-ups): a new session needs
    /// a new socket even when it is the same user's.
    pub sessions: RwSignal<u32>,
}

impl Default for Auth {
    fn default() -> Self {
        Self::new()
    }
}

impl Auth {
    pub fn new() -> Self {
        Auth {
            user: RwSignal::new(None),
            checked: RwSignal::new(false),
            sessions: RwSignal::new(0),
        }
    }

    /// Asks the server who we are (the session cookie is HttpOnly, so only it can tell).
    pub fn check(&self, toasts: Toasts) {
        let this = *self;
        spawn_local(async move {
            match api::me().await {
                Ok(user) => {
                    this.user.try_set(user);
                }
                Err(e) => toasts.error(e.message()),
            }
            this.checked.try_set(true);
        });
    }

    /// A session this tab has just started (logged in or signed up) for `user`.
    pub fn start_session(&self, user: User) {
        self.sessions.update(|n| *n += 1);
        self.user.set(Some(user));
    }

    /// Whether someone is logged in.
    pub fn logged_in(&self) -> bool {
        self.user.with(Option::is_some)
    }
}
