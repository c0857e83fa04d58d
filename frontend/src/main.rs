//! Entry point of the web app: mount `App` on the page body.

use leptos::prelude::*;

/// The app's root. A placeholder until the full single-page app lands.
#[component]
fn App() -> impl IntoView {
    view! {
        <main class="app">
            <h1>"LivePet"</h1>
            <p>"A world of live pets. Every one of them ages and gets hungry while you watch."</p>
        </main>
    }
}

fn main() {
    leptos::mount::mount_to_body(App);
}
