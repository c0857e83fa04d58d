//! Any URL the app does not know, and any thing it cannot show (a pet that is not there).

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    missing(
        "Page not found",
        "There is nothing here. Maybe the pet wandered off?",
    )
}

/// The page for something that is not there: what and why, and the way back to the pets.
pub fn missing(title: &'static str, lead: &'static str) -> impl IntoView {
    view! {
        <section class="not-found" data-testid="not-found">
            <h1>{title}</h1>
            <p class="lead">{lead}</p>
            <a class="button primary" href="/pets">
                "Go to your pets"
            </a>
        </section>
    }
}
