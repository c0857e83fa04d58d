//! The app's root: shared state in context (who is logged in, the socket, messages), the
//! header, the routes and the message corner.

use crate::auth::Auth;
use crate::components::{Header, ToastList};
use crate::pages::{
    DashboardPage, HomePage, LoginPage, NewPetPage, NotFound, PetPage, PetsPage, SignupPage,
};
use crate::toasts::Toasts;
use crate::ws::WsClient;
use leptos::prelude::*;
use leptos_router::components::{Redirect, Route, Router, Routes};
use leptos_router::hooks::use_location;
use leptos_router::path;

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
            <Header />
            <main class="container" id="main">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=HomePage />
                    <Route path=path!("/login") view=LoginPage />
                    <Route path=path!("/signup") view=SignupPage />
                    <Route path=path!("/pets") view=|| view! { <Protected><PetsPage /></Protected> } />
                    <Route
                        path=path!("/pets/new")
                        view=|| view! { <Protected><NewPetPage /></Protected> }
                    />
                    <Route path=path!("/pets/:id") view=|| view! { <Protected><PetPage /></Protected> } />
                    <Route
                        path=path!("/dashboard")
                        view=|| view! { <Protected><DashboardPage /></Protected> }
                    />
                </Routes>
            </main>
            <ToastList toasts />
        </Router>
    }
}

/// Shows its children to a logged-in user; sends anyone else to log in, and back here after.
#[component]
fn Protected(children: ChildrenFn) -> impl IntoView {
    let auth = expect_context::<Auth>();
    let location = use_location();
    let state = Memo::new(move |_| (auth.checked.get(), auth.logged_in()));
    move || match state.get() {
        (false, _) => view! { <p class="loading">"Loading…"</p> }.into_any(),
        (true, true) => children().into_any(),
        (true, false) => {
            let here = location.pathname.get_untracked();
            view! { <Redirect path=format!("/login?next={here}") /> }.into_any()
        }
    }
}
