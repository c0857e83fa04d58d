//! The top bar: the LivePet name, navigation (pets, dashboard, settings), the connection
//! light, and log in / log out.

use crate::api;
use crate::auth::Auth;
use crate::components::ConnIndicator;
use crate::toasts::Toasts;
use crate::ws::WsClient;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

#[component]
pub fn Header() -> impl IntoView {
    let auth = expect_context::<Auth>();
    let ws = expect_context::<WsClient>();
    let toasts = expect_context::<Toasts>();
    let navigate = use_navigate();
    let logout = move |_| {
        let navigate = navigate.clone();
        // The server closes this tab's socket as it ends the session: no news to us.
        ws.expect_end(true);
        spawn_local(async move {
            match api::logout().await {
                Ok(()) => {
                    // The URL first, then the user (see `app::SessionEnded`); the socket
                    // follows the session: clearing the user closes it.
                    navigate("/login", Default::default());
                    auth.user.set(None);
                    toasts.info("You are logged out. See you soon!");
                }
                Err(e) => {
                    ws.expect_end(false);
                    toasts.error(e.message());
                }
            }
        });
    };
    let email = move || auth.user.with(|u| u.as_ref().map(|u| u.email.clone()));
    view! {
        <header class="topbar">
            <div class="topbar-inner">
                <a class="brand" href="/" aria-label="LivePet home">
                    <span class="brand-mark" aria-hidden="true">"♥"</span>
                    "LivePet"
                </a>
                <Show
                    when=move || auth.logged_in()
                    fallback=|| {
                        view! {
                            <nav class="nav" aria-label="Account">
                                <a href="/login">"Log in"</a>
                                <a class="button small primary" href="/signup">
                                    "Sign up"
                                </a>
                            </nav>
                        }
                    }
                >
                    <nav class="nav" aria-label="Main">
                        <a href="/pets" data-testid="nav-pets">
                            "Your pets"
                        </a>
                        <a href="/dashboard" data-testid="nav-dashboard">
                            "Dashboard"
                        </a>
                        <a href="/settings" data-testid="nav-settings">
                            "Settings"
                        </a>
                    </nav>
                    <div class="account">
                        <ConnIndicator status=ws.status />
                        <span class="who" title=email>
                            {email}
                        </span>
                        <button
                            class="button small ghost"
                            data-testid="logout"
                            aria-label="Log out"
                            on:click=logout.clone()
                        >
                            "Log out"
                        </button>
                    </div>
                </Show>
            </div>
        </header>
    }
}
