//! Any URL the app does not know.

use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <section class="not-found" data-testid="not-found">
            <h1>"Page not found"</h1>
            <p class="lead">"There is nothing here. Maybe the pet wandered off?"</p>
            <a class="button primary" href="/pets">
                "Go to your pets"
            </a>
        </section>
    }
}
