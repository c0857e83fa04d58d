//! `/`: the pet list for someone logged in, the log-in page otherwise.

use crate::auth::Auth;
use leptos::prelude::*;
use leptos_router::components::Redirect;

#[component]
pub fn HomePage() -> impl IntoView {
    let auth = expect_context::<Auth>();
    move || {
        if !auth.checked.get() {
            view! { <p class="loading">"Loading…"</p> }.into_any()
        } else if auth.logged_in() {
            view! { <Redirect path="/pets" /> }.into_any()
        } else {
            view! { <Redirect path="/login" /> }.into_any()
        }
    }
}
